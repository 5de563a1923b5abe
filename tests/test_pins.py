"""Dependency pins planned into real project files (kb.fix.pin.plan_pin): requirements merged by
packaging, files edited format-preservingly, undeclared test dependencies placed where the test
command reads them, and dependents a pin would break pinned along (a real venv, real wheels, pip
offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kb.fix.config_files import ini_append_list, ini_map_list, toml_append_string, toml_map_strings
from kb.fix.metadata import check_metadata
from kb.fix.pin import PinPlan, plan_pin
from kb.pep440 import merge_requirement, release_ceilings, specifier_allows, specifiers_overlap
from kb.testenv import dependents

from .projects import write_project
from .wheels import build_wheel


@pytest.mark.parametrize(("existing", "pin", "merged"), [
    ("numpy>=1.7", "numpy<2", "numpy>=1.7,<2"),
    ("urllib3>=1.21.1,<1.27", "urllib3<2", None),
    ("setuptools", "setuptools<82", "setuptools<82"),
    ("numpy>=1.7; python_version>'3'", "numpy<2", 'numpy>=1.7,<2; python_version > "3"'),
    ("setuptools==84.2.1", "setuptools<82", "setuptools<82"),
    ("numpy==2.0", "numpy<2", "numpy<2"),
    ("numpy==1.5", "numpy<2", None),
    ("Flask[async]>=2,<4,!=2.1", "flask<3", "Flask[async]>=2,!=2.1,<3"),
    ("numpy<3", "numpy<2", "numpy<2"),
    ("numpy<=2", "numpy<2", "numpy<2"),
    ("numpy<2.0", "numpy<2", None),
    ("numpy~=1.4", "numpy<2", None),
    ("numpy~=2.1", "numpy<2", "numpy<2"),
    ("numpy==2.*", "numpy<2", "numpy<2"),
    ("numpy>=2.1", "numpy<2", "numpy<2"),
    ("numpy!=2.5", "numpy<2", "numpy!=2.5,<2"),
    ("numpy>=1.2", "numpy>=1.5,<2", "numpy>=1.5,<2"),
])
def test_merge_requirement(existing: str, pin: str, merged: str | None) -> None:
    assert merge_requirement(existing, pin) == merged


def test_merge_refuses_direct_references() -> None:
    with pytest.raises(ValueError, match="direct reference"):
        merge_requirement("numpy @ https://example.org/numpy.whl", "numpy<2")


def test_specifier_helpers() -> None:
    assert specifier_allows(">=2,<3", "2.5") and not specifier_allows(">=2", "1.9")
    assert not specifiers_overlap(">=2", "<2") and specifiers_overlap(">=1.5", "<2")
    assert not specifiers_overlap(">=1.5", "<2", ["2.0", "3.0"])
    assert release_ceilings("3.0.0") == ["3"] and release_ceilings("3.2.1") == ["3", "3.2"]
    assert release_ceilings("0.5.2") == ["0.5"]




def _after(plan: PinPlan, rel: str) -> str:
    assert plan.refused is None, plan.refused
    return plan.changes[rel][1].decode()


SETUP_PY = """\
from setuptools import setup

setup(
    name="demo",
    version="1.0",
    install_requires=['numpy>=1.7', "six"],  # runtime
    extras_require={"test": ["pytest"]},
)
"""


def test_setup_py_pin_keeps_the_lower_bound_and_still_builds(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"setup.py": SETUP_PY})
    plan = plan_pin(root, "numpy<2")
    assert _after(plan, "setup.py") == SETUP_PY.replace("'numpy>=1.7'", "'numpy>=1.7,<2'")
    assert plan.where == ("setup.py install_requires",) and plan.install == ("numpy<2",)
    (root / "setup.py").write_bytes(plan.changes["setup.py"][1])
    done = subprocess.run([sys.executable, "setup.py", "--version"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip().endswith("1.0"), done.stderr


def test_an_undeclared_test_dependency_goes_into_setup_pys_test_extra(tmp_path: Path) -> None:
    plan = plan_pin(write_project(tmp_path, {"setup.py": SETUP_PY}), "lib<2")
    assert _after(plan, "setup.py") == SETUP_PY.replace('["pytest"]', '["pytest", "lib<2"]')
    assert plan.where == ("setup.py extras_require['test']",)


PYPROJECT = """\
[project]
name = "demo"
dependencies = [
    # numerics
    "numpy>=1.7",  # the oldest with the API we use
    'scipy',
]

