"""Knowledge that generalises (issue 12): owner facts, generic causes, mining with griffe, learning.

The end-to-end test is offline: two real wheels of a throwaway distribution (1.0 has ``helper``,
2.0 does not) are built here, 2.0 is installed into a real virtual environment, a project using
``helper`` is tested there with real pytest, and kb diagnoses the report — first by reasoning
from the environment (a generic cause with a ``<2`` pin), then, after ``kb knowledge mine`` read
both wheels, by the mined row, which names 2.0 as the removing release, with higher confidence.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from kb.diagnose import diagnose
from kb.knowledge.learn import series_pairs
from kb.validate import errors as schema_errors

from .conftest import KbCli
from .wheels import build_wheel

HELPER_1 = '''def helper(x):
    return x * 2


def keep(a, b=1):
    return a + b


class Box:
    def open(self):
        return "open"

    def close(self):
        return "closed"

    def _private(self):
        return None
'''
HELPER_2 = '''import os


def keep(a, *, b=1):
    return a + b


class Box:
    def open(self):
        return "open"
'''


def _pytest(python: Path, root: Path, report: Path) -> None:
    subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
                   cwd=root, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def helper_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels of helperlib 1.0 and 2.0, a venv with 2.0 installed, a project written for 1.0, its report."""
    base = tmp_path_factory.mktemp("helper")
    wheels = base / "wheels"
    build_wheel(wheels, "helperlib", "1.0", {"helperlib/__init__.py": HELPER_1})
    build_wheel(wheels, "helperlib", "2.0", {"helperlib/__init__.py": HELPER_2})
    env_dir = base / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           "--no-index", str(wheels / "helperlib-2.0-py3-none-any.whl")],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:  # pip < 22.3 has no --python: install into the venv's site-packages
        site = next(env_dir.glob("lib/python3*/site-packages"))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                        str(site), str(wheels / "helperlib-2.0-py3-none-any.whl")], check=True, timeout=300)
    project = base / "project"
    (project / "tests").mkdir(parents=True)
    (project / "requirements.txt").write_text("helperlib>=1.0\n")
    (project / "tests" / "test_uses_helper.py").write_text(
        "from helperlib import helper\n\n\ndef test_double():\n    assert helper(2) == 4\n")
    report = base / "report.xml"
    _pytest(python, project, report)
    return {"wheels": wheels, "python": python, "project": project, "report": report, "base": base}


def test_generic_cause_then_mined_row_with_higher_confidence(helper_world: dict[str, Path], tmp_path: Path, kb_cli: KbCli) -> None:
    db = tmp_path / "kb.sqlite"
    w = helper_world
    before = diagnose([w["report"]], db=db, record=False, python=str(w["python"]), root=w["project"])
    assert schema_errors(before, "diagnosis") == []
    [cause] = before["root_causes"]
    assert cause["layer"] == "generic" and cause["api_change"] is None
    assert cause["title"] == ("helperlib.helper is not in helperlib 2.0 (installed); "
                              "the code was written for an earlier helperlib")
    assert cause["remedies"][0]["kind"] == "dependency-pin"
    assert cause["remedies"][0]["params"] == {"requirement": "helperlib<2"}
    assert cause["owner"] == {"module": "helperlib", "kind": "distribution", "distribution": "helperlib",
                              "version": "2.0", "declared": True, "python": cause["owner"]["python"]}
    assert any(e.startswith("owner of helperlib: installed distribution helperlib 2.0, declared by the project")
               for e in cause["evidence"])

    mined = kb_cli("knowledge", "mine", "helperlib", "--from", "1.0", "--to", "2.0", "--find-links", str(w["wheels"]),
                "--cache", str(tmp_path / "cache"), "--db", str(db), cwd=tmp_path)
    assert mined.returncode == 0, mined.stderr
    assert mined.stdout.strip() == ("helperlib 1.0 → 2.0: 3 row(s) (2 removed, 1 signature-changed); "
                                    "stored as learned (3 in the pack)")

    after = diagnose([w["report"]], db=db, record=False, python=str(w["python"]), root=w["project"])
    [cause_after] = after["root_causes"]
    assert cause_after["layer"] == "learned"
    assert cause_after["api_change"].startswith("learned.helperlib.2.0.")
    assert cause_after["title"] == "helperlib.helper was removed (removed in helperlib 2.0)"
    assert "https://pypi.org/project/helperlib/2.0/" in cause_after["source"]
    assert cause_after["remedies"][0]["params"] == {"requirement": "helperlib<2.0"}
    assert cause_after["confidence"] > cause["confidence"]
    assert "environment: helperlib 2.0 ≥ 2.0" in cause_after["evidence"]


