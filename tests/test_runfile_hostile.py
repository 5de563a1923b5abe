"""Hostile kb run files: every malformed record is a ReportError naming the line, or a warning; never a crash.

The run file mutated here is a real one: the kb pytest plugin run on a small generated test module, once for
the whole module (a pytest process in a module-scoped fixture; pytester's fixtures are per test).
"""

from __future__ import annotations

import copy
import io
import json
import math
import random
import subprocess
import sys
from typing import Any

import pytest

from kb.errors import ReportError
from kb.ingest import read_report
from kb.ingest.runfile import MAX_LINE

MODULE = '''
import pytest

def test_ok():
    pass

def test_fail():
    try:
        raise KeyError("a")
    except KeyError as exc:
        raise ValueError("b") from exc

@pytest.fixture
def broken():
    raise RuntimeError("setup")

def test_error(broken):
    pass

@pytest.mark.skip
def test_skip():
    pass
'''


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The records of a real run file (one passing, failing, erroring, skipped test and a collection error)."""
    root = tmp_path_factory.mktemp("runfile")
    (root / "test_mod.py").write_text(MODULE)
    (root / "test_broken.py").write_text("import no_such_module_kb\n")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors",
                    f"--kb={root / 'run.jsonl'}", str(root)], cwd=root, capture_output=True, check=False)
    return [json.loads(line) for line in (root / "run.jsonl").read_text().splitlines()]


def _dump(records: list[Any]) -> bytes:
    return b"".join(json.dumps(r, allow_nan=True).encode() + b"\n" for r in records)


def _read(data: bytes) -> Any:
    return read_report("-", stdin=io.BytesIO(data))


def _index(records: list[dict[str, Any]], kind: str, **match: Any) -> int:
    return next(i for i, r in enumerate(records) if r["type"] == kind and all(r.get(k) == v for k, v in match.items()))


def test_the_real_run_file_reads(records: list[dict[str, Any]]) -> None:
    run = _read(_dump(records))
    assert run.summary() == {"tests": 5, "passed": 1, "failures": 1, "errors": 2, "skipped": 1}
    assert run.warnings == []


# (what is wrong, how, the reason the error names) — each one crashed kb before (KeyError, TypeError...)
BROKEN = [
    ("test without nodeid", lambda r: r[_index(r, "test")].pop("nodeid"), "has no 'nodeid'"),
    ("nodeid null", lambda r: r[_index(r, "test")].update(nodeid=None), "has no 'nodeid'"),
    ("nodeid a list", lambda r: r[_index(r, "test")].update(nodeid=["x"]), "'nodeid' must be a string"),
    ("phase missing", lambda r: r[_index(r, "test")].pop("phase"), "'phase' must be one of"),
    ("outcome a dict", lambda r: r[_index(r, "test")].update(outcome={}), "'outcome' must be one of"),
    ("error a dict", lambda r: r[_index(r, "test", outcome="failed")].update(error={}), "'error' must be a list"),
    ("exception a string", lambda r: r[_index(r, "test", outcome="failed")].update(error=["x"]), "must be an object"),
    ("exception type missing", lambda r: r[_index(r, "test", outcome="failed")]["error"][-1].pop("type"),
     "has no 'type'"),
    ("frames a string", lambda r: r[_index(r, "test", outcome="failed")]["error"][-1].update(frames="x"),
     "'frames' must be a list"),
    ("frame line NaN", lambda r: r[_index(r, "test", outcome="failed")]["error"][-1]["frames"][0].update(
        line=math.nan), "'line' must be null or a line number"),
    ("frame line huge", lambda r: r[_index(r, "test", outcome="failed")]["error"][-1]["frames"][0].update(
        line=10**30), "'line' must be null or a line number"),
    ("frame file missing", lambda r: r[_index(r, "test", outcome="failed")]["error"][-1]["frames"][0].pop("file"),
     "has no 'file'"),
    ("longrepr a number", lambda r: r[_index(r, "test", outcome="failed")].update(longrepr=1e308),
     "'longrepr' must be a string"),
    ("distributions a list", lambda r: r[_index(r, "env")].update(distributions=[1]), "must be an object"),
    ("a version null", lambda r: r[_index(r, "env")]["distributions"].update(pytest=None), "must be a string"),
    ("rootdir a number", lambda r: r[_index(r, "env")].update(rootdir=7), "'rootdir' must be a string"),
    ("collect-error nodeid a dict", lambda r: r[_index(r, "collect-error")].update(nodeid={}), "must be a string"),
    ("type missing", lambda r: r[_index(r, "test")].pop("type"), "a record without 'type'"),
    ("type a number", lambda r: r[_index(r, "test")].update(type=1), "'type' must be a string"),
    ("a second run record", lambda r: r.insert(3, copy.deepcopy(r[0])), "a second 'run' record"),
    ("a record a list", lambda r: r.insert(2, [1, 2]), "not a run-file record"),
    ("deep nesting", lambda r: r.insert(2, json.loads("[" * 50 + "]" * 50)), "not a run-file record"),
]


@pytest.mark.parametrize(("mutate", "reason"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_malformed_records_name_the_line(records: list[dict[str, Any]], mutate: Any, reason: str) -> None:
    mutated = copy.deepcopy(records)
    mutate(mutated)
    with pytest.raises(ReportError, match=r"^<stdin>: line \d+") as info:
        _read(_dump(mutated))
    assert reason in str(info.value) and "\n" not in str(info.value)


def test_bytes_level_damage(records: list[dict[str, Any]]) -> None:
    data = _dump(records)
    lines = data.splitlines(keepends=True)
    cases = {
        b"".join(lines[:2]) + b'{"type": "test", "nodeid": "\xff\xfe"}\n': "line 3 is not UTF-8",
        b"".join(lines[:2]) + b"[" * 200_000 + b"\n" + b"".join(lines[2:]): "line 3 is nested too deeply",
        b"".join(lines[:2]) + b'{"type": "test", "line": ' + b"9" * 5000 + b"}\n": "line 3 is not JSON",
        b"".join(lines[:2]) + b"{not json\n" + b"".join(lines[2:]): "line 3 is not JSON",
    }
    for data, reason in cases.items():
        with pytest.raises(ReportError, match=reason):
            _read(data)


def test_harmless_damage_is_a_warning(records: list[dict[str, Any]]) -> None:
    data = _dump(records)
    truncated = _read(data + data.splitlines(keepends=True)[5][:40])  # the writer was killed mid-line
    assert truncated.summary() == _read(data).summary()
    assert any("truncated last line" in w for w in truncated.warnings)
    failing = _index(records, "test", outcome="failed")
    twice = _read(_dump([*records, records[failing], records[_index(records, "collect-error")]]))
    assert twice.summary() == _read(data).summary() and len(twice.results) == 3
    assert sum("a second" in w for w in twice.warnings) == 2
    # the env record last (out of order): frames still become relative to the rootdir
    env = _index(records, "env")
    late = _read(_dump([r for i, r in enumerate(records) if i != env] + [records[env]]))
    assert late.results == _read(data).results
    # lone surrogates from JSON escapes are replaced (no database or terminal could take them)
    odd = copy.deepcopy(records)
    odd[failing]["nodeid"] = "test_mod.py::test_\ud800"
    assert any(r.test_id == "test_mod.py::test_?" for r in _read(_dump(odd)).results)


class _Endless(io.RawIOBase):
    """``head`` then ``fill`` for ever; counts the bytes handed out."""

    def __init__(self, head: bytes, fill: bytes) -> None:
        self.head, self.fill, self.given = head, fill, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.head[self.given:self.given + len(buffer)] if self.given < len(self.head) else b""
        chunk = chunk or (self.fill * (len(buffer) // len(self.fill) + 1))[: len(buffer)]
        buffer[: len(chunk)] = chunk
        self.given += len(chunk)
        return len(chunk)


def test_an_endless_line_is_refused_after_the_cap_not_after_reading_it(records: list[dict[str, Any]]) -> None:
    head = _dump(records[:2]) + b'{"type": "test", "nodeid": "'
    stream = _Endless(head, b"x")
    with pytest.raises(ReportError, match=f"line 3 is longer than {MAX_LINE} bytes"):
        read_report("-", stdin=io.BufferedReader(stream))  # type: ignore[arg-type]
    assert stream.given < len(head) + MAX_LINE + 256 * 1024


def _mutants(records: list[dict[str, Any]], count: int, seed: int = 7) -> list[bytes]:
    """Structure-aware mutants: keys deleted, values swapped for other types, nulls, huge ints, NaN, deep
    lists, records duplicated, reordered or dropped, the file cut anywhere."""
    rng = random.Random(seed)
    odd: list[Any] = [None, 0, -1, 10**40, 2**63, math.nan, math.inf, -math.inf, 1.5, True, "", "x" * 300,
                      "\ud800", "\n\x1b[31mkb: forged", [], {}, [None], [[[[[[]]]]]], {"a": {"b": None}}, ["x", 1]]

    def walk(value: Any, path: list[Any]) -> list[list[Any]]:
        found = [path]
        if isinstance(value, dict):
            for key, item in value.items():
                found += walk(item, [*path, key])
        elif isinstance(value, list):
            for number, item in enumerate(value[:5]):
                found += walk(item, [*path, number])
        return found

    out = []
    for _ in range(count):
        mutated = copy.deepcopy(records)
        for _ in range(rng.randint(1, 3)):
            what = rng.random()
            if what < 0.15 and len(mutated) > 1:
                i, j = rng.randrange(len(mutated)), rng.randrange(len(mutated))
                mutated[i], mutated[j] = mutated[j], mutated[i]
                continue
            if what < 0.25:
                mutated.insert(rng.randrange(len(mutated) + 1), copy.deepcopy(rng.choice(mutated)))
                continue
            if what < 0.3 and len(mutated) > 2:
                del mutated[rng.randrange(1, len(mutated))]
                continue
            number = rng.randrange(1, len(mutated)) if len(mutated) > 1 else 0
            paths = walk(mutated[number], [])
            path = rng.choice(paths)
            if not path:
                mutated[number] = rng.choice(odd)
                continue
            parent = mutated[number]
            for step in path[:-1]:
                parent = parent[step]
            if rng.random() < 0.3 and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(rng.choice(odd))
        data = _dump(mutated)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data) + 1)]
        out.append(data)
    return out


def test_mutation_fuzz_only_report_errors(records: list[dict[str, Any]]) -> None:
    """A few hundred structure-aware mutants of a real run file: each reads, or is a one-line ReportError."""
    mutants = _mutants(records, 400)
    refused = 0
    for data in mutants:
        try:
            run = _read(data)
        except ReportError as exc:
            refused += 1
            assert "\n" not in str(exc).replace("\\n", ""), str(exc)
        else:
            assert run.tests == len(run.order)
    assert 0 < refused < len(mutants)
