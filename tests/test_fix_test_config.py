"""Markers and filterwarnings entries added where pytest 9 reads its configuration
(kb.fix.test_config.plan_setting), format-preserving; the edited files are read back by real pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kb.fix.test_config import config_file, plan_setting

MARKER = "slow: registered by kb"


@pytest.mark.parametrize(("name", "before", "after"), [
    ("pytest.toml", '[pytest]\naddopts = ["--strict-markers"]  # strict\n',
     '[pytest]\naddopts = ["--strict-markers"]  # strict\nmarkers = ["slow: registered by kb"]\n'),
    (".pytest.toml", '[pytest]\nmarkers = [\n    "net: network",\n]\n',
     '[pytest]\nmarkers = [\n    "net: network",\n    "slow: registered by kb",\n]\n'),
    ("pytest.toml", "", '[pytest]\nmarkers = ["slow: registered by kb"]\n'),
    ("pyproject.toml", '[project]\nname = "p"\n\n[tool.pytest]\nmarkers = [\'net: network\']\n\n[tool.black]\n',
     '[project]\nname = "p"\n\n[tool.pytest]\nmarkers = [\'net: network\', \'slow: registered by kb\']\n\n'
     '[tool.black]\n'),
    ("pyproject.toml", '[tool.pytest.ini_options]\naddopts = "-q"\n',
     '[tool.pytest.ini_options]\naddopts = "-q"\nmarkers = ["slow: registered by kb"]\n'),
    ("pytest.ini", "[pytest]\r\nmarkers =\r\n  net: network\r\n", "[pytest]\r\nmarkers =\r\n  net: network\r\n"
                                                                   "  slow: registered by kb\r\n"),
    ("pytest.ini", "", "[pytest]\nmarkers =\n    slow: registered by kb\n"),
    ("tox.ini", "[tox]\nenvlist = py\n\n[pytest]\naddopts = -q\n\n[testenv]\ncommands = pytest\n",
     "[tox]\nenvlist = py\n\n[pytest]\naddopts = -q\nmarkers =\n    slow: registered by kb\n\n[testenv]\n"
     "commands = pytest\n"),
    ("setup.cfg", "[tool:pytest]\nmarkers =\n    net: network  # why\n\n[flake8]\n",
     "[tool:pytest]\nmarkers =\n    net: network  # why\n    slow: registered by kb\n\n[flake8]\n"),
])
def test_a_marker_is_added(tmp_path: Path, name: str, before: str, after: str) -> None:
    (tmp_path / name).write_bytes(before.encode())
    assert plan_setting(tmp_path, "markers", MARKER) == (name, before.encode(), after.encode())


def test_pytest_reads_the_edited_files(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.pytest]\nfilterwarnings = ["error"]\n')
    found = plan_setting(tmp_path, "filterwarnings", r"ignore:old_api\(\) is deprecated:DeprecationWarning")
    assert not isinstance(found, str)
    assert found[2] == b'[tool.pytest]\nfilterwarnings = ["error", \'ignore:old_api\\(\\) is deprecated:DeprecationWarning\']\n'
    (tmp_path / "pyproject.toml").write_bytes(found[2])
    marker = plan_setting(tmp_path, "markers", MARKER)
    assert not isinstance(marker, str)
    (tmp_path / "pyproject.toml").write_bytes(marker[2])
    (tmp_path / "test_w.py").write_text(
        "import warnings, pytest\n\n@pytest.mark.slow\ndef test_w():\n"
        "    warnings.warn('old_api() is deprecated', DeprecationWarning)\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--strict-markers"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert "1 passed" in done.stdout, done.stdout + done.stderr


def test_pytest_9_order(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\n")
    (tmp_path / "tox.ini").write_text("[tox]\n")  # no [pytest]: not a pytest configuration
    assert config_file(tmp_path) == ("setup.cfg", "ini", ("tool:pytest",))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\n')  # no [tool.pytest]
    assert config_file(tmp_path) == ("setup.cfg", "ini", ("tool:pytest",))
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    assert config_file(tmp_path) == ("pyproject.toml", "toml", ("tool", "pytest", "ini_options"))
    (tmp_path / "pytest.ini").write_text("")
    assert config_file(tmp_path) == ("pytest.ini", "ini", ("pytest",))
    (tmp_path / ".pytest.toml").write_text("")
    assert config_file(tmp_path) == (".pytest.toml", "toml", ("pytest",))


@pytest.mark.parametrize(("name", "text", "key", "entry"), [
    ("pytest.toml", '[pytest]\nmarkers = ["slow(reason): old"]\n', "markers", MARKER),
    ("setup.cfg", "[tool:pytest]\nmarkers =\n    slow\n", "markers", MARKER),
    ("pytest.ini", "[pytest]\nfilterwarnings = error\n", "filterwarnings", "error"),
])
def test_an_entry_already_there_is_refused(tmp_path: Path, name: str, text: str, key: str, entry: str) -> None:
    (tmp_path / name).write_text(text)
    assert str(plan_setting(tmp_path, key, entry)).endswith("already registered")


def test_no_configuration(tmp_path: Path) -> None:
    (tmp_path / "tox.ini").write_text("[tox]\n")
    assert str(plan_setting(tmp_path, "markers", MARKER)).startswith("no pytest configuration")
