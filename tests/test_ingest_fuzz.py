"""Hypothesis: ingest raises nothing but kb's own ReportError, on any bytes or mutated corpus files."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings, strategies as st

from kb.errors import ReportError
from kb.ingest import read_report

from .conftest import CORPUS, REAL

SEEDS = [p.read_bytes() for p in sorted((CORPUS / "reports" / "pytest").glob("*.xml"))[:4]]
SEEDS += [(REAL / "janus-0.4.0" / "pytest.txt").read_bytes()[:20_000], (REAL / "pyjwt-1.5.3" / "report.xml").read_bytes()]


def _read(data: bytes) -> None:
    try:
        read_report("-", stdin=io.BytesIO(data))
    except ReportError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data: bytes) -> None:
    _read(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=8)), max_size=6),
       st.integers(0, 10**6))
def test_mutated_corpus_files(seed: bytes, edits: list[tuple[int, bytes]], cut: int) -> None:
    data = bytearray(seed)
    for pos, chunk in edits:
        pos %= max(1, len(data))
        data[pos:pos + len(chunk)] = chunk
    _read(bytes(data[: max(1, cut % (len(data) + 1))]))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=2000))
def test_text_after_a_pytest_header(text: str) -> None:
    _read(("=== test session starts ===\n" + text).encode("utf-8", "surrogatepass"))
