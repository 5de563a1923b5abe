"""Report content reaches a terminal shown, never obeyed; error lines stay one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kb.terminal import one_line, safe_text

OSC = "\x1b]0;owned\x07\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\"


def test_control_sequences_are_escaped_and_lines_kept() -> None:
    assert safe_text(f"a {OSC}\r\nb\tc\u202e") == "a \\x1b]0;owned\\x07\\x1b]8;;http://evil\\x1b\\link\\x1b]8;;\\x1b\\\\x0d\nb\tc\\u202e"
    assert one_line("x\nkb: forged") == "x\\nkb: forged"
    assert len(one_line("y" * 10_000)) == 2000


def test_a_report_with_escape_sequences_and_a_forged_error_line(tmp_path: Path) -> None:
    text = (Path(__file__).parent / "corpus/real/fs-2.4.16/pytest.txt").read_text()
    report = tmp_path / "pytest.txt"
    report.write_text(text.replace("No module named 'pkg_resources'", f"No module named 'pkg_resources{OSC}'"))
    done = subprocess.run([sys.executable, "-m", "kb", "diagnose", str(report), "--no-record"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\\x1b]0;owned\\x07" in done.stdout
    broken = tmp_path / "bad.xml"
    broken.write_text("<testsuite><testcase name='a'><failure><![CDATA[\nkb: error: forged\n")
    done = subprocess.run([sys.executable, "-m", "kb", "diagnose", str(broken)], capture_output=True, text=True)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("kb: error: ") and "\nkb: error: forged" not in done.stderr