[project.optional-dependencies]
test = ["pytest"]  # keep short
"""


def test_pyproject_keeps_comments_and_layout(tmp_path: Path) -> None:
    plan = plan_pin(write_project(tmp_path, {"pyproject.toml": PYPROJECT}), "numpy<2")
    assert _after(plan, "pyproject.toml") == PYPROJECT.replace('"numpy>=1.7"', '"numpy>=1.7,<2"')
    assert plan.where == ("pyproject.toml [project] dependencies",)
    scipy = plan_pin(tmp_path, "scipy<2")
    assert _after(scipy, "pyproject.toml") == PYPROJECT.replace("'scipy'", "'scipy<2'")


def test_an_undeclared_dependency_goes_into_the_test_extra(tmp_path: Path) -> None:
    plan = plan_pin(write_project(tmp_path, {"pyproject.toml": PYPROJECT}), "lib<2")
    assert _after(plan, "pyproject.toml") == PYPROJECT.replace('["pytest"]', '["pytest", "lib<2"]')
    assert plan.where == ("pyproject.toml [project.optional-dependencies] test",)


SETUP_CFG = """\
[metadata]
name = demo

[options]
install_requires =
  numpy>=1.7; python_version>"3"
  # the rest
  six  # always
python_requires = >=3.8

[options.extras_require]
test =
  pytest
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_setup_cfg_keeps_indentation_and_line_endings(tmp_path: Path, newline: str) -> None:
    root = write_project(tmp_path, {"setup.cfg": SETUP_CFG.replace("\n", newline)})
    plan = plan_pin(root, "numpy<2")
    expected = SETUP_CFG.replace('numpy>=1.7; python_version>"3"', 'numpy>=1.7,<2; python_version > "3"')
    assert _after(plan, "setup.cfg") == expected.replace("\n", newline)
    added = plan_pin(root, "lib<2")
    assert _after(added, "setup.cfg") == (SETUP_CFG + "  lib<2\n").replace("\n", newline)
    assert added.where == ("setup.cfg [options.extras_require] test",)


def test_requirement_files_change_only_the_matching_line(tmp_path: Path) -> None:
    text = "-r base.txt\r\n-c constraints.txt\r\nnumpy>=1.5  # why\r\nnumpy-financial\r\nsix\r\n"
    plan = plan_pin(write_project(tmp_path, {"requirements.txt": text}), "numpy<2")
    assert _after(plan, "requirements.txt") == text.replace("numpy>=1.5 ", "numpy>=1.5,<2 ")


def test_hashed_requirements_are_refused(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"requirements.txt": "numpy==2.0 \\\n    --hash=sha256:abc\n"})
    plan = plan_pin(root, "numpy<2")
    assert plan.changes == {} and "hashes" in (plan.refused or "")


def test_already_constrained_needs_only_the_install(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"requirements.txt": "urllib3>=1.21.1,<1.27\n"})
    plan = plan_pin(root, "urllib3<2")
    assert plan == PinPlan({}, ("already declared as 'urllib3>=1.21.1,<1.27' (requirements.txt)",), ("urllib3<2",))


TOX = "[tox]\nenvlist = py\n\n[testenv]\ndeps =\n    pytest\n    py38: numpy<1.20\ncommands = pytest\n"


@pytest.mark.parametrize(("command", "rel"), [
    (["tox", "-e", "py"], "tox.ini"),
    ([sys.executable, "-m", "tox"], "tox.ini"),
    ([sys.executable, "-m", "pytest"], "pyproject.toml"),
])
def test_undeclared_dependency_goes_where_the_test_command_reads(tmp_path: Path, command: list[str], rel: str) -> None:
    root = write_project(tmp_path, {"tox.ini": TOX, "pyproject.toml": PYPROJECT})
    plan = plan_pin(root, "lib<2", test_command=command)
    assert list(plan.changes) == [rel]
    if rel == "tox.ini":
        assert _after(plan, rel) == TOX.replace("numpy<1.20\n", "numpy<1.20\n    lib<2\n")
        assert plan.where == ("tox.ini [testenv] deps",)


def test_a_constraints_file_named_by_the_command(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"pyproject.toml": PYPROJECT, "ci/constraints.txt": "six<2\n"})
    plan = plan_pin(root, "lib<2", test_command=["pytest", "-c", "ci/constraints.txt"])
    assert _after(plan, "ci/constraints.txt") == "six<2\nlib<2\n"


def test_a_test_requirements_file(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"requirements.txt": "six\n", "requirements-test.txt": "pytest"})
    plan = plan_pin(root, "lib<2")
    assert plan.changes == {"requirements-test.txt": (b"pytest", b"pytest\nlib<2\n")}


