"""DiagnosticLogger: structured context, durations, state changes and errors as JSON lines.

::

    from kb.log import DiagnosticLogger

    log = DiagnosticLogger("run.jsonl")            # a path or any text stream
    log.bridge_logging()                           # stdlib logging records get the current context
    with log.context("phase", name="import"):
        with log.context("step", file="a.csv") as ctx:
            ctx["rows"] = 120                      # attributes may be added while it runs
            log.state_change("cache", "size", 0, 120)
            logging.getLogger("app").info("loaded")  # → a "log" record inside phase/step
    log.close()

Contexts nest through :mod:`contextvars`, so each thread and each asyncio task sees its own
stack: a task inherits the context that was current when it was created and its children do not
leak back; a new thread starts at the top (``contextvars.copy_context().run`` carries a stack
into it). Each context is written when it ends, with its start, duration, outcome (``ok`` or
``error``) and, on error, the exception chain with the file/line/function of every frame.

Every line is one JSON object valid against ``schemas/log-record.schema.json``; its ``type`` is
``run`` (first line), ``context``, ``state``, ``log``, ``error``, ``env``, ``test`` or
``collect-error`` (the last three are written by the pytest plugin). Writes are serialised
by a lock and buffered (``flush_every`` records); ``close()`` flushes. Standard library only.
"""

from __future__ import annotations

import contextvars
import io
import itertools
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

__all__ = ["DiagnosticLogger", "ContextFilter", "exception_chain", "current_context", "read_records", "read_run_file",
           "timeline", "FORMAT", "FORMAT_VERSION"]

FORMAT = "kb-run"
FORMAT_VERSION = 1
#: the context stack of the running thread / task: tuple of (id, name)
_STACK: contextvars.ContextVar[tuple[tuple[int, str], ...]] = contextvars.ContextVar("kb_log_stack", default=())
_IDS = itertools.count(1)
MAX_TEXT = 20_000


def current_context() -> list[str]:
    """Names of the contexts open here, outermost first."""
    return _where()[0]


def _where() -> tuple[list[str], int | None]:
    """The open contexts' names and the id of the innermost one that writes a record."""
    stack = _STACK.get()
    return [name for _, name in stack], (stack[-1][0] or None) if stack else None


