"""kb fix (dry run): plans from real diagnoses, git-apply-able diffs, and the guards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kb.diagnose import diagnose
from kb.fix import plan_fix

from .conftest import REAL


def _write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _report(case: str, tmp_path: Path) -> dict:
    return diagnose([REAL / case / "report.xml"], db=tmp_path / "kb.sqlite", record=False)


def test_removed_import_is_fixed_in_every_module(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _write(root, "jwt/api_jwt.py", b"import json\n\nfrom collections import Mapping\nfrom datetime import datetime\n")
    crlf = _write(root, "jwt/api_jws.py", b"import binascii\r\nfrom collections import Mapping\r\n\r\nx = 1")
    _write(root, "jwt/other.py", b"from collections import OrderedDict\n")
    _write(root, ".venv/lib/site.py", b"from collections import Mapping\n")
    plan = plan_fix(_report("pyjwt-1.5.3", tmp_path), root)
    [item] = plan.plans
    assert item.remedy["template"] == "replace-import"
    assert sorted((e.path, e.line) for e in item.edits) == [("jwt/api_jws.py", 2), ("jwt/api_jwt.py", 3)]
    assert all(e.after == "from collections.abc import Mapping" for e in item.edits)
    assert "\\ No newline at end of file" in item.diff and "\r\n" in item.diff
    assert crlf.read_bytes().count(b"collections import Mapping") == 1  # nothing written
    if shutil.which("git"):
        (tmp_path / "fix.patch").write_text(plan.diff(), newline="")
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        subprocess.run(["git", "apply", str(tmp_path / "fix.patch")], cwd=root, check=True)
        assert crlf.read_bytes() == b"import binascii\r\nfrom collections.abc import Mapping\r\n\r\nx = 1"


def test_only_the_named_callable_loses_its_keyword(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _write(root, "janus/__init__.py", (
        b"import asyncio\n\nclass Queue:\n    def __init__(self, maxsize=0, *, loop=None):\n"
        b"        self._async_mutex = asyncio.Lock(loop=loop)\n"
        b"        self._async_not_empty = asyncio.Condition(self._async_mutex, loop=loop)\n"))
    _write(root, "tests/test_async.py", b"import janus\n\ndef test_x(loop):\n    _q = janus.Queue(loop=loop)\n")
    plan = plan_fix(_report("janus-0.4.0", tmp_path), root)
    [item] = plan.plans
    assert [(e.path, e.after.strip()) for e in item.edits] == [("janus/__init__.py", "self._async_mutex = asyncio.Lock()")]


def test_a_pin_needs_a_declaration_to_edit(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _write(root, "fs/__init__.py", b'__import__("pkg_resources").declare_namespace(__name__)\n')
    [item] = plan_fix(_report("fs-2.4.16", tmp_path), root).plans
    assert item.remedy is None and "does not declare setuptools" in item.skipped and "setuptools<82" in item.skipped


def test_a_pin_is_written_where_the_dependency_is_declared(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _write(root, "fs/__init__.py", b'__import__("pkg_resources").declare_namespace(__name__)\n')
    _write(root, "setup.cfg", b"[metadata]\nname = fs\n\n[options]\ninstall_requires =\n    appdirs~=1.4.3\n"
                              b"    setuptools\n    six ~=1.10\n")
    _write(root, "requirements-dev.txt", b"setuptools>=40  # build\npytest\n")
    [item] = plan_fix(_report("fs-2.4.16", tmp_path), root).plans
    assert item.remedy["kind"] == "dependency-pin"
    assert sorted((e.path, e.after) for e in item.edits) == [
        ("requirements-dev.txt", "setuptools>=40,<82  # build"), ("setup.cfg", "    setuptools<82")]


def _synthetic(remedy: dict) -> dict:
    return {"root_causes": [{"key": "k", "rule": "r", "title": "t", "confidence": 0.9, "remedies": [remedy]}]}


def _rename(old: str, new: str) -> dict:
    """A report with one cause whose remedy renames ``old`` to ``new``."""
    return _synthetic({"kind": "code-edit", "template": "rename-attribute", "params": {"old": old, "new": new},
                       "description": "d", "risk": "low"})


def test_parameters_that_are_not_names_are_refused_before_any_edit(tmp_path: Path) -> None:
    """A shared pack's params are data: a name that is code (or would not parse) never reaches a file."""
    root = tmp_path / "proj"
    _write(root, "m.py", b"x = a.tostring()\n")
    for new in ("1bad", "tobytes(); __import__('os').system('touch PWNED')  #"):
        [item] = plan_fix(_rename("tostring", new), root).plans
        assert item.remedy is None and "must be a dotted Python name" in item.skipped


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks_out_of_the_root_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _write(outside, "victim.py", b"b = arr.tostring()\n")
    root = tmp_path / "proj"
    _write(root, "m.py", b"b = arr.tostring()\n")
    os.symlink(outside, root / "linked")
    os.symlink(outside / "victim.py", root / "victim.py")
    [item] = plan_fix(_rename("tostring", "tobytes"), root).plans
    assert [e.path for e in item.edits] == ["m.py"]


