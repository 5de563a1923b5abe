"""The README's first screen is executable: its two commands, its shown output, and .ci/run agree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .readme import README, ROOT, block


def test_readme_has_exactly_two_setup_commands_on_its_first_screen() -> None:
    first_screen = "\n".join(README.splitlines()[:40])
    assert "<!-- command-a -->" in first_screen and "<!-- command-b -->" in first_screen
    assert len(block("command-a").strip().splitlines()) == 1
    assert len(block("command-b").strip().splitlines()) == 1


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = block("command-b").strip()
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in ci_lines


def test_command_a_prints_the_output_the_readme_shows(tmp_path: Path) -> None:
    command = block("command-a").strip()
    kb_part = command.split("&&")[-1].strip()
    assert kb_part.startswith("kb diagnose ")
    args = kb_part.split()[1:]
    result = subprocess.run([sys.executable, "-m", "kb", *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "KB_DB": str(tmp_path / "kb.sqlite"), "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    shown = block("output-a")
    # the run id depends on how often the KB was used; everything else is stable
    assert re.sub(r"recorded as run \d+", "recorded as run N", result.stdout) == \
        re.sub(r"recorded as run \d+", "recorded as run N", shown)


@pytest.mark.slow
def test_every_usage_command_runs(tmp_path: Path) -> None:
    """Each line of the README's usage block, run from the checkout as a user would."""
    lines = [line.split("  #", 1)[0].strip() for line in block("usage").splitlines()]
    env = {**os.environ, "KB_DB": str(tmp_path / "kb.sqlite")}
    for line in filter(None, lines):
        assert line.startswith("kb ")
        command = (f'"{sys.executable}" -m kb {line[3:]}'
                   .replace("-o summary.md", f"-o {tmp_path / 'summary.md'}")
                   .replace("-o batch.jsonl", f"-o {tmp_path / 'batch.jsonl'}")
                   .replace("--patch fix.patch", f"--patch {tmp_path / 'fix.patch'}")
                   .replace(" -- python ", f' -- "{sys.executable}" '))
        result = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, env=env)
        assert result.returncode == 0, f"{line}: {result.stderr}"
        assert result.stdout or "-o " in line, line
    assert not (ROOT / "fix.patch").exists() and not (ROOT / "summary.md").exists()
