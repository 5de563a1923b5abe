"""Batch diagnosis on Dask: many archived report files diagnosed in parallel (``kb batch diagnose``).

The only module that imports dask's ``distributed`` (and pyarrow, for Parquet output); both are
imported when a batch runs, so the rest of kb never needs them.

How a batch runs: the client reads the knowledge once into a :class:`~kb.knowledge.snapshot.Snapshot`
and broadcasts it to every worker (one scatter); the files are cut into partitions and each partition
is one task: a worker reads its files and diagnoses each with its own engine, compiled once per worker
process and knowledge digest. Reports in an archive were made on other machines, so no interpreter on
this one is asked about them: owner facts come from what a report says (``local=False``,
:mod:`kb.owners`). A file that cannot be read — missing, not a report, hostile — becomes a row with
``status: "error"`` and the reason; it never stops the batch, and a partition whose worker dies is
retried file by file, so one poisonous file costs its own row only.

Output, one row per file in input order (``-o OUT``): ``path, repository, status, error, format, tests,
passed, failed, errors, skipped, diagnosed, undiagnosed, timestamp, timestamp_from, causes, run_id``,
where ``causes`` is ``[{key, rule, title, category, confidence, tests}]`` as ``kb diagnose`` reports them.
Beside it, the aggregate table of causes (``OUT`` with ``.causes`` before its suffix): ``key, title,
category, rule, runs, repositories, repository_names, tests, first_seen, last_seen``. JSON lines, or
Parquet when ``OUT`` ends in ``.parquet``. Both files are written to a temporary name and renamed when the
batch is done: a batch that fails leaves no half-written output.

The repository of a file: the first ``repo_depth`` folders below ``repo_base`` — by default the common
fixed part of the globs (what comes before the first wildcard), so ``archive/*/*.xml`` over
``archive/<repo>/<job>.xml`` names each file's ``<repo>``; a file directly in the base belongs to the base's
own folder name. The timestamp: the report's own (JUnit ``timestamp``, a kb run file's start; a naive
one is taken as UTC; one before 1971 — ``0001-01-01T00:00:00`` placeholders — is ignored), else the
file's modification time; ISO 8601 in UTC either way, so first/last seen compare as text.
"""

from __future__ import annotations

import gc
import glob
import json
import math
import os
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .diagnose import _no_cyclic_gc, analyse_run, record_args
from .engine import Engine
from .errors import KbError, ReportError
from .ingest import read_report
from .knowledge.snapshot import Snapshot
from .store import Store, open_store

__all__ = ["diagnose_batch", "diagnose_files", "diagnose_file", "expand", "repository", "aggregate_path", "read_table",
           "local_cluster", "peak_rss", "BatchResult", "LOCAL"]

#: what ``--scheduler`` takes for a cluster started on this machine
LOCAL = "local"
#: how long a client waits for a remote scheduler, and for its workers
CONNECT_TIMEOUT_S = 30
_MAGIC = frozenset("*?[")
#: reports before this are placeholders, not dates (``0001-01-01T00:00:00Z``)
_EARLIEST = datetime(1971, 1, 1, tzinfo=timezone.utc)

#: a row's columns, in order (JSON lines keep it; Parquet's schema below names the same)
COLUMNS = ("path", "repository", "status", "error", "format", "tests", "passed", "failed", "errors", "skipped",
           "diagnosed", "undiagnosed", "timestamp", "timestamp_from", "causes", "run_id")
AGGREGATE_COLUMNS = ("key", "title", "category", "rule", "runs", "repositories", "repository_names", "tests",
                     "first_seen", "last_seen")


# ---------------------------------------------------------------- inputs

