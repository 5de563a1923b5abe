"""The CLI frictions of issue 16, each fixed and held here: kb run keeps the user's --junitxml, pytest keeps
its colour under kb run on a terminal, kb's own colour only where wanted (NO_COLOR, FORCE_COLOR), the
progress line fits the terminal, kb export into a missing folder and kb fix --patch with nothing to change."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import _Progress, cli
from kb.report import render
from kb.run.orchestrate import run_command, split_junitxml
from kb.terminal import colour_wanted

from .conftest import REAL
from .projects import write_project

PYJWT = str(REAL / "pyjwt-1.5.3" / "report.xml")
PYTEST = [sys.executable, "-m", "pytest"]
SGR = re.compile(r"\x1b\[[0-9;]*m")
PROJECT = {
    "tests/test_a.py": "def test_ok():\n    assert True\n\n\ndef test_no():\n    assert 1 == 2\n",
    "tests/test_b.py": "def test_also_ok():\n    assert True\n",
}


def _testcases(path: Path) -> list[str]:
    return sorted(case.get("name", "") for case in ET.parse(path).getroot().iter("testcase"))


# -- kb run and the user's --junitxml

@pytest.mark.parametrize("spelling", [["--junitxml=out/user.xml"], ["--junitxml", "out/user.xml"],
                                      ["--junit-xml=out/user.xml"]])
def test_kb_run_writes_the_users_own_junitxml(tmp_path: Path, spelling: list[str]) -> None:
    root = write_project(tmp_path / "proj", PROJECT)
    result = CliRunner().invoke(cli, ["run", "--root", str(root), "--quiet", "--format", "json", "--",
                                      *PYTEST, *spelling])
    assert result.exit_code == 1, result.output  # pytest's own status: a test failed
    assert _testcases(root / "out" / "user.xml") == ["test_also_ok", "test_no", "test_ok"]
    assert '"failures": 1' in result.stdout  # and kb read the same report


def test_re_runs_do_not_overwrite_the_users_report(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", PROJECT)
    result = CliRunner().invoke(cli, ["run", "--root", str(root), "--quiet", "--repeat", "1", "--",
                                      *PYTEST, "--junitxml", "user.xml"])
    assert result.exit_code == 1, result.output
    assert _testcases(root / "user.xml") == ["test_also_ok", "test_no", "test_ok"]


def test_split_junitxml() -> None:
    assert split_junitxml(["pytest", "-q", "--junitxml", "a.xml", "tests"]) == (["pytest", "-q", "tests"], "a.xml")
    assert split_junitxml(["pytest", "--junit-xml=a.xml", "--junitxml=b.xml"]) == (["pytest"], "b.xml")
    assert split_junitxml(["pytest", "tests"]) == (["pytest", "tests"], None)


# -- pytest's colour under kb run

def test_pytest_gets_colour_when_its_output_reaches_a_terminal(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", PROJECT)
    coloured = run_command(PYTEST, root, colour=True)
    assert "--color=yes" in coloured.command and SGR.search(coloured.output)
    assert coloured.run is not None and coloured.run.failures == 1  # the XML is read as before
    plain = run_command(PYTEST, root)
    assert "--color=yes" not in plain.command and not SGR.search(plain.output)
    theirs = run_command([*PYTEST, "--color=no"], root, colour=True)
    assert "--color=yes" not in theirs.command and not SGR.search(theirs.output)


def _on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a real pseudo-terminal and stdout piped: (status, terminal text, stdout)."""
    import pty

    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                piece = os.read(master, 65536)
            except OSError:  # the other side closed
                return
            if not piece:
                return
            chunks.append(piece)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out, _ = proc.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace"), out.decode("utf-8", "replace")


def test_kb_run_on_a_real_terminal_keeps_pytests_colour_and_pipes_plain(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", PROJECT)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "PY_COLORS")}
    env.update(KB_DB=str(tmp_path / "kb.sqlite"), TERM="xterm")
    status, terminal, stdout = _on_a_terminal([sys.executable, "-m", "kb", "run", "--", *PYTEST], root, env)
    assert status == 1
    assert SGR.search(terminal) and "1 failed, 2 passed" in SGR.sub("", terminal)  # pytest, coloured
    assert "Root causes" in stdout and "\x1b" not in stdout  # kb's report, piped: plain
    status, terminal, _ = _on_a_terminal([sys.executable, "-m", "kb", "run", "--", *PYTEST], root,
                                         {**env, "NO_COLOR": "1"})
    assert status == 1 and "1 failed, 2 passed" in terminal and not SGR.search(terminal)


# -- kb's own colour

class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream", "env", "wanted"), [
    (_Tty(), {}, True),
    (io.StringIO(), {}, False),
    (_Tty(), {"NO_COLOR": "1"}, False),
    (_Tty(), {"NO_COLOR": ""}, True),  # set but empty: not asked
    (_Tty(), {"TERM": "dumb"}, False),
    (io.StringIO(), {"FORCE_COLOR": "1"}, True),
    (io.StringIO(), {"FORCE_COLOR": ""}, False),
    (io.StringIO(), {"FORCE_COLOR": "1", "NO_COLOR": "1"}, True),  # force-color.org: FORCE_COLOR wins
])
def test_colour_wanted(stream: io.StringIO, env: dict[str, str], wanted: bool) -> None:
    assert colour_wanted(stream, env) is wanted


