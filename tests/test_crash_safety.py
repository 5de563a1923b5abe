"""SIGKILL during kb's apply, then recovery: no file corrupted or half-written (a few trials;
benchmarks/crash_trials.py runs 50+)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from crashtrial import trial  # noqa: E402  (shared with benchmarks/crash_trials.py)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_kill_at_a_random_moment(tmp_path: Path, seed: int) -> None:
    assert trial(tmp_path / "proj", seed) in ("completed", "rolled back", "untouched")
