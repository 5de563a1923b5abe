"""kb fix --apply through real pytest runs on generated projects: verify, layered causes, roll back,
undo, crash recovery, approval gate, learning."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kb.journal import Journal
from kb.store import open_store

from .conftest import KbCli
from .projects import pytest_report, write_project

pytestmark = pytest.mark.backends  # the history and the fixes on SQLite and on PostgreSQL (conftest)


LAYERED = {
    "pkg/__init__.py": "",
    "pkg/core.py": "from collections import Mapping\nfrom collections import Sequence\n\n\n"
                   "def kind(x):\n    return 'map' if isinstance(x, Mapping) else 'seq' if isinstance(x, Sequence) else '?'\n",
    "tests/test_core.py": "from pkg.core import kind\n\n\ndef test_map():\n    assert kind({}) == 'map'\n\n\n"
                          "def test_seq():\n    assert kind([]) == 'seq'\n",
}


def test_layered_causes_heal_in_two_rounds_and_outcomes_are_recorded(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root = write_project(tmp_path / "proj", LAYERED)
    db = kb_db
    out = kb_cli("fix", str(pytest_report(root)), "--root", str(root), "--apply", "--yes", env={"KB_DB": str(db)})
    assert out.returncode == 0, out.stderr
    assert ("verified: the targeted tests now fail only with the next known cause: collections.Sequence"
            in out.stdout), out.stdout
    assert "round 2: the fixes revealed 1 further known cause(s)" in out.stdout
    assert "verified: 1 module(s) that failed to collect now collect; re-ran 2 test(s) by node id" in out.stdout, out.stdout
    assert (root / "pkg/core.py").read_text().startswith(
        "from collections.abc import Mapping\nfrom collections.abc import Sequence\n")
    states = [e.state for e in Journal(root).entries()]
    assert states == ["verified", "verified"]
    verdicts = [r["verdict"] for r in open_store(db).query_dicts("SELECT * FROM fix_outcomes ORDER BY 1")]
    assert verdicts == ["verified", "verified"]
    history = kb_cli("history", "--root", str(root), env={"KB_DB": str(db)})
    entries = [line for line in history.stdout.splitlines() if not line.startswith(" ")]
    assert [line.split()[1] for line in entries] == ["verified", "verified"]


def test_a_fix_that_does_not_hold_is_rolled_back_byte_for_byte(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/core.py": "import sys, os\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'venv'))\n"
                       "from collections import Mapping\nimport legacy\n",
        "venv/legacy.py": "from collections import Mapping\n",
        "tests/test_core.py": "import pkg.core\n\n\ndef test_x():\n    assert pkg.core.Mapping\n",
    }
    root = write_project(tmp_path / "proj", files)
    before = (root / "pkg/core.py").read_bytes()
    db = kb_db
    out = kb_cli("fix", str(pytest_report(root)), "--root", str(root), "--apply", "--yes", env={"KB_DB": str(db)})
    assert "rolled back: the targeted failures remain" in out.stdout, out.stdout + out.stderr
    assert (root / "pkg/core.py").read_bytes() == before
    assert [e.state for e in Journal(root).entries()] == ["rolled back"]
    # the failed outcome lowers that cause's confidence next time
    rediagnosed = kb_cli("diagnose", str(pytest_report(root)), "--format", "json", env={"KB_DB": str(db)})
    cause = json.loads(rediagnosed.stdout)["root_causes"][0]
    assert cause["confidence_breakdown"]["learned"] == {"verified": 0, "attempts": 1}
    assert cause["confidence"] < cause["confidence_breakdown"]["evidence"]


def test_undo_restores_every_byte(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root = write_project(tmp_path / "proj", LAYERED)
    original = (root / "pkg/core.py").read_bytes()
    db = kb_db
    kb_cli("fix", str(pytest_report(root)), "--root", str(root), "--apply", "--yes", "--no-verify", env={"KB_DB": str(db)})
    assert (root / "pkg/core.py").read_bytes() != original
    undone = kb_cli("undo", "--root", str(root), env={"KB_DB": str(db)})
    assert undone.returncode == 0, undone.stderr
    assert (root / "pkg/core.py").read_bytes() == original
    assert kb_cli("undo", "--root", str(root), env={"KB_DB": str(db)}).returncode == 1  # nothing left to undo


def test_gate_without_a_terminal_or_for_risky_fixes(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root = write_project(tmp_path / "proj", LAYERED)
    db = kb_db
    report = str(pytest_report(root))
    asked = kb_cli("fix", report, "--root", str(root), "--apply", env={"KB_DB": str(db)})
    assert "not applied: needs approval at a terminal" in asked.stdout
    strict = kb_cli("fix", report, "--root", str(root), "--apply", "--yes", "--min-confidence", "0.99", env={"KB_DB": str(db)})
    assert "below --min-confidence" in strict.stdout
    (root / ".kb").mkdir(exist_ok=True)
    (root / ".kb" / "config.toml").write_text("allow_auto_fix = false\n")
    off = kb_cli("fix", report, "--root", str(root), "--apply", "--yes", env={"KB_DB": str(db)})
    assert "allow_auto_fix is off" in off.stdout
    assert (root / "pkg/core.py").read_text() == LAYERED["pkg/core.py"]


def test_an_interrupted_apply_is_rolled_back_at_the_next_start(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", {"m.py": "x = 1\r\n"})
    journal = Journal(root)
    entry = journal.begin(cause="c", rule="r", title="t", remedy={}, diff="", changes={"m.py": (b"x = 1\r\n", b"x = 2\r\n")})
    (root / "m.py").write_bytes(b"x = 2\r\n")  # killed after writing, before marking it applied
    recovered = journal.recover()
    assert [e.id for e in recovered] == [entry.id]
    assert (root / "m.py").read_bytes() == b"x = 1\r\n"
    assert journal.load(entry.id).state == "rolled back"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200),
       newline=st.sampled_from(["\n", "\r\n", "\r"]), final=st.booleans(),
       encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_apply_then_undo_restores_bytes(tmp_path: Path, text: str, newline: str, final: bool, encoding: str) -> None:
    root = tmp_path / "prop"
    root.mkdir(exist_ok=True)
    body = newline.join(text.splitlines()) + (newline if final else "")
    try:
        old = body.encode(encoding)
    except UnicodeEncodeError:
        return
    (root / "f.py").write_bytes(old)
    journal = Journal(root)
    entry = journal.begin(cause="c", rule="r", title="t", remedy={}, diff="", changes={"f.py": (old, old + b"#")})
    journal.write(entry, {"f.py": (old, old + b"#")})
    journal.undo(entry.id)
    assert (root / "f.py").read_bytes() == old


def test_a_fix_that_breaks_a_neighbouring_test_is_rolled_back(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/core.py": "def raw(a):\n    return a.tostring()\n",
        "tests/test_core.py": "import array\nfrom pkg.core import raw\n\n\ndef test_raw():\n"
                              "    assert raw(array.array('b', [1])) == b'\\x01'\n\n\n"
                              "def test_source_unchanged():\n    import inspect, pkg.core\n"
                              "    assert 'a.tostring' in inspect.getsource(pkg.core.raw)\n",
    }
    root = write_project(tmp_path / "proj", files)
    before = (root / "pkg/core.py").read_bytes()
    db = kb_db
    report = pytest_report(root)
    doc = json.loads(kb_cli("diagnose", str(report), "--format", "json", "--no-record", env={"KB_DB": str(db)}).stdout)
    assert doc["root_causes"][0]["neighbours"] == ["tests/test_core.py::test_source_unchanged"]
    out = kb_cli("fix", str(report), "--root", str(root), "--apply", "--yes", "--min-confidence", "0.5", env={"KB_DB": str(db)})
    assert "rolled back: 1 test(s) that passed before now fail (first: tests/test_core.py::test_source_unchanged)" in out.stdout, out.stdout + out.stderr
    assert (root / "pkg/core.py").read_bytes() == before


def test_journal_refuses_paths_and_ids_that_escape_the_project(tmp_path: Path) -> None:
    from kb.errors import FixError

    root = write_project(tmp_path / "proj", {"m.py": "x = 1\n"})
    (tmp_path / "outside.py").write_text("secret\n")
    journal = Journal(root)
    for rel in ("../outside.py", "/etc/passwd", "sub/../../outside.py"):
        with pytest.raises(FixError, match="outside the project root"):
            journal.begin(cause="c", rule="r", title="t", remedy={}, diff="", changes={rel: (b"a", b"b")})
    os.symlink(tmp_path / "outside.py", root / "link.py")
    with pytest.raises(FixError, match="outside the project root"):
        journal.begin(cause="c", rule="r", title="t", remedy={}, diff="", changes={"link.py": (b"a", b"b")})
    with pytest.raises(FixError, match="not a fix id"):
        journal.load("../../etc/passwd")
    assert (tmp_path / "outside.py").read_text() == "secret\n"
    assert journal.entries() == [] and journal.recover() == []  # nothing half-journalled


@pytest.mark.parametrize(("config", "text"), [
    ("pytest.ini", "[pytest]\naddopts = --strict-markers\n"),
    ("pyproject.toml", '[project]\nname = "p"\n\n[tool.pytest.ini_options]\naddopts = "--strict-markers"\n'),
    ("setup.cfg", "[metadata]\nname = p\n\n[tool:pytest]\naddopts = --strict-markers\nmarkers =\n    network: net\n"),
])
def test_an_unregistered_marker_is_registered_and_verified(tmp_path: Path, config: str, text: str, kb_db: str, kb_cli: KbCli) -> None:
    root = write_project(tmp_path / "proj", {
        config: text,
        "tests/test_m.py": "import pytest\n\n\n@pytest.mark.slow\ndef test_slow():\n    assert True\n",
    })
    db = kb_db
    out = kb_cli("fix", str(pytest_report(root)), "--root", str(root), "--apply", "--yes", "--min-confidence", "0.5", env={"KB_DB": str(db)})
    assert "verified:" in out.stdout, out.stdout + out.stderr
    assert "slow: registered by kb" in (root / config).read_text()
    assert kb_cli("undo", "--root", str(root), env={"KB_DB": str(db)}).returncode == 0
    assert (root / config).read_text() == text