@pytest.mark.parametrize(("env", "coloured"), [({}, False), ({"NO_COLOR": "1"}, False), ({"FORCE_COLOR": "1"}, True),
                                               ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, True)])
def test_kb_diagnose_colours_only_when_wanted(env: dict[str, str], coloured: bool) -> None:
    clean = {"NO_COLOR": None, "FORCE_COLOR": None, **env}
    result = CliRunner().invoke(cli, ["diagnose", PYJWT, "--no-record"], env=clean)
    assert result.exit_code == 0, result.output
    assert bool(SGR.search(result.stdout)) is coloured
    if coloured:
        assert "\x1b[1;36m1. collections.Mapping was moved" in result.stdout
        plain = CliRunner().invoke(cli, ["diagnose", PYJWT, "--no-record"], env={"NO_COLOR": None, "FORCE_COLOR": None})
        assert SGR.sub("", result.stdout) == plain.stdout  # colour adds styles, nothing else


def test_colour_never_lets_report_content_through() -> None:
    doc = {"kb_version": "0", "sources": ["r.xml"], "format": "junit",
           "summary": {"tests": 1, "passed": 0, "failures": 1, "errors": 0, "skipped": 0}, "root_causes": [],
           "undiagnosed": [{"test": "t\x1b]0;owned\x07", "exception": "E", "message": "m\x1b[31mred"}]}
    painted = render(doc, "text", colour=True)
    assert "\\x1b]0;owned\\x07" in painted and "\\x1b[31mred" in painted
    assert SGR.sub("", painted) == render(doc, "text")  # the only escapes are kb's own styles
    for fmt in ("sarif", "github", "gitlab", "markdown", "json"):
        assert render(doc, fmt, colour=True) == render(doc, fmt)  # colour is for the text report only


@pytest.mark.parametrize(("env", "shown"), [
    ({"FORCE_COLOR": "1"}, "   \x1b[1;31mrolled back\x1b[0m: a test broke (fix f1; undo with kb undo f1)\n"),
    ({}, "   rolled back: a test broke (fix f1; undo with kb undo f1)\n")])
def test_a_fix_verdict_is_coloured_only_when_wanted(env: dict[str, str], shown: str) -> None:
    from types import SimpleNamespace

    from kb.cli import _show_events

    outcome = SimpleNamespace(verdict="rolled back", note="a test broke", fix_id="f1")
    with CliRunner().isolation(env={"NO_COLOR": None, "FORCE_COLOR": None, **env}) as (out, _, _):
        counts = _show_events([SimpleNamespace(kind="outcome", item=None, outcome=outcome)], [])
    assert out.getvalue().decode() == shown and counts["rolled back"] == 1


# -- the progress line

def test_the_progress_line_fits_the_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): os.terminal_size((40, 24)))
    progress = _Progress()
    progress.live = True
    progress("bisecting the 120 tests before tests/test_something_long.py::test_victim for the polluter", 7)
    progress("short", 8)
    progress.done()
    err = capsys.readouterr().err
    segments = [s for s in err.split("\r") if s]
    assert segments and all(len(s) <= 39 for s in segments), segments
    assert segments[0].endswith("…") and segments[1].startswith("kb: short · 8 run(s)")
    assert segments[-1].strip() == ""  # done() clears it


# -- kb export, kb fix --patch

def test_kb_export_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "history.db"
    done = subprocess.run([sys.executable, "-m", "kb", "export", "datasette", str(out)], capture_output=True,
                          text=True, env={**os.environ, "KB_DB": str(tmp_path / "kb.sqlite")})
    assert done.returncode == 1
    assert done.stderr == f"kb: error: {out}: no folder {out.parent} to write into (create it first)\n"
    assert not (tmp_path / "missing").exists()


def test_kb_fix_with_nothing_to_change_says_so_and_writes_no_patch(tmp_path: Path) -> None:
    patch = tmp_path / "fix.patch"
    result = CliRunner().invoke(cli, ["fix", PYJWT, "--root", str(tmp_path), "--patch", str(patch)])
    assert result.exit_code == 0, result.output
    assert f"no patch written to {patch}: nothing changed" in result.stdout and "git apply" not in result.stdout
    assert not patch.exists()
