"""kb batch diagnose on a real Dask ``LocalCluster`` (worker processes) over real corpus reports: one row per
file in input order, bad files as rows, the same causes as ``kb diagnose``, the aggregate's numbers, --record,
Parquet, the command's error paths; and the knowledge snapshot the workers use against the store it mirrors."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from kb.batch import (
    BatchResult,
    _timestamp,
    aggregate_path,
    diagnose_batch,
    diagnose_files,
    expand,
    local_cluster,
    read_table,
    repository,
)
from kb.diagnose import diagnose
from kb.engine import Engine, FailureFact, Symptom
from kb.errors import KbError
from kb.facts import failures_from_run
from kb.ingest import read_report
from kb.knowledge.snapshot import Snapshot
from kb.store import open_store

from .conftest import CORPUS, REAL, KbCli

JANUS = REAL / "janus-0.4.0" / "report.xml"
#: when the second copy of janus's report says it ran (the first says 2026-11-24T06:35:49.071144+00:00)
EARLIER = "2023-06-01T12:00:00"
#: the modification time given to every copied file (a report without a timestamp is dated by it)
MTIME = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
MTIME_ISO = "2024-01-02T03:04:05+00:00"
BOMB = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n'
        b'<testsuite tests="1"><testcase classname="t" name="t">&lol2;</testcase></testsuite>\n')


def _causes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A report's root causes as a batch row gives them."""
    return [{k: c[k] for k in ("key", "rule", "title", "category", "confidence", "tests")} for c in doc["root_causes"]]