def exception_chain(exc: BaseException, limit: int = 20) -> list[dict[str, Any]]:
    """The exception and the ones it was raised from/while handling, oldest first, each with its frames."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < limit:
        chain.append(current)
        seen.add(id(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    out = []
    for item in reversed(chain):
        frames = [{"file": f.filename, "line": f.lineno, "function": f.name}
                  for f in traceback.extract_tb(item.__traceback__)] if item.__traceback__ else []
        kind = type(item)
        name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__qualname__}"
        out.append({"type": name, "message": _text(str(item)), "frames": frames})
    return out


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f"… [{len(value) - MAX_TEXT} more characters]"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, str) else _text(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return _text(repr(value))


class DiagnosticLogger:
    """Writes structured diagnostic records as JSON lines (see the module docstring)."""

    def __init__(self, sink: str | os.PathLike[str] | TextIO, *, run: dict[str, Any] | None = None,
                 flush_every: int = 500) -> None:
        if isinstance(sink, str | os.PathLike):
            path = Path(sink)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._stream: TextIO = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._stream, self._owned = sink, False
        self._lock = threading.Lock()
        self._buffer: list[str] = []
        self._flush_every = flush_every
        self._bridged: list[tuple[logging.Logger, logging.Handler]] = []
        self.closed = False
        self.write({"type": "run", "format": FORMAT, "version": FORMAT_VERSION, "pid": os.getpid(),
                    **({"attrs": _jsonable(run)} if run else {})})

    # ------------------------------------------------------------------ records
    def write(self, record: dict[str, Any]) -> None:
        """Write one record (``ts`` and, when missing, the current ``context`` are added)."""
        record.setdefault("ts", time.time())
        if record["type"] not in ("run", "env", "context"):
            names, cid = _where()
            record.setdefault("context", names)
            if cid:
                record.setdefault("cid", cid)
        line = json.dumps(record, ensure_ascii=False, default=repr)
        with self._lock:
            if self.closed:
                return
            self._buffer.append(line)
            if len(self._buffer) >= self._flush_every:
                self._flush_locked()

    def _flush_locked(self) -> None:
        if self._buffer:
            self._stream.write("\n".join(self._buffer) + "\n")
            self._buffer.clear()
            self._stream.flush()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Flush, detach the logging bridge, and close a file this logger opened."""
        for logger, handler in self._bridged:
            logger.removeHandler(handler)
        self._bridged.clear()
        with self._lock:
            if self.closed:
                return
            self._flush_locked()
            self.closed = True
            if self._owned:
                self._stream.close()

    def __enter__(self) -> DiagnosticLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ contexts
    @contextmanager
    def context(self, name: str, /, **attrs: Any) -> Iterator[dict[str, Any]]:
        """A named context (nested under the current one); yields its attributes, which may be added to
        (setting ``attrs["outcome"]`` to passed/failed/skipped records that instead of ``ok``)."""
        ident = next(_IDS)
        stack = _STACK.get()
        parent = stack[-1][0] if stack and stack[-1][0] else None
        token = _STACK.set((*stack, (ident, name)))
        started, clock = time.time(), time.perf_counter()
        outcome, error = "ok", None
        try:
            yield attrs
        except BaseException as exc:
            outcome, error = "error", exception_chain(exc)
            raise
        finally:
            duration = time.perf_counter() - clock
            _STACK.reset(token)
            if outcome == "ok" and attrs.get("outcome") in ("passed", "failed", "skipped"):
                outcome = attrs.pop("outcome")  # the caller's own verdict (a test's outcome)
            record = {"type": "context", "id": ident, "parent": parent, "name": name,
                      "context": [n for _, n in stack], "start": started, "duration": duration,
                      "outcome": outcome, "attrs": _jsonable(attrs)}
            if error:
                record["error"] = error
            self.write(record)

    @contextmanager
    def scope(self, name: str, /) -> Iterator[None]:
        """Name a nested scope for the records written inside it, without a context record of its own
        (cheap: for scopes whose timing is recorded some other way, like pytest's test phases)."""
        stack = _STACK.get()
        # it shares its parent's id: records inside belong to the nearest context with a record
        token = _STACK.set((*stack, (stack[-1][0] if stack else 0, name)))
        try:
            yield
        finally:
            _STACK.reset(token)

    def switch_scope(self, name: str, /) -> None:
        """Make the innermost scope ``name``, replacing a scope opened the same way (no record, no
        exit needed: the enclosing :meth:`context` restores the stack when it ends). Cheaper than a
        ``with`` per step for hot loops such as pytest's setup → call → teardown."""
        stack = _STACK.get()
        if len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            stack = stack[:-1]
        _STACK.set((*stack, (stack[-1][0] if stack else 0, name)))

    def state_change(self, subject: str, field: str, before: Any, after: Any, /, **attrs: Any) -> None:
        """Record that ``subject.field`` went from ``before`` to ``after`` in the current context."""
        self.write({"type": "state", "subject": subject, "field": field, "before": _jsonable(before),
                    "after": _jsonable(after), **({"attrs": _jsonable(attrs)} if attrs else {})})

    def error(self, exc: BaseException, message: str = "", /, **attrs: Any) -> None:
        """Record an exception (with its whole chain) in the current context."""
        self.write({"type": "error", "message": _text(message or str(exc)), "chain": exception_chain(exc),
                    **({"attrs": _jsonable(attrs)} if attrs else {})})

    # ------------------------------------------------------------------ stdlib logging
    def bridge_logging(self, logger: logging.Logger | None = None, level: int = logging.NOTSET) -> logging.Handler:
        """Send ``logger``'s records (the root logger by default) here, stamped with the current context."""
        handler = _Handler(self, level)
        target = logger or logging.getLogger()
        target.addHandler(handler)
        self._bridged.append((target, handler))
        return handler