def _fixed_part(pattern: str) -> str:
    """The folder a glob starts in: its components before the first wildcard (a plain file: its folder)."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _MAGIC & set(part):
            break
        fixed.append(part)
    if len(fixed) == len(parts):  # no wildcard: a file (its folder is the base)
        fixed = fixed[:-1]
    return os.path.abspath(os.path.join(*fixed) if fixed else ".")


def expand(patterns: Sequence[str]) -> tuple[list[str], str]:
    """(the files the globs match — absolute, sorted within each glob, each once — and their common base).

    ``**`` crosses folders. A glob that matches nothing, or a folder given as such, is a
    :class:`KbError` naming it: a batch over fewer files than meant would look complete."""
    if not patterns:
        raise KbError("no report files given")
    files: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        if os.path.isdir(pattern):
            raise KbError(f"{pattern}: a directory; give a glob of the reports in it, e.g. "
                          f"'{os.path.join(pattern, '**', '*.xml')}'")
        matched = sorted(p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p))
        if not matched:
            raise KbError(f"{pattern}: no file matches" if _MAGIC & set(pattern) else f"{pattern}: no such file")
        for path in matched:
            path = os.path.abspath(path)
            if path not in seen:
                seen.add(path)
                files.append(path)
    base = os.path.commonpath([_fixed_part(p) for p in patterns])
    return files, base


def repository(path: str, base: str, depth: int = 1) -> str:
    """The repository a report belongs to: its first ``depth`` folders below ``base`` (``/``-joined), or the
    base's own name for a file directly in it (a file outside the base: its own folder's name)."""
    try:
        relative = os.path.relpath(path, base)
    except ValueError:  # another drive (Windows)
        relative = ".."
    folders = Path(relative).parts[:-1]
    if folders and folders[0] == "..":
        return os.path.basename(os.path.dirname(path))
    if not folders:
        return os.path.basename(os.path.normpath(base)) or base
    return "/".join(folders[:max(depth, 1)])


def aggregate_path(out: str | Path) -> Path:
    """Where the causes table goes beside ``out``: ``runs.jsonl`` → ``runs.causes.jsonl``."""
    out = Path(out)
    suffix = out.suffix or ".jsonl"
    return out.with_name(f"{out.stem if out.suffix else out.name}.causes{suffix}")


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a batch output (or of its causes table), JSON lines or Parquet, as dicts."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            pa = _pyarrow()
            return list(pa.parquet.read_table(path).to_pylist())
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except OSError as exc:
        raise KbError(f"{path}: cannot read: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- one file, one partition (on a worker)

def _timestamp(stated: str, mtime: float | None) -> tuple[str | None, str]:
    """(ISO 8601 UTC, "report" | "mtime" | "none")."""
    if stated:
        try:
            when = datetime.fromisoformat(stated.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            when = None
        if when is not None:
            when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
            if when >= _EARLIEST:
                return when.astimezone(timezone.utc).isoformat(timespec="seconds"), "report"
    if mtime is None:
        return None, "none"
    return datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="seconds"), "mtime"


def _empty_row(path: str, repo: str) -> dict[str, Any]:
    return {"path": path, "repository": repo, "status": "ok", "error": None, "format": None, "tests": 0,
            "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "diagnosed": 0, "undiagnosed": 0,
            "timestamp": None, "timestamp_from": "none", "causes": [], "run_id": None}


def diagnose_file(path: str, repo: str, knowledge: Snapshot, engine: Engine, *, record: bool = False
                  ) -> dict[str, Any]:
    """One report's row. Whatever goes wrong with the file is the row's ``error``, never an exception.
    ``record``: the row carries what :meth:`Store.record_run` takes (``"_record"``), for the client."""
    row = _empty_row(path, repo)
    mtime: float | None = None
    try:
        info = os.stat(path)
        mtime = info.st_mtime
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise ReportError(path, "not a regular file")
        run = read_report(path)
        report, failures = analyse_run(run, knowledge, engine=engine, local=False)
    except KbError as exc:
        row.update(status="error", error=str(exc))
    except OSError as exc:
        row.update(status="error", error=f"{path}: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - a file that trips a bug in kb is that file's row, not the batch's end
        row.update(status="error", error=f"{path}: kb failed on it: {type(exc).__name__}: {exc}")
    else:
        summary = report["summary"]
        row.update(format=run.format, tests=summary["tests"], passed=summary["passed"],
                   failed=summary["failures"], errors=summary["errors"], skipped=summary["skipped"],
                   diagnosed=summary["diagnosed"], undiagnosed=summary["undiagnosed"],
                   causes=[{"key": c["key"], "rule": c["rule"], "title": c["title"], "category": c["category"],
                            "confidence": c["confidence"], "tests": list(c["tests"])} for c in report["root_causes"]])
        if record:
            row["_record"] = record_args(run, failures, report, None)
        row["timestamp"], row["timestamp_from"] = _timestamp(run.timestamp, mtime)
        return row
    row["timestamp"], row["timestamp_from"] = _timestamp("", mtime)
    return row


#: compiled engines in this worker process, by knowledge digest (a new KB version compiles a new one)
_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine_for(knowledge: Snapshot) -> Engine:
    with _ENGINES_LOCK:
        engine = _ENGINES.get(knowledge.digest)
        if engine is None:
            if len(_ENGINES) >= 4:  # a long-lived worker that saw many KB versions keeps the latest few
                _ENGINES.pop(next(iter(_ENGINES)))
            engine = _ENGINES[knowledge.digest] = Engine(knowledge.rules())
        return engine


def diagnose_files(files: Sequence[tuple[str, str]], knowledge: Snapshot, record: bool = False
                   ) -> list[dict[str, Any]]:
    """Rows for (path, repository) pairs: one partition, as a worker runs it (also callable in-process)."""
    engine = _engine_for(knowledge)
    rows = []
    for path, repo in files:
        with _no_cyclic_gc():  # per file, as kb diagnose does: the collector may run between files
            rows.append(diagnose_file(path, repo, knowledge, engine, record=record))
    return rows


# ---------------------------------------------------------------- the aggregate

@dataclass
class _CauseTotals:
    key: str
    title: str
    category: str
    rule: str
    runs: int = 0
    tests: int = 0
    repositories: set[str] = field(default_factory=set)
    first_seen: str | None = None
    last_seen: str | None = None
    titles: dict[str, int] = field(default_factory=dict)


class Aggregate:
    """The causes table, added to row by row (bounded by the number of distinct causes, not of files)."""

    def __init__(self) -> None:
        self.causes: dict[str, _CauseTotals] = {}

    def add(self, row: dict[str, Any]) -> None:
        when = row["timestamp"]
        for cause in row["causes"]:
            totals = self.causes.get(cause["key"])
            if totals is None:
                totals = self.causes[cause["key"]] = _CauseTotals(cause["key"], cause["title"], cause["category"],
                                                                  cause["rule"])
            totals.runs += 1
            totals.tests += len(cause["tests"])
            totals.repositories.add(row["repository"])
            totals.titles[cause["title"]] = totals.titles.get(cause["title"], 0) + 1
            if when is not None:
                totals.first_seen = when if totals.first_seen is None else min(totals.first_seen, when)
                totals.last_seen = when if totals.last_seen is None else max(totals.last_seen, when)

    def rows(self) -> list[dict[str, Any]]:
        """Most runs first (then most tests, then key). A cause's title is the one most of its runs gave."""
        out = []
        for t in sorted(self.causes.values(), key=lambda t: (-t.runs, -t.tests, t.key)):
            title = max(t.titles.items(), key=lambda item: (item[1], item[0]))[0]
            out.append({"key": t.key, "title": title, "category": t.category, "rule": t.rule, "runs": t.runs,
                        "repositories": len(t.repositories), "repository_names": sorted(t.repositories),
                        "tests": t.tests, "first_seen": t.first_seen, "last_seen": t.last_seen})
        return out