def _copy(source: Path, target: Path, data: bytes | None = None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        shutil.copyfile(source, target)
    else:
        target.write_bytes(data)
    os.utime(target, (MTIME, MTIME))


@dataclass
class Batch:
    archive: Path
    globs: list[str]
    result: BatchResult
    rows: list[dict[str, Any]]
    causes: list[dict[str, Any]]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One small real cluster for the module: two worker processes, one thread each."""
    with local_cluster(2) as address:
        yield address


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """archive/<repository>/...: every real case (XML and pytest output), janus's report twice (another
    repository, an earlier date), corpus reports of other producers one level deeper, and bad files."""
    root = tmp_path_factory.mktemp("archive")
    for case in sorted(REAL.iterdir()):
        if case.is_dir():
            _copy(case / "report.xml", root / "alpha" / f"{case.name}.xml")
            _copy(case / "pytest.txt", root / "alpha" / f"{case.name}.txt")
    text = JANUS.read_text(encoding="utf-8").replace('timestamp="2026-11-24T06:35:49.071144+00:00"',
                                                     f'timestamp="{EARLIER}"')
    assert EARLIER in text
    _copy(JANUS, root / "beta" / "janus-again.xml", text.encode("utf-8"))
    for producer in ("nose", "pytest", "pytest-text", "surefire"):
        for report in sorted((CORPUS / "reports" / producer).iterdir()):
            _copy(report, root / "gamma" / producer / report.name)
    _copy(JANUS, root / "bad" / "garbage.xml", b"this is not a report at all\n")
    _copy(JANUS, root / "bad" / "empty.xml", b"")
    _copy(JANUS, root / "bad" / "bomb.xml", BOMB)
    return root


@pytest.fixture(scope="module")
def batch(archive: Path, scheduler: str, tmp_path_factory: pytest.TempPathFactory) -> Batch:
    out = tmp_path_factory.mktemp("out") / "rows.jsonl"
    globs = [str(archive / "*" / "*.*"), str(archive / "gamma" / "**" / "*.*")]
    result = diagnose_batch(globs, scheduler=scheduler, output=out, db=out.parent / "kb.sqlite", partition_size=5)
    return Batch(archive, globs, result, read_table(out), read_table(aggregate_path(out)))


# -- the batch


def test_one_row_per_file_in_input_order(batch: Batch) -> None:
    files, base = expand(batch.globs)
    assert base == str(batch.archive)
    assert [row["path"] for row in batch.rows] == files
    assert len(files) == len(set(files)) == batch.result.files == 12 * 2 + 1 + 3 + 10 + 4 + 9 + 3
    assert {row["repository"] for row in batch.rows} == {"alpha", "beta", "gamma", "bad"}
    assert batch.result.ok + batch.result.errors == batch.result.files and batch.result.workers == 2


def test_a_bad_file_is_its_row_and_the_batch_goes_on(batch: Batch) -> None:
    bad = {Path(row["path"]).name: row for row in batch.rows if row["status"] == "error"}
    assert set(bad) == {"garbage.xml", "empty.xml", "bomb.xml", "truncated-corrupt.xml", "truncated-unclosed-cdata.xml"}
    assert "not a test report kb can read" in bad["garbage.xml"]["error"]
    assert "DTD" in bad["bomb.xml"]["error"]
    assert "not well-formed XML" in bad["truncated-corrupt.xml"]["error"]
    for name, row in bad.items():
        assert row["error"].startswith(row["path"]), name
        assert row["causes"] == [] and row["tests"] == 0 and row["timestamp"] == MTIME_ISO
    assert batch.result.errors == 5
    assert sorted(Path(p).name for p, _ in batch.result.bad) == sorted(bad)
    assert all(row["error"] is None for row in batch.rows if row["status"] == "ok")


def test_each_file_gets_the_causes_kb_diagnose_gives_it(batch: Batch) -> None:
    diagnosed = 0
    for row in batch.rows:
        if row["status"] != "ok":
            with pytest.raises(KbError):
                diagnose([row["path"]], record=False)
            continue
        doc = diagnose([row["path"]], record=False)
        assert row["causes"] == _causes(doc), row["path"]
        summary = doc["summary"]
        assert (row["tests"], row["passed"], row["failed"], row["errors"], row["skipped"]) == (
            summary["tests"], summary["passed"], summary["failures"], summary["errors"], summary["skipped"]), row["path"]
        assert (row["diagnosed"], row["undiagnosed"]) == (summary["diagnosed"], summary["undiagnosed"]), row["path"]
        diagnosed += bool(row["causes"])
    assert diagnosed >= 20  # the real cases are diagnosed: the comparison is not of empty lists


def test_the_aggregate_adds_up_the_rows(batch: Batch) -> None:
    expected: dict[str, dict[str, Any]] = {}
    for row in batch.rows:
        for cause in row["causes"]:
            entry = expected.setdefault(cause["key"], {"runs": 0, "tests": 0, "repos": set(), "when": []})
            entry["runs"] += 1
            entry["tests"] += len(cause["tests"])
            entry["repos"].add(row["repository"])
            entry["when"].append(row["timestamp"])
    assert [c["key"] for c in batch.causes] == [c["key"] for c in batch.result.causes]
    assert {c["key"] for c in batch.causes} == set(expected)
    for cause in batch.causes:
        want = expected[cause["key"]]
        assert (cause["runs"], cause["tests"], cause["repositories"], cause["repository_names"]) == (
            want["runs"], want["tests"], len(want["repos"]), sorted(want["repos"])), cause["key"]
        assert (cause["first_seen"], cause["last_seen"]) == (min(want["when"]), max(want["when"])), cause["key"]
    assert [(c["runs"], c["tests"]) for c in batch.causes] == sorted(((c["runs"], c["tests"]) for c in batch.causes),
                                                                     reverse=True)
    lock = next(c for c in batch.causes if c["key"] == "api:asyncio-lock-loop")
    # janus in alpha (its XML report and its pytest output) and the copy of its XML report in beta
    assert lock["repository_names"] == ["alpha", "beta"]
    assert lock["first_seen"] == "2023-06-01T12:00:00+00:00" and lock["last_seen"] == "2026-11-24T06:35:49+00:00"
    assert lock["tests"] == 69 * lock["runs"]


def test_timestamps_are_the_reports_own_else_the_files(batch: Batch) -> None:
    by_name = {Path(row["path"]).name: row for row in batch.rows if Path(row["path"]).parent.name == "alpha"}
    assert by_name["janus-0.4.0.xml"]["timestamp"] == "2026-11-24T06:35:49+00:00"
    assert by_name["janus-0.4.0.xml"]["timestamp_from"] == "report"
    assert by_name["janus-0.4.0.txt"]["timestamp"] == MTIME_ISO  # pytest's terminal output has no date
    assert by_name["janus-0.4.0.txt"]["timestamp_from"] == "mtime"


@pytest.mark.parametrize(("stated", "expected"), [
    ("2021-01-24T19:22:19", ("2021-01-24T19:22:19+00:00", "report")),  # naive: taken as UTC
    ("2022-01-01T00:00:00Z", ("2022-01-01T00:00:00+00:00", "report")),
    ("2026-11-24T08:31:00.252015+02:00", ("2026-11-24T06:31:00+00:00", "report")),
    ("0001-01-01T00:00:00Z", (MTIME_ISO, "mtime")),  # a placeholder, not a date
    ("yesterday", (MTIME_ISO, "mtime")),
    ("", (MTIME_ISO, "mtime")),
])
def test_timestamp_forms(stated: str, expected: tuple[str, str]) -> None:
    assert _timestamp(stated, MTIME) == expected


def _janus_times(n: int) -> bytes:
    """janus's real report with its test cases n times over (renamed): a file that keeps a worker busy."""
    text = JANUS.read_text(encoding="utf-8")
    first, last = text.index("<testcase "), text.rindex("</testsuite>")
    cases = text[first:last]
    return (text[:first] + "".join(cases.replace(' name="', f' name="copy{k}_') for k in range(n))
            + text[last:]).encode("utf-8")


