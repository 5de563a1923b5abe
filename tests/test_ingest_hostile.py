"""Hostile reports: entities, DTDs, huge files, bad encodings, path-looking content."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

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
