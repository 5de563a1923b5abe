"""Hostile reports: entities, DTDs, huge files, bad encodings, path-looking content."""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from kb import ingest
from kb.errors import ReportError
from kb.ingest import read_report, read_reports

SECRET = "kb-secret-4f1d2c"


def _write(tmp_path: Path, text: str, name: str = "r.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_xxe_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = _write(tmp_path, SECRET, "secret.txt")
    report = _write(tmp_path, f"""<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY xxe SYSTEM "file://{secret}">]>
<testsuite name="s" tests="1"><testcase classname="c" name="t"><failure message="&xxe;">&xxe;</failure></testcase></testsuite>""")
    with pytest.raises(ReportError) as info:
        read_report(report)
    assert SECRET not in str(info.value) and str(report) in str(info.value)


def test_external_parameter_entity_and_dtd_are_refused(tmp_path: Path) -> None:
    secret = _write(tmp_path, f'<!ENTITY leak "{SECRET}">', "evil.dtd")
    for doctype in (f'<!DOCTYPE testsuite SYSTEM "file://{secret}">',
                    f'<!DOCTYPE testsuite [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>',
                    '<!DOCTYPE testsuite SYSTEM "http://127.0.0.1:9/evil.dtd">'):
        report = _write(tmp_path, f"""<?xml version="1.0"?>{doctype}
<testsuite name="s"><testcase classname="c" name="t"><failure message="x">&leak;</failure></testcase></testsuite>""")
        with pytest.raises(ReportError) as info:
            read_report(report)
        assert SECRET not in str(info.value)


def test_billion_laughs_is_not_expanded(tmp_path: Path) -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    report = _write(tmp_path, f"""<?xml version="1.0"?><!DOCTYPE testsuite [{entities}]>
<testsuite name="s"><testcase classname="c" name="t"><failure message="&lol9;">&lol9;</failure></testcase></testsuite>""")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ReportError, match="DTD"):
        read_report(report)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_classname_path_traversal_stays_a_string(tmp_path: Path) -> None:
    report = _write(tmp_path, """<testsuite name="s"><testcase classname="../../etc/passwd" name="t">
<failure message="boom">x</failure></testcase></testsuite>""")
    run = read_report(report)
    assert run.results[0].test_id == "../../etc/passwd::t"
    assert run.results[0].file is None


def test_bad_encodings(tmp_path: Path) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes("=== test session starts ===\n\xe9\xe8 caf\xe9\n".encode("latin-1"))
    with pytest.raises(ReportError, match="cannot decode"):
        read_report(latin)
    bogus = tmp_path / "bogus.xml"
    bogus.write_bytes(b'<?xml version="1.0" encoding="no-such-encoding"?><testsuite/>')
    with pytest.raises(ReportError, match=str(bogus)):
        read_report(bogus)
    half = tmp_path / "half.xml"
    half.write_bytes(b'<?xml version="1.0" encoding="utf-8"?><testsuite name="\xff\xfe"/>')
    with pytest.raises(ReportError, match="half.xml"):
        read_report(half)


def test_empty_directory_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no test reports"):
        read_reports([str(tmp_path / "empty")])
    with pytest.raises(ReportError, match="No such file"):
        read_report(tmp_path / "missing.xml")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for VmHWM")
def test_huge_report_streams_in_bounded_memory(tmp_path: Path) -> None:
    """200,000 testcases (40 MB): peak RSS of a fresh process stays far below the file's tree size."""
    report = tmp_path / "huge.xml"
    with open(report, "w", encoding="utf-8") as out:
        out.write('<testsuites><testsuite name="big">')
        for i in range(200_000):
            if i % 10 == 0:
                out.write(f'<testcase classname="m.C" name="t{i}"><failure message="E: x">{"y" * 100}</failure></testcase>')
            else:
                out.write(f'<testcase classname="m.C" name="t{i}" time="0.1"><system-out>{"z" * 100}</system-out></testcase>')
        out.write("</testsuite></testsuites>")
    # VmHWM, not ru_maxrss: ru_maxrss survives exec and would count the forking pytest process
    code = ("import sys; from kb.ingest import read_report; r = read_report(sys.argv[1]); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print(r.tests, r.failures, hwm)")
    out = subprocess.run([sys.executable, "-c", code, str(report)], capture_output=True, text=True, check=True).stdout
    tests, failures, rss_kib = map(int, out.split())
    assert (tests, failures) == (200_000, 20_000)
    assert rss_kib < 150 * 1024  # the whole tree would take several times this