def test_a_worker_killed_mid_batch_costs_no_file(tmp_path: Path) -> None:
    """SIGKILL a worker process while it diagnoses, on a cluster that gives a task up at its first worker
    death: the files of that task are diagnosed again one by one, and every row is as if nothing died."""
    for i in range(12):
        _copy(JANUS, tmp_path / "archive" / f"big-{i:02d}.xml", _janus_times(15))
    killed: list[int] = []
    others = {p.pid for p in multiprocessing.active_children()}  # the module's cluster may run in this process

    def kill_a_worker(done: int, total: int, bad: int) -> None:
        if not killed:  # both workers are busy: four partitions of two big files each are still in flight
            victim = next(p for p in multiprocessing.active_children()
                          if "Dask Worker" in p.name and p.pid not in others)
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    with local_cluster(2, allowed_failures=0) as address:
        result = diagnose_batch([str(tmp_path / "archive" / "*.xml")], scheduler=address, output=tmp_path / "rows.jsonl",
                                db=tmp_path / "kb.sqlite", partition_size=2, progress=kill_a_worker)
    assert killed and result.retried >= 1 and result.ok == 12
    files, base = expand([str(tmp_path / "archive" / "*.xml")])
    with open_store(tmp_path / "kb.sqlite") as store:
        expected = diagnose_files([(path, repository(path, base)) for path in files], Snapshot.of(store))
    assert read_table(tmp_path / "rows.jsonl") == expected
    assert sum(len(c["tests"]) for c in expected[0]["causes"]) == 69 * 15


def test_record_from_the_client(archive: Path, scheduler: str, tmp_path: Path, kb_cli: KbCli) -> None:
    db = tmp_path / "kb.sqlite"
    out = tmp_path / "rows.jsonl"
    done = kb_cli("batch", "diagnose", archive / "beta" / "*.xml", archive / "bad" / "*.xml", archive / "alpha" / "p*.xml",
                  "--scheduler", scheduler, "-o", out, "--record", "--db", db)
    assert done.returncode == 0, done.stderr
    rows = read_table(out)
    ok = [row for row in rows if row["status"] == "ok"]
    assert len(ok) == 5 and len(rows) == 8
    assert f"recorded {len(ok)} run(s) in the knowledge base" in done.stdout
    assert done.stderr.count("kb: could not read ") == 3
    with open_store(db) as store:
        runs = store.db.execute("SELECT id, sources, failures + errors FROM runs ORDER BY id").fetchall()
        diagnoses = store.db.execute("SELECT run_id, cause_key, tests FROM diagnoses ORDER BY run_id, rank").fetchall()
    assert [row["run_id"] for row in ok] == [r[0] for r in runs]
    assert [f'["{row["path"]}"]' for row in ok] == [r[1] for r in runs]
    assert [row["failed"] + row["errors"] for row in ok] == [r[2] for r in runs]
    assert diagnoses == [(row["run_id"], c["key"], len(c["tests"])) for row in ok for c in row["causes"]]
    assert all(row["run_id"] is None for row in rows if row["status"] == "error")