def test_no_test_place_makes_a_test_extra_or_refuses(tmp_path: Path) -> None:
    cfg = write_project(tmp_path / "cfg", {"setup.cfg": "[metadata]\nname = demo\n"})
    assert _after(plan_pin(cfg, "lib<2"), "setup.cfg") == (
        "[metadata]\nname = demo\n\n[options.extras_require]\ntest =\n    lib<2\n")
    bare = write_project(tmp_path / "bare", {"requirements.txt": "six\n"})
    plan = plan_pin(bare, "lib<2")
    assert plan.changes == {} and "add 'lib<2' where its tests get their dependencies" in (plan.refused or "")


def test_poetry_is_refused_with_what_to_run(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.8"\nnumpy = "^1.7"\n'})
    plan = plan_pin(root, "numpy<2")
    assert plan.changes == {} and "poetry add 'numpy<2'" in (plan.refused or "")


def test_check_metadata(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"setup.py": "from setuptools import setup\nsetup(name='d', version='1', "
                                           "install_requires=['numpy>=1.7,,<2'])\n",
                               "setup.cfg": "[options]\ninstall_requires =\n    numpy>=1.7,,<2\n"})
    assert "setup.py --version fails" in (check_metadata(root, sys.executable, ["setup.py"]) or "")
    assert "not a valid requirement" in (check_metadata(root, sys.executable, ["setup.cfg"]) or "")
    (root / "setup.cfg").write_text("[options]\ninstall_requires =\n    numpy>=1.7,<2\n")
    assert check_metadata(root, sys.executable, ["setup.cfg"]) is None


def test_config_file_helpers_keep_crlf() -> None:
    toml = '[project]\r\ndependencies = [\r\n    "a",  # c\r\n]\r\n'
    assert toml_map_strings(toml, ("project", "dependencies"), lambda s: s + "<2") == toml.replace('"a"', '"a<2"')
    assert toml_append_string(toml, ("tool", "pytest", "markers"), "slow") == toml + '\r\n[tool.pytest]\r\nmarkers = ["slow"]\r\n'
    ini = "[testenv]\r\ndeps = pytest\r\n  # c\r\ncommands = pytest\r\n"
    assert ini_append_list(ini, "testenv", "deps", "lib<2") == ini.replace("  # c\r\n", "  # c\r\n  lib<2\r\n")
    assert ini_map_list(ini, lambda s, k: k == "deps", lambda v: v + "<9") == ini.replace("pytest\r\n  #", "pytest<9\r\n  #")


# --- dependents: a real venv with app 2.0 (lib>=2) and lib 2.0 installed, pip offline ------------

@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """(python, wheels where app 1.0 allows lib<2, wheels where no app does)."""
    base = tmp_path_factory.mktemp("pins-venv")
    good, bad = base / "good", base / "bad"
    for folder in (good, bad):
        build_wheel(folder, "lib", "1.0", {"lib/__init__.py": ""})
        build_wheel(folder, "lib", "2.0", {"lib/__init__.py": ""})
        build_wheel(folder, "app", "2.0", {"app/__init__.py": ""}, requires=("lib>=2",))
        build_wheel(folder, "other", "1.0", {"other/__init__.py": ""}, requires=("lib", 'lib>=3; extra == "fast"'))
    build_wheel(good, "app", "1.0", {"app/__init__.py": ""}, requires=("lib<2",))
    build_wheel(bad, "app", "1.0", {"app/__init__.py": ""}, requires=("lib>=2",))
    made = subprocess.run([sys.executable, "-m", "venv", str(base / "env")], capture_output=True, text=True)
    python = str(base / "env" / "bin" / "python")
    if made.returncode != 0:
        pytest.skip(f"no venv with pip here: {made.stderr}")
    pip = [python, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(good), "app==2.0", "other"]
    done = subprocess.run(pip, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return python, good, bad


def test_dependents_are_read_from_the_environment(venv: tuple[str, Path, Path]) -> None:
    python, _good, _bad = venv
    assert dependents(python, "LIB") == {"app": ("2.0", ">=2"), "other": ("1.0", "")}


def test_a_dependent_the_pin_breaks_is_pinned_along(venv: tuple[str, Path, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    python, good, _bad = venv
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(good))
    root = write_project(tmp_path, {"requirements.txt": "lib>=1.0\n", "tox.ini": TOX})
    plan = plan_pin(root, "lib<2", python=python, test_command=["tox"])
    assert plan.install == ("lib<2", "app<2")
    assert _after(plan, "requirements.txt") == "lib>=1.0,<2\napp<2\n"
    assert plan.where == ("requirements.txt",)


def test_a_pin_no_dependent_release_allows_is_refused(venv: tuple[str, Path, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    python, _good, bad = venv
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(bad))
    plan = plan_pin(write_project(tmp_path, {"requirements-test.txt": "pytest\n"}), "lib<2", python=python)
    assert plan.changes == {}
    assert (plan.refused or "").startswith("pinning lib<2 conflicts with the installed app 2.0 (requires lib>=2)")