def test_cli_dry_run_patch_and_last(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _write(root, "jwt/api_jwt.py", b"from collections import Mapping\n")
    env = {**os.environ, "KB_DB": str(tmp_path / "kb.sqlite")}
    report = str(REAL / "pyjwt-1.5.3" / "report.xml")
    patch = tmp_path / "fix.patch"
    run = subprocess.run([sys.executable, "-m", "kb", "fix", report, "--root", str(root), "--patch", str(patch)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "+from collections.abc import Mapping" in run.stdout and "dry run: nothing was changed" in run.stdout
    assert patch.read_text().startswith("diff --git a/jwt/api_jwt.py b/jwt/api_jwt.py")
    assert (root / "jwt/api_jwt.py").read_bytes() == b"from collections import Mapping\n"
    last = subprocess.run([sys.executable, "-m", "kb", "fix", "--last", "--root", str(root)],
                          capture_output=True, text=True, env=env)
    assert last.returncode == 0 and "+from collections.abc import Mapping" in last.stdout
    assert subprocess.run([sys.executable, "-m", "kb", "fix"], capture_output=True, env=env).returncode == 2


@pytest.mark.parametrize(("before", "after", "why"), [
    ("x = a.tostring()", "try: x = a.tostring()\nexcept Exception: pass", "adds 'except'"),
    ("def test_x():", "@pytest.mark.skip\ndef test_x():", "adds 'pytest.mark.skip'"),
    ("    assert f() == 1", "    f()", "removes 'assert'"),
    ("    self.assertEqual(a, b)", "    pass", "removes 'self.assert'"),
    ("def test_old(): pass", "", "removes 'def test'"),
    ("x = a.tostring()", "x = a.tobytes()", None),
])
def test_silencing_edits_are_recognised(before: str, after: str, why: str | None) -> None:
    from kb.fix import silences

    assert silences(before, after) == why


def test_a_template_that_silences_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _write(root, "tests/test_m.py", b"import unittest\n\n\nclass T(unittest.TestCase):\n"
                                    b"    def test_m(self):\n        self.assertTrue(m.ok())\n")
    [item] = plan_fix(_rename("assertTrue", "skipTest"), root).plans
    assert item.remedy is None and "would hide the failure" in item.skipped


def test_names_inside_strings_and_comments_are_not_edited(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _write(root, "m.py", b"b = arr.tostring()  # arr.tostring() was removed\nmsg = 'use x.tostring()'\n"
                         b'doc = """\nsee y.tostring()\n"""\n')
    [item] = plan_fix(_rename("tostring", "tobytes"), root).plans
    assert [(e.line, e.after) for e in item.edits] == [(1, "b = arr.tobytes()  # arr.tostring() was removed")]


def test_installed_code_and_environments_are_never_edited(tmp_path: Path) -> None:
    """Patch guard, one refusal at a time: virtual environments and installed packages inside the
    project are skipped; a root that is site-packages, the standard library or inside a venv is refused."""
    import sysconfig

    from kb.errors import FixError

    root = tmp_path / "proj"
    _write(root, "m.py", b"b = arr.tostring()\n")
    for folder in (".venv/lib/python3.11/site-packages/pkg", "venv/lib/pkg", "env/x", "site-packages/pkg",
                   "build/lib/pkg", "pkg.egg-info", ".tox/py311/lib"):
        _write(root / folder, "mod.py", b"b = arr.tostring()\n")
    [item] = plan_fix(_rename("tostring", "tobytes"), root).plans
    assert [e.path for e in item.edits] == ["m.py"]
    for refused, words in ((root / ".venv/lib/python3.11/site-packages/pkg", "installed package"),
                           (Path(sysconfig.get_paths()["stdlib"]), "interpreter's stdlib"),
                           (root / "venv/lib/pkg", None)):
        if words is None:  # a virtual environment is recognised by its pyvenv.cfg
            (root / "venv/pyvenv.cfg").write_text("home = /usr/bin\n")
            words = "inside the virtual environment"
        with pytest.raises(FixError, match=words):
            plan_fix(_rename("tostring", "tobytes"), refused)