def test_parquet_holds_the_same_tables(batch: Batch, scheduler: str, tmp_path: Path) -> None:
    out = tmp_path / "rows.parquet"
    result = diagnose_batch(batch.globs, scheduler=scheduler, output=out, db=tmp_path / "kb.sqlite")
    assert result.aggregate_output == tmp_path / "rows.causes.parquet"
    assert read_table(out) == batch.rows
    assert read_table(result.aggregate_output) == batch.causes
    assert sorted(p.name for p in tmp_path.iterdir() if "rows" in p.name) == ["rows.causes.parquet", "rows.parquet"]


def test_parquet_without_pyarrow_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    kb_cli: KbCli) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an environment without pyarrow gives: ImportError
    done = kb_cli("batch", "diagnose", str(JANUS), "-o", str(tmp_path / "rows.parquet"))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("kb: error: Parquet output needs pyarrow") and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# -- the command's errors: one line, exit 1; usage errors exit 2; nothing written


@pytest.mark.parametrize(("args", "message"), [
    (["nowhere/*.xml"], "kb: error: nowhere/*.xml: no file matches"),
    (["nowhere.xml"], "kb: error: nowhere.xml: no such file"),
    ([str(REAL)], f"kb: error: {REAL}: a directory; give a glob of the reports in it"),
])
def test_inputs_that_match_nothing(args: list[str], message: str, tmp_path: Path, kb_cli: KbCli) -> None:
    done = kb_cli("batch", "diagnose", *args, "-o", tmp_path / "rows.jsonl")
    assert done.returncode == 1
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_and_an_unreachable_scheduler(tmp_path: Path, kb_cli: KbCli) -> None:
    done = kb_cli("batch", "diagnose", JANUS, "-o", tmp_path / "missing" / "rows.jsonl")
    assert done.returncode == 1
    assert done.stderr == f"kb: error: {tmp_path / 'missing' / 'rows.jsonl'}: cannot write: No such file or directory\n"
    done = kb_cli("batch", "diagnose", JANUS, "--scheduler", "nonsense", "-o", tmp_path / "r.jsonl")
    assert done.returncode == 1
    assert done.stderr == "kb: error: cannot reach the Dask scheduler at nonsense: missing port number in address " \
                          "'nonsense'\n"
    debug = kb_cli("batch", "diagnose", JANUS, "--scheduler", "nonsense", "-o", tmp_path / "r.jsonl", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert debug.stderr.endswith(done.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["--workers", "0", "-o", "x.jsonl"], [], ["--repo-depth", "0", "-o", "x.jsonl"]])
def test_usage_errors(args: list[str], kb_cli: KbCli) -> None:
    done = kb_cli("batch", "diagnose", JANUS, *args)
    assert done.returncode == 2 and "Usage: kb batch diagnose" in done.stderr


# -- inputs and repositories


def test_expand_and_repository(tmp_path: Path) -> None:
    for name in ("org/a/job1/r.xml", "org/a/job2/r.xml", "org/b/r.xml", "top.xml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<testsuite/>")
    files, base = expand([str(tmp_path / "org" / "**" / "*.xml"), str(tmp_path / "org" / "a" / "*" / "r.xml")])
    assert base == str(tmp_path / "org")
    assert files == [str(tmp_path / n) for n in ("org/a/job1/r.xml", "org/a/job2/r.xml", "org/b/r.xml")]
    assert [repository(f, base) for f in files] == ["a", "a", "b"]
    assert [repository(f, base, 2) for f in files] == ["a/job1", "a/job2", "b"]
    files, base = expand([str(tmp_path / "top.xml")])
    assert base == str(tmp_path) and repository(files[0], base) == tmp_path.name
    assert aggregate_path("out/runs.jsonl") == Path("out/runs.causes.jsonl")
    assert aggregate_path("runs") == Path("runs.causes.jsonl")


