"""Failure facts parsed from traceback text (pytest's XML has no file/line attributes)."""

from __future__ import annotations

import pytest

from kb.facts import failures_from_run, parse_traceback
from kb.ingest import read_report
from kb.models import Frame

from .conftest import REAL


@pytest.mark.parametrize("source", ["report.xml", "pytest.txt"])
@pytest.mark.parametrize(("case", "count", "phase", "exception", "message", "location"), [
    ("pyjwt-1.5.3", 9, "collection", "ImportError", "cannot import name 'Mapping' from 'collections'",
     Frame("jwt/api_jwt.py", 5, "<module>")),
    ("janus-0.4.0", 69, "call", "TypeError", "Lock.__init__() got an unexpected keyword argument 'loop'",
     Frame("janus/__init__.py", 39, None)),
    ("fs-2.4.16", 41, "collection", "ModuleNotFoundError", "No module named 'pkg_resources'",
     Frame("fs/__init__.py", 4, "<module>")),
])
def test_real_cases(case: str, source: str, count: int, phase: str, exception: str, message: str,
                    location: Frame) -> None:
    failures = failures_from_run(read_report(REAL / case / source))
    assert len(failures) == count
    for failure in failures:
        assert (failure.phase, failure.exception) == (phase, exception)
        assert failure.message.startswith(message)
        assert failure.location is not None and failure.location.line
    assert failures[0].location == location


def test_native_python_traceback() -> None:
    text = '''Traceback (most recent call last):
  File "/src/app/tests/test_x.py", line 12, in test_it
    value = parse(b"x")
  File "/src/app/app/core.py", line 40, in parse
    return yaml.load(data)
TypeError: load() missing 1 required positional argument: 'Loader'
'''
    exception, message, frames = parse_traceback(text)
    assert exception == "TypeError"
    assert message == "load() missing 1 required positional argument: 'Loader'"
    assert frames[-1] == Frame("/src/app/app/core.py", 40, "parse")


def test_multiline_message_and_qualified_type() -> None:
    text = """    def test():
>       raise errors.CoreError("bad")
E       pykwalify.errors.CoreError: <CoreError: bad
E         second line>

pykwalify/core.py:66: CoreError"""
    exception, message, frames = parse_traceback(text)
    assert exception == "pykwalify.errors.CoreError"
    assert message == "<CoreError: bad\nsecond line>"
    assert frames == [Frame("pykwalify/core.py", 66, None)]


def test_assert_rewrite_without_a_type_line() -> None:
    text = """>       assert 1 == 2
E       assert 1 == 2

tests/test_a.py:3: AssertionError"""
    exception, message, _frames = parse_traceback(text)
    assert exception == "AssertionError" and message == "assert 1 == 2"


def test_huge_text_is_scanned_head_and_tail() -> None:
    text = "x\n" * 200_000 + "E   ValueError: at the end\n\nmod.py:9: ValueError"
    exception, message, frames = parse_traceback(text)
    assert (exception, message, frames[-1]) == ("ValueError", "at the end", Frame("mod.py", 9, None))
