"""Running a test command: the process (its own group, killed whole on timeout, output drained by a thread),
which commands are pytest, and a pytest command without its test selection. The lowest layer of kb/run:
:mod:`kb.run.orchestrate` and :mod:`kb.run.ordered` both build on it."""

from __future__ import annotations

import codecs
import io
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["DEFAULT_TIMEOUT", "execute", "is_pytest", "without_selection"]

DEFAULT_TIMEOUT = 900


#: the interpreter's own options that take a value as the next argument (``python -X dev -m pytest``)
_PYTHON_VALUE_OPTIONS = {"-X", "-W", "--check-hash-based-pycs"}
#: one argument of the interpreter's single-letter flags, ``-m`` last or with its module: -I, -bb, -Im, -Impytest
_FLAGS_THEN_MODULE = re.compile(r"-([bBdEhiIOPqRsSuvVx]*)m(.*)")


def is_pytest(cmd: Sequence[str]) -> bool:
    """``pytest …``, ``py.test …``, ``python -m pytest …`` (any interpreter path), also with the interpreter's
    own options first (``python -I -X dev -m pytest``, ``python3 -bb -mpytest``, ``python -Im pytest``)."""
    if not cmd:
        return False
    if Path(cmd[0]).name in ("pytest", "py.test"):
        return True
    if not Path(cmd[0]).name.startswith("python"):
        return False
    index = 1
    while index < len(cmd) and cmd[index].startswith("-") and cmd[index] != "-":
        module = _FLAGS_THEN_MODULE.fullmatch(cmd[index])
        if module:
            named = module.group(2) or (cmd[index + 1] if index + 1 < len(cmd) else "")
            return named == "pytest"
        if cmd[index].startswith("-c") or not cmd[index].startswith(("-X", "-W", "--")) and "c" in cmd[index]:
            return False  # -c 'code' (alone or after other flags): the module is not pytest
        index += 2 if cmd[index] in _PYTHON_VALUE_OPTIONS else 1
    return False


def execute(cmd: list[str], root: str | Path, timeout: float, echo: Callable[[str], None] | None,
             env: dict[str, str] | None = None) -> tuple[int | None, str, float, str | None, str | None]:
    """(status, output, seconds, problem, signal name). The command gets its own process group so a
    timeout kills everything it started; a thread drains its output (echoing it as it comes). ``env``
    adds to (or overrides) kb's own environment."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})
    except FileNotFoundError:
        return None, "", 0.0, f"command not found: {cmd[0]}", None
    except PermissionError:
        return None, "", 0.0, f"command not executable: {cmd[0]}", None
    chunks: list[bytes] = []

    def drain() -> None:
        stream = proc.stdout
        assert isinstance(stream, io.BufferedReader)  # a buffered binary pipe (typeshed says IO[bytes]: no read1)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        for piece in iter(lambda: stream.read1(65536), b""):
            chunks.append(piece)
            if echo:
                echo(decoder.decode(piece))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    reader.join(timeout=5)
    seconds = time.monotonic() - started
    output = b"".join(chunks).decode("utf-8", "replace")
    if timed_out:
        return None, output, seconds, f"timed out after {timeout:g} s (killed)", "SIGKILL"
    status = proc.returncode
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return status, output, seconds, f"killed by {name}", name
    return status, output, seconds, None, None


#: pytest options whose value is the next argument (so a path there is not a test selection)
_VALUE_OPTIONS = {"-c", "-k", "-m", "-p", "-o", "-W", "--rootdir", "--confcutdir", "--basetemp", "--ignore",
                  "--ignore-glob", "--deselect", "--config-file", "--override-ini", "--tb", "-r"}


def without_selection(command: list[str], root: str | Path) -> list[str]:
    """The test command without the paths and node ids it selects (targeted re-runs name their own tests,
    and a path left on the command line would re-run the whole selection)."""
    kept: list[str] = []
    for index, arg in enumerate(command):
        previous = command[index - 1] if index else ""
        selects = (index >= 1 and not arg.startswith("-") and previous not in _VALUE_OPTIONS
                   and (Path(root, arg.split("::", 1)[0]).exists() or "::" in arg))
        if selects and not (index <= 2 and (arg == "pytest" or Path(arg).name.startswith("python"))):
            continue
        kept.append(arg)
    return kept