# -- the knowledge snapshot


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Snapshot]]:
    with open_store(tmp_path_factory.mktemp("kb") / "kb.sqlite") as store:
        yield store, Snapshot.of(store)


def _by_id(rows: list[list[Any]]) -> list[list[str]]:
    """Each symptom's rows by id: within one key SQL gives rows in storage order, the snapshot in id order."""
    return [sorted(row.id for row in found) for found in rows]


def test_snapshot_finds_what_the_store_finds_for_the_corpus_symptoms(knowledge: tuple[Any, Snapshot]) -> None:
    store, snapshot = knowledge
    engine = Engine(store.rules())
    symptoms: list[Symptom] = []
    for path in sorted([*REAL.glob("*/*.xml"), *REAL.glob("*/*.txt"), *(CORPUS / "reports").glob("*/*.*")]):
        try:
            run = read_report(path)
        except KbError:
            continue
        facts = [FailureFact(f.id, f.exception, f.phase, f.message, f.text, f.chain) for f in failures_from_run(run)]
        symptoms.extend(engine.matcher.symptoms(facts)[0])
    kinds = {s.kind for s in symptoms}
    assert {"missing_name", "missing_attribute", "unexpected_kwarg", "missing_module", "missing_argument"} <= kinds
    found = store.api_rows(symptoms)
    assert sum(map(len, found)) >= 20
    assert _by_id(snapshot.api_rows(symptoms)) == _by_id(found)


def test_snapshot_finds_every_row_by_each_of_its_keys(knowledge: tuple[Any, Snapshot]) -> None:
    """A symptom of every kind for every API row the KB holds: each lookup key, against the store's SQL."""
    store, snapshot = knowledge
    wanted: dict[Symptom, None] = {}  # distinct symptoms, in a stable order
    for row in store.all_api_rows():
        tail = row.name.rsplit(".", 1)[-1]
        wanted[Symptom("r", "missing_name", (("module", row.module), ("name", row.name)))] = None
        wanted[Symptom("r", "missing_attribute", (("module", "builtins"), ("name", row.name)))] = None
        wanted[Symptom("r", "bad_call", (("tail", tail),))] = None
        wanted[Symptom("r", "missing_module", (("module", row.module), ("top", row.module.split(".", 1)[0])))] = None
        if row.param:
            wanted[Symptom("r", "unexpected_kwarg", (("param", row.param), ("tail", tail)))] = None
            wanted[Symptom("r", "missing_argument", (("param", row.param), ("tail", tail)))] = None
    symptoms = list(wanted)
    assert len(symptoms) > 10_000
    found = store.api_rows(symptoms)
    assert _by_id(snapshot.api_rows(symptoms)) == _by_id(found)
    assert all(rows for s, rows in zip(symptoms, found, strict=True) if s.kind == "missing_name")  # each row by its own name
    assert sum(1 for s, rows in zip(symptoms, found, strict=True) if s.kind == "bad_call" and rows) > 0


def test_snapshot_distributions_learned_and_pickling(knowledge: tuple[Any, Snapshot], tmp_path: Path) -> None:
    store, snapshot = knowledge
    names = [d.import_name for d in store.all_distributions()] + ["no_such_module_anywhere"]
    assert snapshot.distributions(names) == sorted(store.distributions(names), key=lambda d: d.import_name)
    copy = pickle.loads(pickle.dumps(snapshot))
    assert copy.digest == snapshot.digest and copy.rules() == snapshot.rules()
    symptom = Symptom("r", "missing_name", (("module", "collections"), ("name", "Mapping")))
    assert copy.api_rows([symptom]) == snapshot.api_rows([symptom]) != [[]]
    with open_store(tmp_path / "kb.sqlite") as other:
        before = Snapshot.of(other)
        assert before.digest == snapshot.digest  # the same packs: the same knowledge
        other.record_outcome("api:collections-mapping", "py-cannot-import-name", "verified", {})
        after = Snapshot.of(other)
        assert after.digest != before.digest  # learning changes the knowledge a worker must use
        assert after.learned("api:collections-mapping") == other.learned("api:collections-mapping") == (1, 0)
        assert after.learned("api:nothing") == other.learned("api:nothing") == (0, 0)