def test_learn_offline_is_one_line_and_the_diagnosis_stands(helper_world: dict[str, Path], tmp_path: Path, kb_cli: KbCli) -> None:
    w = helper_world
    env = {"KB_INDEX_URL": "http://127.0.0.1:9", "KB_DB": str(tmp_path / "kb.sqlite")}
    plain = kb_cli("diagnose", str(w["report"]), "--python", str(w["python"]), "--root", str(w["project"]),
                "--no-record", cwd=tmp_path, env=env)
    learned = kb_cli("diagnose", str(w["report"]), "--python", str(w["python"]), "--root", str(w["project"]),
                  "--no-record", "--learn", cwd=tmp_path, env=env)
    assert learned.returncode == 0
    lines = learned.stderr.strip().splitlines()
    assert [ln for ln in lines if not ln.startswith("kb: mining")] == [lines[-1]]
    assert lines[-1].startswith("kb: learn: http://127.0.0.1:9/pypi/helperlib/json: cannot reach the package index")
    assert lines[-1].endswith("; the diagnosis is unchanged")
    assert learned.stdout == plain.stdout


def test_learn_last_mines_from_the_declared_release(helper_world: dict[str, Path], tmp_path: Path, kb_cli: KbCli) -> None:
    w = helper_world
    env = {"KB_DB": str(tmp_path / "kb.sqlite"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = kb_cli("diagnose", str(w["report"]), "--python", str(w["python"]), "--root", str(w["project"]),
                cwd=tmp_path, env=env)
    assert "is not in helperlib 2.0 (installed)" in first.stdout
    learned = kb_cli("knowledge", "learn", "--last", "--root", str(w["project"]), "--find-links", str(w["wheels"]),
                  cwd=tmp_path, env=env)
    assert learned.returncode == 0, learned.stderr
    assert "kb: learned helperlib: 3 row(s) from 1.0 → 2.0" in learned.stderr
    assert "1. helperlib.helper was removed (removed in helperlib 2.0)" in learned.stdout


# ---------------------------------------------------------------- controls: no confident cause

CONTROLS = {
    "typo in the project's own module": (
        {"mypkg/__init__.py": "", "mypkg/util.py": "def helper():\n    return 1\n",
         "tests/test_a.py": "from mypkg.util import helpr\n\n\ndef test_a():\n    assert helpr() == 1\n"}),
    "plain assertion failure": (
        {"mypkg/__init__.py": "", "tests/test_a.py": "def test_a():\n    assert 1 + 1 == 3\n"}),
    "missing module of the project's own": (
        {"mypkg/__init__.py": "import mypkg.settings_local\n", "tests/test_a.py":
         "import mypkg\n\n\ndef test_a():\n    assert mypkg\n"}),
    "a stdlib name that is not there (newer than this Python, or a typo)": (
        {"mypkg/__init__.py": "", "tests/test_a.py":
         "from itertools import batched_in_some_future\n\n\ndef test_a():\n    pass\n"}),
    "a call on a project object named like a stdlib module": (
        {"mypkg/__init__.py": "class Profile:\n    def update(self):\n        pass\n", "tests/test_a.py":
         "from mypkg import Profile\n\n\ndef test_a():\n    profile = Profile()\n    profile.update(nickname='x')\n\n\n"
         "def test_b():\n    profile = Profile()\n    profile.update(nickname='y')\n"}),
    "the project's callback with the wrong signature, called by the standard library": (
        {"mypkg/__init__.py": "", "tests/test_a.py":
         "from unittest import mock\n\n\ndef effect():\n    return 1\n\n\n"
         "def test_a():\n    assert mock.Mock(side_effect=effect)(1)\n\n\n"
         "def test_b():\n    assert mock.Mock(side_effect=effect)(2)\n"}),
    "attribute the project's own module lacks": (
        {"mypkg/__init__.py": "", "mypkg/util.py": "VALUE = 1\n", "tests/test_a.py":
         "import mypkg.util\n\n\ndef test_a():\n    assert mypkg.util.VALEU == 1\n"}),
}


@pytest.mark.parametrize("name", list(CONTROLS))
def test_controls_get_no_confident_cause(name: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    for rel, text in CONTROLS[name].items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    report = tmp_path / "report.xml"
    _pytest(Path(sys.executable), project, report)
    doc = diagnose([report], db=tmp_path / "kb.sqlite", record=False, python=sys.executable, root=project)
    assert doc["summary"]["failures"] + doc["summary"]["errors"] >= 1
    assert all(c["confidence"] < 0.5 for c in doc["root_causes"]), doc["root_causes"]


def test_missing_test_dependency_is_named_with_its_distribution(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "requirements-test.txt").write_text("pytest\nkb-not-installed-dist>=1\n")
    (project / "tests" / "test_a.py").write_text("import kb_not_installed_dist\n\n\ndef test_a():\n    pass\n")
    report = tmp_path / "report.xml"
    _pytest(Path(sys.executable), project, report)
    doc = diagnose([report], db=tmp_path / "kb.sqlite", record=False, python=sys.executable, root=project)
    [cause] = doc["root_causes"]
    assert cause["title"] == "kb-not-installed-dist is not installed: module 'kb_not_installed_dist' comes from it"
    assert cause["confidence"] >= 0.5 and cause["category"] == "missing-dependency"
    assert cause["remedies"][0]["params"] == {"requirement": "kb-not-installed-dist"}


def test_stdlib_signature_change_inside_a_stdlib_class(tmp_path: Path) -> None:
    """A project hook that the standard library now calls with more arguments."""
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_a.py").write_text(
        "import argparse\n\n\nclass Formatter(argparse.HelpFormatter):\n"
        "    def _format_usage(self):\n        return 'usage'\n\n\n"
        "def test_help():\n    parser = argparse.ArgumentParser(formatter_class=Formatter)\n"
        "    assert parser.format_usage()\n")
    report = tmp_path / "report.xml"
    _pytest(Path(sys.executable), project, report)
    doc = diagnose([report], db=tmp_path / "kb.sqlite", record=False, python=sys.executable, root=project)
    [cause] = doc["root_causes"]
    assert cause["layer"] == "generic" and cause["category"] == "signature-changed"
    assert cause["title"].startswith("the signature of argparse.Formatter._format_usage() changed in Python ")
    assert cause["remedies"][0]["kind"] == "manual"


def test_series_pairs_take_the_last_of_a_series_against_the_first_of_the_next() -> None:
    versions = ["1.0", "1.1", "1.1.3", "2.0", "2.0.1", "2.1rc1", "2.1"]
    assert series_pairs(versions, "1.0", "2.1") == [("1.0", "1.1"), ("1.1.3", "2.0"), ("2.0.1", "2.1")]
    assert series_pairs(versions, "2.0", "2.0.1") == [("2.0", "2.0.1")]
    assert series_pairs(["0.9.1", "0.10.0"], "0.9.1", "0.10.0") == [("0.9.1", "0.10.0")]
    from kb.errors import KbError

    with pytest.raises(KbError, match="--from 2.0 is not older than --to 1.0"):
        series_pairs(versions, "2.0", "1.0")


# ---------------------------------------------------------------- mining: what counts as a breaking change

def test_mining_keeps_reexports_and_public_names_of_private_modules_and_drops_the_noise(tmp_path: Path) -> None:
    from kb.knowledge.learn import mine_pair

    old = {
        "wlib/__init__.py": "import os\nfrom markupsafe import Markup\nfrom .core import run\n\n\ndef _hidden():\n"
                            "    pass\n",
        "wlib/core.py": "from collections import OrderedDict\n\n\ndef run(a, b=1):\n    return a\n\n\n"
                        "def gone():\n    pass\n",
        "wlib/_compat.py": "text_type = str\n\n\ndef b(s):\n    return s\n",
        "wlib/shim.py": "OLD = 1\n",
        "wlib/tests/test_x.py": "def test_x():\n    pass\n",
    }
    new = {
        "wlib/__init__.py": "from .core import run\n",
        "wlib/core.py": "def run(a, b=1, *, c):\n    return a\n",
        "wlib/_compat.py": "def b(s):\n    return s\n",
        "wlib/shim.py": "def __getattr__(name):\n    raise AttributeError(name)\n",
        "wlib/elsewhere.py": "def gone():\n    pass\n",
    }
    build_wheel(tmp_path / "w", "wlib", "1.0", old)
    build_wheel(tmp_path / "w", "wlib", "2.0", new)
    rows = mine_pair("wlib", "1.0", "2.0", cache=tmp_path / "cache", find_links=(tmp_path / "w",))
    found = sorted((r["module"], r["name"], r["kind"], r.get("param", ""), r.get("replacement", "")) for r in rows)
    assert found == [
        ("wlib", "Markup", "removed", "", ""),  # a deliberate re-export of another distribution's object
        ("wlib._compat", "text_type", "removed", "", ""),  # public name of a private module
        ("wlib.core", "gone", "moved", "", "wlib.elsewhere.gone"),
        ("wlib.core", "run", "signature-changed", "c", ""),  # a required keyword-only parameter was added
    ]
    # import os, from collections import OrderedDict, _hidden, the tests package, the __getattr__ shim: noise
    assert all(r["source"] == "https://pypi.org/project/wlib/2.0/" for r in rows)
    assert all("wlib-1.0-py3-none-any.whl" in r["note"] for r in rows)


def test_release_archives_with_escaping_members_are_refused(tmp_path: Path) -> None:
    import zipfile

    from kb.errors import KbError
    from kb.knowledge.releases import fetch

    folder = tmp_path / "w"
    folder.mkdir()
    with zipfile.ZipFile(folder / "evil-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("../../outside.py", "x = 1\n")
    with pytest.raises(KbError, match=r"unsafe or oversized member '\.\./\.\./outside\.py'"):
        fetch("evil", "1.0", cache=tmp_path / "cache", find_links=(folder,))
    assert not (tmp_path / "outside.py").exists()


def test_compressed_packs_are_bounded_and_validated(tmp_path: Path) -> None:
    import gzip
    import json as jsonlib

    from kb.errors import RuleError
    from kb.rulepack import MAX_PACK_BYTES, parse_pack

    bomb = gzip.compress(b"{" + b" " * (MAX_PACK_BYTES + 10) + b"}")
    assert len(bomb) < 100_000
    with pytest.raises(RuleError, match="larger than 16 MiB unpacked"):
        parse_pack(bomb, "bomb.json.gz")
    bad = gzip.compress(jsonlib.dumps({"pack": "x", "version": "1", "layer": "mined",
                                       "api_changes": [{"id": "a", "package": "p", "module": "m", "name": "n",
                                                        "kind": "gone", "source": "https://x.invalid/"}]}).encode())
    with pytest.raises(RuleError, match=r"/api_changes/0/kind"):
        parse_pack(bad, "bad.json.gz")


# ---------------------------------------------------------------- owner facts

def test_a_module_nothing_knows_is_named_but_not_confidently(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_a.py").write_text("import reqeusts_typo_nobody_has\n\n\ndef test_a():\n    pass\n")
    report = tmp_path / "report.xml"
    _pytest(Path(sys.executable), project, report)
    doc = diagnose([report], db=tmp_path / "kb.sqlite", record=False, python=sys.executable, root=project)
    [cause] = doc["root_causes"]
    assert cause["owner"]["kind"] == "absent" and cause["confidence"] < 0.5
    assert "a guess: the module's own name" in " ".join(cause["evidence"])


def test_the_interpreter_is_the_one_whose_site_packages_the_tracebacks_name(tmp_path: Path) -> None:
    from kb.facts import Failure
    from kb.models import Frame, Run
    from kb.owners import interpreter_for, project_tops

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    site = next(env_dir.glob("lib/python3*/site-packages"))
    inner = Frame(str(site / "pkg" / "mod.py"), 3, "f")

    def failure(*frames: Frame) -> Failure:
        return Failure(0, "src/proj/tests/test_x.py::test_x", "call", "ImportError", "m", frames, None, "", "")

    python, how = interpreter_for([failure(Frame("src/proj/core.py", 1, "g"), inner)], Run())
    assert Path(python).parent == env_dir / "bin" and "site-packages the tracebacks name" in how
    gone = Frame("/nowhere/venv/lib/python3.11/site-packages/pkg/mod.py", 3, "f")
    assert interpreter_for([failure(gone)], Run()) == (
        None, "the tracebacks name an environment that is not on this machine (/nowhere/venv)")
    assert interpreter_for([failure()], Run())[0] is None  # kb never assumes its own environment
    assert project_tops([failure(Frame("src/proj/core.py", 1, "g"), inner, gone)], None) == {"proj"}


def test_mine_refuses_bad_input_in_one_line(helper_world: dict[str, Path], tmp_path: Path, kb_cli: KbCli) -> None:
    w = helper_world
    env = {"KB_DB": str(tmp_path / "kb.sqlite"), "KB_INDEX_URL": "http://127.0.0.1:9"}
    bad_version = kb_cli("knowledge", "mine", "helperlib", "--from", "1.0", "--to", "two", "--find-links",
                      str(w["wheels"]), "--cache", str(tmp_path / "c"), cwd=tmp_path, env=env)
    assert (bad_version.returncode, bad_version.stderr) == (1, "kb: error: not a version: 'two'\n")
    offline = kb_cli("knowledge", "mine", "nothing-here", "--from", "1.0", "--to", "2.0", "--cache", str(tmp_path / "c"),
                  cwd=tmp_path, env=env)
    assert offline.returncode == 1 and offline.stderr.count("\n") == 1
    assert offline.stderr.startswith("kb: error: http://127.0.0.1:9/pypi/nothing-here/json: cannot reach the package")
    bad_url = kb_cli("knowledge", "mine", "x", "--from", "1.0", "--to", "2.0", "--cache", str(tmp_path / "c"),
                  cwd=tmp_path, env={**env, "KB_INDEX_URL": "http://127.0.0.1:abc"})
    assert bad_url.returncode == 1 and bad_url.stderr.count("\n") == 1 and "internal error" not in bad_url.stderr


def test_an_index_file_name_that_escapes_the_cache_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json as jsonlib

    from kb.errors import KbError
    from kb.knowledge import releases

    index = tmp_path / "index"
    (index / "pypi" / "evil").mkdir(parents=True)
    listed = {"releases": {"1.0": [{"filename": "../../../escaped-1.0-py3-none-any.whl",
                                    "url": "../../../escaped-1.0-py3-none-any.whl"}]}}
    (index / "pypi" / "evil" / "json").write_text(jsonlib.dumps(listed))
    monkeypatch.setenv("KB_INDEX_URL", index.as_uri())
    monkeypatch.setattr(releases, "_PROJECTS", {})
    with pytest.raises(KbError, match="is not a plain file name"):
        releases.fetch("evil", "1.0", cache=tmp_path / "cache")
    assert not list(tmp_path.rglob("escaped-1.0-py3-none-any.whl"))


def test_learn_says_so_when_the_installed_version_is_not_pep_440(tmp_path: Path) -> None:
    from kb.knowledge.learn import learn
    from kb.store import SqliteStore

    report = {"root_causes": [{"layer": "generic", "owner": {"kind": "distribution", "distribution": "foolib",
                                                             "version": "2.0-custom"}}]}
    with SqliteStore(tmp_path / "kb.sqlite") as store:
        result = learn(report, store)
    assert result.rows == 0 and result.problems == [
        "foolib: the installed version '2.0-custom' is not a PEP 440 version: there is no release range to compare"]


def test_small_helpers_keep_their_edges() -> None:
    from kb.engine.generic import upper_bound
    from kb.owners import _locate
    from kb.rulepack import parse_pack

    assert [upper_bound(v) for v in ("2.0.1", "0.5.2", "0.0.5", "0.0", "", "1.0rc1")] == ["2", "0.5", "0.0.5", "", "",
                                                                                          "1"]
    assert parse_pack(b"{pack: flow, version: '1', rules: []}", "flow.yaml").name == "flow"  # YAML flow style
    assert Path(_locate("python3", None)).is_absolute()  # a bare name goes through PATH


def test_a_relative_interpreter_path_is_asked_as_given(helper_world: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """``--python venv/bin/python`` from the project's parent: the venv's own packages, not its base's."""
    monkeypatch.chdir(helper_world["base"])
    doc = diagnose([helper_world["report"]], db=tmp_path / "kb.sqlite", record=False, python="venv/bin/python",
                   root=helper_world["project"])
    assert doc["root_causes"][0]["owner"]["version"] == "2.0"


def test_the_projects_own_package_stays_the_project_when_installed(tmp_path: Path) -> None:
    """tox installs the project into site-packages: a missing name there is still the project's bug."""
    from kb.models import Run
    from kb.owners import EnvFacts, OwnerResolver

    root = tmp_path / "proj"
    (root / "mypkg").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "setup.py").write_text("from setuptools import setup\n\n"
                                   "setup(name='mypkg-dist', install_requires=['requests>=2.0'])\n")
    resolver = OwnerResolver([], Run(), root=root)
    resolver._env = EnvFacts(python="3.11.7", packages={"mypkg": ["mypkg-dist"], "requests": ["requests"]},
                             dists={"mypkg-dist": ("mypkg-dist", "1.0"), "requests": ("requests", "1.5")})
    site = "/venv/lib/python3.11/site-packages"
    assert resolver.module_owner("mypkg", f"{site}/mypkg/__init__.py").kind == "project"
    assert resolver.declared.own == {"mypkg-dist"}
    older = resolver.module_owner("requests", f"{site}/requests/__init__.py")
    assert (older.kind, older.version, older.wanted) == ("distribution", "1.5", "2.0")
    from kb.engine import Symptom, generic

    symptom = Symptom("py-cannot-import-name", "missing_name", (("module", "requests"), ("name", "newfunc")))
    assert generic.title(symptom, older) == ("requests.newfunc is not in requests 1.5 (installed), older than the "
                                             "requests 2.0 the project asks for")
    assert dict(generic.remedies(symptom, older)[0].params) == {"requirement": "requests>=2.0"}