# ---------------------------------------------------------------- output

class _Output:
    """A file written under a temporary name beside its target and renamed into place by :meth:`commit`."""

    def __init__(self, target: Path) -> None:
        self.target = target
        folder = target.parent if str(target.parent) else Path(".")
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        except OSError as exc:
            raise KbError(f"{target}: cannot write: {exc.strerror or exc}") from None
        os.close(fd)
        umask = os.umask(0)  # mkstemp makes the file 0600; the output gets the mode any new file would
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        try:
            self._close()
            os.replace(self.tmp, self.target)
        except OSError as exc:
            self.abort()
            raise KbError(f"{self.target}: cannot write: {exc.strerror or exc}") from None

    def abort(self) -> None:
        try:
            self._close()
        except Exception:  # noqa: BLE001 - already failing; the temporary file goes either way
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class _JsonLines(_Output):
    def __init__(self, target: Path, columns: Sequence[str]) -> None:
        super().__init__(target)
        self.columns = columns
        self.handle: IO[str] | None = open(self.tmp, "w", encoding="utf-8")

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        assert self.handle is not None
        try:
            for row in rows:
                self.handle.write(json.dumps({c: row[c] for c in self.columns}, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise KbError(f"{self.target}: cannot write: {exc.strerror or exc}") from None

    def _close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the submodule pyarrow.parquet.ParquetWriter lives in
    except ImportError:
        raise KbError("Parquet output needs pyarrow, which is not installed: pip install 'kb-selfheal[parquet]' "
                      "(or write JSON lines: an OUT that does not end in .parquet)") from None
    return pyarrow


def _schemas(pa: Any) -> tuple[Any, Any]:
    cause = pa.struct([("key", pa.string()), ("rule", pa.string()), ("title", pa.string()),
                       ("category", pa.string()), ("confidence", pa.float64()), ("tests", pa.list_(pa.string()))])
    count = pa.int64()
    rows = pa.schema([("path", pa.string()), ("repository", pa.string()), ("status", pa.string()),
                      ("error", pa.string()), ("format", pa.string()), ("tests", count), ("passed", count),
                      ("failed", count), ("errors", count), ("skipped", count), ("diagnosed", count),
                      ("undiagnosed", count), ("timestamp", pa.string()), ("timestamp_from", pa.string()),
                      ("causes", pa.list_(cause)), ("run_id", count)])
    causes = pa.schema([("key", pa.string()), ("title", pa.string()), ("category", pa.string()),
                        ("rule", pa.string()), ("runs", count), ("repositories", count),
                        ("repository_names", pa.list_(pa.string())), ("tests", count), ("first_seen", pa.string()),
                        ("last_seen", pa.string())])
    return rows, causes


class _Parquet(_Output):
    def __init__(self, target: Path, schema: Any) -> None:
        self.pa = _pyarrow()
        super().__init__(target)
        self.schema = schema
        self.writer: Any = self.pa.parquet.ParquetWriter(self.tmp, schema)

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.writer.write_table(self.pa.Table.from_pylist(list(rows), schema=self.schema))

    def _close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()


def _outputs(out: Path) -> tuple[_Output, _Output]:
    """The rows' and the aggregate's output files for ``out`` (Parquet when it ends in .parquet)."""
    if out.suffix.lower() == ".parquet":
        rows_schema, causes_schema = _schemas(_pyarrow())
        rows: _Output = _Parquet(out, rows_schema)
        try:
            return rows, _Parquet(aggregate_path(out), causes_schema)
        except BaseException:
            rows.abort()
            raise
    rows = _JsonLines(out, COLUMNS)
    try:
        return rows, _JsonLines(aggregate_path(out), AGGREGATE_COLUMNS)
    except BaseException:
        rows.abort()
        raise


# ---------------------------------------------------------------- the batch

@dataclass
class BatchResult:
    """What a batch did: counts, where it wrote, the aggregate (also written beside ``output``)."""

    files: int
    ok: int
    errors: int
    seconds: float
    workers: int
    output: Path
    aggregate_output: Path
    causes: list[dict[str, Any]]
    #: (path, reason) of the first bad files (all of them are in the output's rows)
    bad: list[tuple[str, str]]
    recorded: int = 0
    #: partitions whose task failed (its worker died) and whose files were diagnosed again one by one
    retried: int = 0
    #: worker address → the peak resident memory of its process so far, in bytes (where the OS tells)
    worker_peak_rss: dict[str, int] = field(default_factory=dict)
    #: CPU seconds the worker processes spent during the batch, all together (less disturbed than wall time
    #: by other load on the machines)
    worker_cpu_seconds: float = 0.0

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0


#: (files done, files in all, bad files so far)
Progress = Callable[[int, int, int], None]


def _partitions(items: Sequence[tuple[str, str]], size: int) -> list[list[tuple[str, str]]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise KbError("kb batch needs dask's distributed scheduler, which is not installed: "
                      "pip install 'kb-selfheal[batch]'") from None
    return distributed


def _local_cluster(workers: int | None, allowed_failures: int | None = None) -> Any:
    import logging

    # one thread per worker process: diagnosis is CPU-bound Python (the GIL), parallel only across processes;
    # on this machine only, no dashboard, and the scheduler's own HTTP endpoints on a free port (not 8787)
    return _distributed().LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                       processes=True, host="127.0.0.1", dashboard_address=None,
                                       scheduler_kwargs={"dashboard_address": "127.0.0.1:0",
                                                         **({} if allowed_failures is None else
                                                            {"allowed_failures": allowed_failures})},
                                       silence_logs=logging.ERROR)


@contextmanager
def local_cluster(workers: int | None = None, *, allowed_failures: int | None = None) -> Iterator[str]:
    """A Dask cluster of ``workers`` processes on this machine for several batches (tests, benchmarks):
    yields its scheduler's address, for ``diagnose_batch(scheduler=...)``. ``allowed_failures``: how many
    worker deaths a task may see before the scheduler gives it up (Dask's default: 3)."""
    cluster = _local_cluster(workers, allowed_failures)
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def _connect(scheduler: str, workers: int | None) -> tuple[Any, Any]:
    """(client, the local cluster it runs on or None)."""
    distributed = _distributed()
    if scheduler == LOCAL:
        cluster = _local_cluster(workers)
        try:
            return distributed.Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise
    failed = ""
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        failed = f"cannot reach the Dask scheduler at {scheduler}: {exc}"
    if failed:
        # the half-made Client sits in a reference cycle with the traceback: collected later, its __del__ would
        # close it inside the next Client's start, under the loop lock distributed takes there (a deadlock, seen)
        gc.collect()
        raise KbError(failed)
    try:
        client.wait_for_workers(workers or 1, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise KbError(f"the Dask scheduler at {scheduler} has fewer than {workers or 1} worker(s) "
                      f"after {CONNECT_TIMEOUT_S} s: {exc or 'timed out'}") from None
    return client, None


def peak_rss() -> int:
    """This process's peak resident memory in bytes (0 where the OS does not say). Linux: ``VmHWM``, which
    belongs to the process's own address space — ``ru_maxrss`` survives ``exec`` and so reports a spawning
    parent's peak for a worker process that never came near it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS counts bytes, the others KiB


def _worker_peak_rss(client: Any) -> dict[str, int]:
    try:
        return {str(k): int(v) for k, v in client.run(peak_rss).items()}
    except Exception:  # noqa: BLE001 - a figure to show, never a reason to fail a finished batch
        return {}


def _worker_cpu(client: Any) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in client.run(time.process_time).items()}
    except Exception:  # noqa: BLE001 - a figure to show, never a reason to fail a batch
        return {}


def _failed_rows(files: Sequence[tuple[str, str]], reason: str) -> list[dict[str, Any]]:
    rows = []
    for path, repo in files:
        row = _empty_row(path, repo)
        row.update(status="error", error=f"{path}: {reason}")
        try:
            row["timestamp"], row["timestamp_from"] = _timestamp("", os.stat(path).st_mtime)
        except OSError:
            pass
        rows.append(row)
    return rows


def _run(client: Any, parts: list[list[tuple[str, str]]], snapshot: Snapshot, record: bool,
         retried: list[int]) -> Iterator[list[dict[str, Any]]]:
    """Each partition's rows, in partition order, while at most a few partitions per worker thread wait.
    A partition whose task fails (its worker died) is retried file by file; a file that fails alone
    is an error row."""
    distributed = _distributed()
    shared = client.scatter(snapshot, broadcast=True, hash=False)
    threads = max(sum(client.nthreads().values()), 1)
    in_flight = 3 * threads
    queue = distributed.as_completed()
    index: dict[str, tuple[int, int]] = {}  # task key → (partition, piece of a retried partition)
    done: dict[int, list[list[dict[str, Any]] | None]] = {}
    pending = iter(enumerate(parts))
    next_out = 0

    def submit(i: int, piece: int, files: list[tuple[str, str]]) -> None:
        future = client.submit(diagnose_files, files, shared, record, pure=False)
        index[future.key] = (i, piece)
        queue.add(future)

    def feed() -> None:
        while queue.count() < in_flight:
            item = next(pending, None)
            if item is None:
                return
            done[item[0]] = [None]
            submit(item[0], 0, item[1])

    feed()
    for future in queue:
        i, piece = index.pop(future.key)
        try:
            rows = future.result()
        except Exception as exc:  # noqa: BLE001 - a dead worker, a task error: retried or reported per file
            files = parts[i] if len(done[i]) == 1 else [parts[i][piece]]
            reason = f"the worker diagnosing it failed: {type(exc).__name__}: {exc}"
            if len(files) > 1:  # retry each file on its own: one poisonous file must not take its partition
                retried.append(i)
                done[i] = [None] * len(files)
                for n, one in enumerate(files):
                    submit(i, n, [one])
                continue
            rows = _failed_rows(files, reason)
        finally:
            future.release()
        done[i][piece] = rows
        feed()
        while next_out in done and all(p is not None for p in done[next_out]):
            yield [row for p in done.pop(next_out) for row in (p or [])]
            next_out += 1


def diagnose_batch(
    paths: Sequence[str],
    *,
    scheduler: str = LOCAL,
    workers: int | None = None,
    output: str | Path,
    record: bool = False,
    db: str | Path | None = None,
    repo_base: str | None = None,
    repo_depth: int = 1,
    partition_size: int | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Diagnose every report file the globs ``paths`` match on a Dask cluster and write one row per file
    to ``output`` and the causes table beside it (:func:`aggregate_path`).

    ``scheduler``: ``"local"`` starts a cluster of ``workers`` processes here (default: one per core);
    an address (``tcp://host:8786``) uses a running one, waiting for ``workers`` workers (default 1).
    ``record``: each diagnosed file's run is recorded into the KB (``db``) from this process.
    ``repo_base``/``repo_depth``: how a file's repository is named (:func:`repository`).
    """
    started = time.monotonic()
    files, base = expand(paths)
    base = os.path.abspath(repo_base) if repo_base else base
    items = [(path, repository(path, base, repo_depth)) for path in files]
    outputs = _outputs(Path(output))  # an unwritable OUT, or Parquet without pyarrow, fails before any work
    try:
        client, cluster = _connect(scheduler, workers)  # first: a scheduler that cannot be reached fails fast
        try:
            threads = max(sum(client.nthreads().values()), 1)
            size = partition_size or max(1, min(32, math.ceil(len(items) / (4 * threads))))
            cpu_before = _worker_cpu(client)
            with open_store(db) as store:
                result = _write(client, _partitions(items, size), Snapshot.of(store), outputs,
                                store if record else None, progress, len(items))
            result.workers = len(client.nthreads())
            result.worker_peak_rss = _worker_peak_rss(client)
            cpu_after = _worker_cpu(client)
            result.worker_cpu_seconds = sum(cpu_after[w] - cpu_before.get(w, 0.0) for w in cpu_after)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    except BaseException:
        for out in outputs:
            out.abort()
        raise
    result.seconds = time.monotonic() - started
    return result


def _write(client: Any, parts: list[list[tuple[str, str]]], snapshot: Snapshot, outputs: tuple[_Output, _Output],
           store: Store | None, progress: Progress | None, total: int) -> BatchResult:
    """Rows as partitions finish (in input order), recorded when ``store`` is given; then the aggregate."""
    rows_out, causes_out = outputs
    aggregate = Aggregate()
    ok = errors = recorded = 0
    bad: list[tuple[str, str]] = []
    retried: list[int] = []
    for rows in _run(client, parts, snapshot, store is not None, retried):
        for row in rows:
            payload = row.pop("_record", None)
            if row["status"] == "ok":
                ok += 1
                aggregate.add(row)
                if store is not None and payload is not None:
                    row["run_id"] = store.record_run(*payload)
                    recorded += 1
            else:
                errors += 1
                if len(bad) < 20:
                    bad.append((row["path"], row["error"] or ""))
        rows_out.write(rows)
        if progress is not None:
            progress(ok + errors, total, errors)
    causes = aggregate.rows()
    causes_out.write(causes)
    rows_out.commit()
    causes_out.commit()
    return BatchResult(files=ok + errors, ok=ok, errors=errors, seconds=0.0, workers=0, output=rows_out.target,
                       aggregate_output=causes_out.target, causes=causes, bad=bad, recorded=recorded,
                       retried=len(retried))
