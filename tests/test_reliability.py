"""A short run of the reliability campaign (benchmarks/reliability/): the same trials through the real kb
command — kills during fix, undo and recording diagnose, malformed inputs, hostile packs, damaged KBs —
a few of each. The full campaign (2,000+ trials) prints its table from campaign.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks" / "reliability"))
from trials import KINDS, Lab, run_kind  # noqa: E402  (shared with benchmarks/reliability/campaign.py)

SHORT = {"kill_fix": 6, "kill_undo": 4, "kill_diagnose": 2, "runfile_mutant": 12, "junit_mutant": 8, "bomb": 8,
         "sparse": 1, "hostile_pack": 7, "damaged_kb": 3}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("reliability"), seed=1)


@pytest.mark.slow  # 35 s in all, one lab: the kinds stay together
@pytest.mark.parametrize("kind", list(KINDS))
def test_kb_holds(lab: Lab, kind: str) -> None:
    method = KINDS[kind][0]
    assert run_kind(lab, method, SHORT[method]) == []
