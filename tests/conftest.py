"""Shared fixtures: paths into the copied corpora, an isolated KB per test."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
REAL = CORPUS / "real"


@pytest.fixture(autouse=True)
def _isolated_kb(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own KB file via KB_DB, so no test writes into the checkout."""
    path = tmp_path_factory.mktemp("kb") / "kb.sqlite"
    monkeypatch.setenv("KB_DB", str(path))
    return path