class _Endless(io.RawIOBase):
    """``head`` then ``fill`` for ever (an endless pipe); counts the bytes handed out."""

    def __init__(self, head: bytes, fill: bytes) -> None:
        self.data, self.fill, self.given = head, fill, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(self.data) < len(buffer):
            self.data += self.fill * (len(buffer) // len(self.fill) + 1)
        chunk, self.data = self.data[: len(buffer)], self.data[len(buffer):]
        buffer[: len(chunk)] = chunk
        self.given += len(chunk)
        return len(chunk)


@pytest.mark.parametrize(("head", "fill", "reason"), [
    (b'<testsuite name="s">', b'<testcase classname="c" name="t"/>', "larger than 1 MiB"),
    (b'<testsuite name="s"><testcase name="t">', b"<system-out>x</system-out>", "larger than 1 MiB"),
    (b"============ test session starts ============\n", b"tests/t.py::test_x PASSED\n", "pytest output larger than 1 MiB"),
])
def test_endless_streams_are_refused_at_the_cap(monkeypatch: pytest.MonkeyPatch, head: bytes, fill: bytes,
                                                reason: str) -> None:
    monkeypatch.setattr(ingest, "MAX_REPORT_BYTES", 1024**2)
    stream = _Endless(head, fill)
    with pytest.raises(ReportError, match=f"^<stdin>: {reason}$"):
        read_report("-", stdin=io.BufferedReader(stream))  # type: ignore[arg-type]
    assert stream.given <= 1024**2 + 1 + 2 * ingest.HEAD_BYTES


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_an_endless_fifo_is_refused_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_REPORT_BYTES", 1024**2)
    fifo = tmp_path / "report.xml"
    os.mkfifo(fifo)

    def write() -> None:
        try:
            with open(fifo, "wb") as out:
                out.write(b'<testsuite name="s">')
                while True:
                    out.write(b'<testcase classname="c" name="t"/>' * 1000)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with pytest.raises(ReportError, match="larger than 1 MiB"):
        read_report(fifo)
    writer.join(10)


def test_a_sparse_file_is_refused_from_its_size(tmp_path: Path) -> None:
    sparse = tmp_path / "out.txt"
    with open(sparse, "wb") as out:
        out.write(b"============ test session starts ============\n")
        out.truncate(1024**3)  # 1 GiB, nearly all hole
    with pytest.raises(ReportError, match="pytest output larger than 512 MiB"):
        read_report(sparse)
    with open(sparse, "r+b") as out:
        out.truncate(3 * 1024**3)
    with pytest.raises(ReportError, match="larger than 2 GiB"):
        read_report(sparse)


def test_an_xml_syntax_error_is_one_escaped_line(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    report.write_bytes(b'<testsuite name="s"><testcase name="t"><failure><![CDATA[boom\nkb: forged line\n\x1b[2J')
    with pytest.raises(ReportError) as info:
        read_report(report)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and "kb: forged" not in message
    assert message.startswith(f"{report}: not well-formed XML: ") and "(line " in message


def test_what_a_reader_keeps_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_TESTS", 100)
    monkeypatch.setattr(ingest, "MAX_RESULTS", 10)
    many = _write(tmp_path, "<testsuite>" + '<testcase classname="c" name="t"/>' * 101 + "</testsuite>")
    with pytest.raises(ReportError, match="more than 100 tests"):
        read_report(many)
    failing = _write(tmp_path, "<testsuite>" + '<testcase name="t"><failure/></testcase>' * 11 + "</testsuite>")
    with pytest.raises(ReportError, match="more than 10 failing tests"):
        read_report(failing)
    # a testcase with endless children keeps only the first of each kind kb reads
    children = _write(tmp_path, '<testsuite><testcase name="t">' + "<system-out>x</system-out><failure message='1'/>"
                      "<failure message='2'/>" * 1000 + "</testcase></testsuite>")
    run = read_report(children)
    assert [r.message for r in run.results] == ["1"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for VmHWM")
def test_long_pytest_output_streams_in_flat_memory(tmp_path: Path) -> None:
    """60 MiB of pytest output (the old reader held it three times over): peak RSS stays near the baseline."""
    out_path = tmp_path / "out.txt"
    with open(out_path, "wb") as out:
        out.write(b"============ test session starts ============\n")
        passed = b"".join(b"tests/test_m.py::test_%07d PASSED  [ 50%%]\n" % i for i in range(100_000))
        for _ in range(15):
            out.write(passed)
        out.write(b"=================== FAILURES ===================\n")
        out.write(b"".join(b"____ test_%d ____\nE   " % i + b"x" * 2000 + b"\n" for i in range(10_000)))
        out.write(b"============ 10000 failed, 1500000 passed in 10.00s ============\n")
    code = ("import sys; from kb.ingest import read_report; r = read_report(sys.argv[1]); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print(r.passed, r.failures, len(r.results), hwm)")
    out = subprocess.run([sys.executable, "-c", code, str(out_path)], capture_output=True, text=True, check=True).stdout
    passed, failures, results, rss_kib = map(int, out.split())
    assert (passed, failures, results) == (1_500_000, 10_000, 10_000)
    assert rss_kib < 150 * 1024
