"""A dependency pin applied for real: declared, installed into the tests' environment, verified,
and on undo the previous version is put back. Uses a throwaway distribution built here as wheels
(installed into this test environment, removed afterwards); pip runs offline."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kb.diagnose import diagnose
from kb.fix import FixOptions, fix_rounds, restore_environment
from kb.journal import Journal
from kb.rulepack import parse_pack
from kb.store import SqliteStore
from kb.testenv import installed_version

DIST = "kbpindemo"


def _wheel(folder: Path, version: str, body: str) -> Path:
    """A minimal valid wheel (PEP 427) for DIST."""
    name = f"{DIST}-{version}"
    files = {
        f"{DIST}/__init__.py": body,
        f"{name}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {version}\n",
        f"{name}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: kb-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    path = folder / f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, text in files.items():
            data = text.encode()
            zf.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")
        record.append(f"{name}.dist-info/RECORD,,")
        zf.writestr(f"{name}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


PACK = f"""
pack: pin-demo
version: "1"
api_changes:
  - id: kbpindemo-old-api
    package: {DIST}
    module: {DIST}
    name: old_api
    kind: removed
    removed_in: "2.0"
    source: https://example.org/{DIST}/changelog
    remedies:
      - {{kind: dependency-pin, template: pin-dependency, params: {{requirement: "{DIST}<2"}},
          description: "Pin {DIST}<2", risk: medium}}
""".encode()


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "1.0", "def old_api():\n    return 1\n")
    _wheel(wheels, "2.0", "def new_api():\n    return 2\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    pip = [sys.executable, "-m", "pip", "install", "-q", f"{DIST}==2.0"]
    if subprocess.run(pip, capture_output=True).returncode != 0:
        pytest.skip("pip cannot install into this environment")
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", DIST], capture_output=True)


def test_a_medium_risk_pin_is_applied_with_max_risk_medium_verified_and_undone(tmp_path: Path, demo_env: None) -> None:
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    (root / "requirements.txt").write_text(f"{DIST}\n")
    (root / "tests" / "test_demo.py").write_text(f"import {DIST}\n\n\ndef test_old():\n    assert {DIST}.old_api() == 1\n")
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
                   cwd=root, capture_output=True)
    db = tmp_path / "kb.sqlite"
    store = SqliteStore(db)
    store.load_pack(parse_pack(PACK, "pin-demo.yaml"))
    doc = diagnose([report], db=db, record=False)
    assert doc["root_causes"][0]["api_change"] == "kbpindemo-old-api"

    # a medium-risk pin: --yes alone does not apply it (no terminal needed to say so) ...
    options = FixOptions(apply=True, yes=True, min_confidence=0.0, test_command=[sys.executable, "-m", "pytest"])
    events = list(fix_rounds(doc, root, store, options))
    assert [e.note for e in events if e.kind == "refused"] == [
        "medium risk: --yes applies only up to --max-risk low (add --max-risk medium, or approve it at the terminal "
        "without --yes)"]
    assert (root / "requirements.txt").read_text() == f"{DIST}\n" and installed_version(sys.executable, DIST) == "2.0"
    # ... --yes --max-risk medium does, unattended (a CI bot)
    options.max_risk = "medium"
    events = list(fix_rounds(doc, root, store, options))
    [outcome] = [e.outcome for e in events if e.kind == "outcome"]
    assert outcome.verdict == "verified", outcome.note
    assert (root / "requirements.txt").read_text() == f"{DIST}<2\n"
    assert installed_version(sys.executable, DIST) == "1.0"

    journal = Journal(root)
    [entry] = journal.entries()
    assert entry.env["previous"] == {DIST: "2.0"}
    journal.undo(entry.id)
    restore_environment(entry)
    assert (root / "requirements.txt").read_text() == f"{DIST}\n"
    assert installed_version(sys.executable, DIST) == "2.0"