class ContextFilter(logging.Filter):
    """Stamps every record with ``record.kb_context`` (the open contexts, outermost first), so any
    handler or formatter (``%(kb_context)s``) sees where it was logged — no change to the code that logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.kb_context = current_context()
        return True


class _Handler(logging.Handler):
    def __init__(self, log: DiagnosticLogger, level: int) -> None:
        super().__init__(level)
        self.log = log
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            names, cid = _where()
            entry: dict[str, Any] = {
                "type": "log", "ts": record.created, "logger": record.name, "level": record.levelname,
                "message": _text(record.getMessage()), "file": record.pathname, "line": record.lineno,
                "context": getattr(record, "kb_context", names), "thread": record.threadName,
            }
            if cid:
                entry["cid"] = cid
            if record.exc_info and record.exc_info[1] is not None:
                entry["error"] = exception_chain(record.exc_info[1])
            self.log.write(entry)
        except Exception:  # a logging handler must never raise into the code that logs
            self.handleError(record)


def read_records(source: str | os.PathLike[str] | io.TextIOBase) -> Iterator[dict[str, Any]]:
    """The records of a run file (blank lines skipped)."""
    stream = open(source, encoding="utf-8") if isinstance(source, str | os.PathLike) else source  # noqa: SIM115
    try:
        for line in stream:
            if line.strip():
                yield json.loads(line)
    finally:
        if stream is not source:
            stream.close()


def read_run_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of the run file at ``path``; a file that cannot be read, or is not a run file (a
    line that is not a JSON object, a first line that is not the run record), is a KbError naming it."""
    from .errors import KbError

    try:
        records = list(read_records(path))
    except OSError as exc:
        raise KbError(f"{path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise KbError(f"{path}: not a kb run file ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    odd = next((n for n, record in enumerate(records, 1) if not isinstance(record, dict)), None)
    if odd is not None:  # JSON, but not a record: "[1, 2]", "3"
        raise KbError(f"{path}: not a kb run file (record {odd} is not a JSON object)")
    if not records or records[0].get("format") != FORMAT:
        raise KbError(f"{path}: not a kb run file (its first line is not a run record)")
    return records


def timeline(records: list[dict[str, Any]], *, slowest: int | None = None) -> list[str]:
    """A run file as readable lines: contexts as an indented tree (children in start order) with
    durations and outcomes, each context's state changes, errors, logs and test phases under it;
    with ``slowest`` the N slowest contexts instead, slowest first."""
    contexts = {r["id"]: r for r in records if r.get("type") == "context"}
    if slowest:
        ranked = sorted(contexts.values(), key=lambda r: -r["duration"])[:slowest]
        return [f"{_ms(r['duration']):>10}  {' / '.join([*r['context'], _label(r)])}  {r['outcome']}" for r in ranked]
    children: dict[int | None, list[dict[str, Any]]] = {}
    for record in contexts.values():
        children.setdefault(record.get("parent"), []).append(record)
    inside: dict[int | None, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("type") in ("state", "error", "log", "test", "collect-error"):
            inside.setdefault(record.get("cid"), []).append(record)
    lines = [_line(r) for r in records if r.get("type") in ("run", "env")]

    def walk(parent: int | None, depth: int) -> None:
        for record in inside.get(parent, []) if parent is not None else []:
            lines.append("  " * depth + _line(record))
        for record in sorted(children.get(parent, []), key=lambda r: r["start"]):
            lines.append(f"{'  ' * depth}{_label(record)}  {_ms(record['duration'])}  {record['outcome']}")
            walk(record["id"], depth + 1)

    walk(None, 0)
    lines.extend(_line(r) for r in inside.get(None, []))  # written outside any context
    return lines


def _label(record: dict[str, Any]) -> str:
    attrs = record.get("attrs") or {}
    shown = ", ".join(f"{k}={v}" for k, v in attrs.items() if k not in ("rootdir",))
    return f"{record['name']} {attrs['nodeid']}" if "nodeid" in attrs else \
        f"{record['name']}" + (f" ({shown})" if shown else "")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _line(record: dict[str, Any]) -> str:
    kind = record["type"]
    if kind == "run":
        return f"run file v{record.get('version')} (pid {record.get('pid')})"
    if kind == "env":
        return (f"environment: Python {record.get('python')} on {record.get('platform')}, "
                f"{len(record.get('distributions') or {})} distributions")
    if kind == "state":
        return f"· {record['subject']}.{record['field']}: {record['before']!r} → {record['after']!r}"
    if kind == "error":
        return f"! {record['message']}"
    if kind == "log":
        return f"[{record['level']}] {record['logger']}: {record['message']}"
    if kind == "test":
        tail = f"  {record['message']}" if record.get("message") else ""
        return f"{record['phase']}  {_ms(record['duration'])}  {record['outcome']}{tail}"
    return f"collection error {record['nodeid']}: {record['message']}"
