"""The GitHub Action (action.yml) and the pre-commit hooks (.pre-commit-hooks.yaml), run as their hosts run them.

The action's steps run here as a GitHub runner runs a composite action: ``${{ … }}`` substituted from the inputs
(with action.yml's defaults), ``github.action_path`` and earlier steps' outputs; each run step in ``bash
--noprofile --norc -eo pipefail`` with fresh ``GITHUB_OUTPUT``/``GITHUB_ENV``/``GITHUB_STEP_SUMMARY`` files; a step
that fails stops the rest; ``uses:`` steps recorded, not run. The install step is skipped (kb is installed here:
its ``python`` output is this interpreter). The project is real: ``tests/faults.py`` with a known cause.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kb.cli import cli
from kb.github_action import OUTPUTS
from kb.report import render

from .faults import make_project
from .sarif import sarif_errors  # the published 2.1.0 schema

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
BIN = str(Path(sys.executable).parent)  # `python` and `kb` as a user's PATH has them


# ---------------------------------------------------------------- a composite-action runner, for what action.yml uses

@dataclass
class ActionRun:
    status: int
    summary: str
    outputs: dict[str, str]
    log: str
    uses: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def _lookup(expression: str, context: dict[str, Any]) -> str:
    """The value of a context path (``inputs.command``, ``steps.kb.outputs.run-id``); a step output never set is
    '' as on GitHub; anything else unknown fails the test (the action uses nothing this runner does not know)."""
    parts = expression.split(".")
    if parts[0] == "steps":
        assert len(parts) == 4 and parts[2] == "outputs", expression
        return context["steps"].get(parts[1], {}).get(parts[3], "")
    node: Any = context
    for part in parts:
        node = node[part]
    return str(node)


def _substitute(text: str, context: dict[str, Any]) -> str:
    return EXPRESSION.sub(lambda m: _lookup(m.group(1), context), text)


def _condition(expression: str, context: dict[str, Any]) -> bool:
    """``if:`` as action.yml writes it: ``<context path> != ''`` or ``== ''`` (``${{ }}`` optional)."""
    found = re.fullmatch(r"(?:\$\{\{\s*)?([\w.-]+)\s*(==|!=)\s*''(?:\s*\}\})?", expression.strip())
    assert found, f"this test's runner does not know the condition {expression!r}"
    return (_lookup(found.group(1), context) == "") == (found.group(2) == "==")


def _github_file(path: Path) -> dict[str, str]:
    """``name=value`` and ``name<<DELIMITER`` … ``DELIMITER`` lines, as the runner reads GITHUB_OUTPUT/GITHUB_ENV."""
    lines, found = path.read_text(encoding="utf-8").splitlines(), {}
    while lines:
        line = lines.pop(0)
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter)
            found[name], lines = "\n".join(lines[:end]), lines[end + 1:]
        elif line:
            name, value = line.split("=", 1)
            found[name] = value
    return found


def run_action(workspace: Path, tmp: Path, **inputs: str) -> ActionRun:
    """Run action.yml's steps in ``workspace`` with ``inputs`` (names as in action.yml)."""
    unknown = set(inputs) - set(ACTION["inputs"])
    assert not unknown, f"action.yml has no input {unknown}"
    given = {name: inputs.get(name, str(spec.get("default", ""))) for name, spec in ACTION["inputs"].items()}
    context: dict[str, Any] = {"inputs": given, "github": {"action_path": str(ROOT), "workspace": str(workspace)},
                               "steps": {}}
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"], "RUNNER_TEMP": str(tmp),
           "GITHUB_WORKSPACE": str(workspace), "GITHUB_ACTION_PATH": str(ROOT)}
    summary, log, uses, status = "", "", [], 0
    for n, step in enumerate(ACTION["runs"]["steps"]):
        if "if" in step and not _condition(step["if"], context):
            continue
        if step.get("id") == "install":  # kb is installed here, editable: the interpreter running these tests
            context["steps"]["install"] = {"python": sys.executable}
            continue
        if "uses" in step:
            uses.append((step["uses"], {k: _substitute(str(v), context) for k, v in step.get("with", {}).items()}))
            continue
        files = {name: tmp / f"step{n}-{name.lower()}" for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")}
        for path in files.values():
            path.write_text("")
        script = tmp / f"step{n}.sh"
        script.write_text(_substitute(step["run"], context))
        step_env = {**env, **{k: str(v) for k, v in files.items()},
                    **{k: _substitute(str(v), context) for k, v in step.get("env", {}).items()}}
        assert step["shell"] == "bash"
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workspace,
                              env=step_env, capture_output=True, text=True)
        log += done.stdout + done.stderr
        summary += files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8")
        env.update(_github_file(files["GITHUB_ENV"]))
        if "id" in step:
            context["steps"][step["id"]] = _github_file(files["GITHUB_OUTPUT"])
        if done.returncode:  # a failed step ends a composite action
            status = done.returncode
            break
    outputs = {name: _substitute(spec["value"], context) for name, spec in ACTION["outputs"].items()}
    return ActionRun(status, summary, outputs, log, uses)


# ---------------------------------------------------------------- action.yml's shape

def test_action_yml_is_a_composite_action_whose_steps_github_can_run() -> None:
    assert ACTION["runs"]["using"] == "composite" and ACTION["name"] and ACTION["description"]
    for name, spec in ACTION["inputs"].items():
        assert spec.get("description") and "default" in spec, name
    for step in ACTION["runs"]["steps"]:
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step["shell"] == "bash", step  # a composite run step must name its shell
            assert "${{" not in step["run"], f"{step['name']}: expressions reach the script through env only"
            syntax = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True)
            assert syntax.returncode == 0, f"{step['name']}: {syntax.stderr}"
    assert ["install", "kb"] == [s["id"] for s in ACTION["runs"]["steps"] if "id" in s]


def test_every_output_comes_from_the_kb_step_and_the_step_sets_each() -> None:
    assert set(ACTION["outputs"]) == set(OUTPUTS)
    for name, spec in ACTION["outputs"].items():
        assert spec["value"] == f"${{{{ steps.kb.outputs.{name} }}}}" and spec["description"], name


def test_sarif_is_uploaded_by_codeql_upload_sarif_only_when_written() -> None:
    (upload,) = [s for s in ACTION["runs"]["steps"] if "uses" in s]
    assert upload["uses"] == "github/codeql-action/upload-sarif@v3"
    assert upload["if"] == "steps.kb.outputs.sarif != ''"
    assert upload["with"]["sarif_file"] == "${{ steps.kb.outputs.sarif }}"


def test_fail_on_offers_what_kb_run_accepts() -> None:
    """The input's description names kb run's choices (another choice added to kb run shows up here)."""
    described = ACTION["inputs"]["fail-on"]["description"]
    assert [c for c in _fail_on_choices() if not re.search(rf"\b{c} \(", described)] == []


def _fail_on_choices() -> list[str]:
    (option,) = [p for p in cli.commands["run"].params if p.name == "fail_on"]
    return list(option.type.choices)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the action on real projects

#: kb run's exit status per fail-on for a project whose one failure has a known cause (removed-api)
KNOWN_CAUSE = {"status": 1, "cause": 1, "undiagnosed": 0, "any": 1, "never": 0}


@pytest.mark.parametrize("fail_on", _fail_on_choices())
def test_the_action_on_a_failing_project_with_a_known_cause(tmp_path: Path, fail_on: str) -> None:
    workspace, tmp = tmp_path / "work", tmp_path / "runner-temp"
    tmp.mkdir()
    make_project(workspace, tests=5, faults=("removed-api",))
    run = run_action(workspace, tmp, **{"fail-on": fail_on})
    expected = KNOWN_CAUSE[fail_on]
    assert run.status == expected, run.log
    assert run.outputs["exit-status"] == str(expected)
    assert {k: run.outputs[k] for k in ("causes", "undiagnosed", "failed", "sarif")} == \
        {"causes": "1", "undiagnosed": "0", "failed": "1", "sarif": ""}
    assert Path(run.outputs["report"]).parent == tmp  # in RUNNER_TEMP
    report = json.loads(Path(run.outputs["report"]).read_text(encoding="utf-8"))
    assert run.outputs["run-id"] == str(report["run_id"]) and report["run_id"] >= 1
    assert run.summary == render(report, "markdown")  # the job summary is kb's Markdown report of that run
    assert run.summary.startswith("# kb diagnosis\n\n**5 tests: 4 passed, 1 failed, 0 errors, 0 skipped**")
    assert "### 1. inspect.getargspec was removed" in run.summary
    assert "test_0000" in run.log  # the tests' own output is in the log
    assert run.uses == []  # no SARIF asked for: nothing uploaded
    assert ("::error title=kb::failed by fail-on" in run.log) == bool(expected)


def test_the_action_fails_on_an_undiagnosed_failure_and_passes_a_green_project(tmp_path: Path) -> None:
    failing, green = tmp_path / "failing", tmp_path / "green"
    make_project(failing, tests=5)
    (failing / "tests" / "test_mine.py").write_text("def test_mine():\n    assert 'widget' == 'gadget'\n")
    make_project(green, tests=5)
    (tmp_path / "t1").mkdir()
    (tmp_path / "t2").mkdir()
    run = run_action(failing, tmp_path / "t1", **{"fail-on": "undiagnosed"})
    assert run.status == 1 and run.outputs["undiagnosed"] == "1" and run.outputs["causes"] == "0", run.log
    assert "## Undiagnosed" in run.summary or "Undiagnosed" in run.summary
    run = run_action(green, tmp_path / "t2", **{"fail-on": "any"})
    assert run.status == 0 and run.outputs["failed"] == "0" and run.outputs["exit-status"] == "0", run.log
    assert "**5 tests: 5 passed, 0 failed, 0 errors, 0 skipped**" in run.summary


def test_a_command_kb_cannot_run_is_one_line_in_the_summary_and_fails(tmp_path: Path) -> None:
    workspace = tmp_path / "work"
    make_project(workspace, tests=2)
    (tmp_path / "t").mkdir()
    run = run_action(workspace, tmp_path / "t", command="no-such-test-runner --fast")
    assert run.status == 1 and run.outputs["exit-status"] == "1" and run.outputs["run-id"] == ""
    (line,) = [x for x in run.summary.splitlines() if x.startswith("kb could not")]
    assert line.startswith("kb could not diagnose `no-such-test-runner --fast`: kb: error: no-such-test-runner")


def test_a_missing_working_directory_stops_the_action_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    run = run_action(tmp_path, tmp_path / "t", **{"working-directory": "nowhere"})
    assert run.status == 1 and run.outputs["exit-status"] == "" and run.summary == ""
    assert run.log.splitlines() == ["kb: error: nowhere: the working directory does not exist"]


def test_command_and_working_directory_are_used_as_a_shell_would_and_sarif_paths_start_at_the_workspace(
        tmp_path: Path) -> None:
    workspace = tmp_path / "work"
    make_project(workspace / "sub project", tests=3, faults=("removed-api",))
    (tmp_path / "t").mkdir()
    run = run_action(workspace, tmp_path / "t", command="python -m pytest -k 'test_0000 or test_0001'",
                     sarif="kb.sarif", **{"working-directory": "sub project", "fail-on": "never"})
    assert run.status == 0, run.log
    assert "**2 tests: 1 passed, 1 failed" in run.summary
    sarif = json.loads((workspace / "kb.sarif").read_text(encoding="utf-8"))
    (result,) = sarif["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "sub%20project/tests/test_000.py"
    assert sarif_errors(sarif) == []


def test_sarif_is_written_and_handed_to_upload_sarif(tmp_path: Path) -> None:
    workspace = tmp_path / "work"
    make_project(workspace, tests=5, faults=("removed-api",))
    (tmp_path / "t").mkdir()
    run = run_action(workspace, tmp_path / "t", sarif="results/kb.sarif")
    assert run.status == 1 and run.outputs["sarif"] == "results/kb.sarif", run.log
    sarif = json.loads((workspace / "results" / "kb.sarif").read_text(encoding="utf-8"))
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == 1
    (result,) = sarif["runs"][0]["results"]
    assert result["ruleId"] == "py-module-has-no-attribute"
    assert result["locations"][0]["physicalLocation"] == {"artifactLocation": {"uri": "tests/test_000.py"},
                                                          "region": {"startLine": 6}}
    assert run.uses == [("github/codeql-action/upload-sarif@v3", {"sarif_file": "results/kb.sarif", "category": "kb"})]


# ---------------------------------------------------------------- pre-commit hooks

GOOD_PACK = """\
pack: team-rules
version: 1.0.0
description: What our team learnt from its own test failures.
rules:
- id: team-argparse-options-heading
  title: argparse's help heading 'optional arguments:' is 'options:' since Python 3.10
  category: stdlib-output-change
  explanation: Python 3.10 renamed the heading of argparse's optional-arguments section in --help output.
  source: https://docs.python.org/3/whatsnew/3.10.html#argparse
  prior: 0.7
  match:
    regex: "optional arguments:.*? not found in .*?options:"
    exception: [AssertionError]
  symptom: direct
  remedies:
  - kind: manual
    description: Let the expected help text accept both headings, e.g. '(optional arguments|options):'
    risk: medium
  examples:
    match:
    - "AssertionError: 'optional arguments:' not found in 'usage: x\\\\noptions:\\\\n  -h'"
    - "AssertionError: 'optional arguments:\\\\n  -v' not found in 'usage: prog [-v]\\\\n\\\\noptions:\\\\n  -v'"
    no_match:
    - "AssertionError: 'positional arguments:' not found in 'usage: x'"
"""


def _hook(hook_id: str) -> dict[str, Any]:
    (hook,) = [h for h in HOOKS if h["id"] == hook_id]
    return hook


def test_the_hooks_have_what_pre_commit_requires() -> None:
    assert [h["id"] for h in HOOKS] == ["kb-rules-lint", "kb-rules-test"]
    for hook in HOOKS:
        assert {"id", "name", "entry", "language"} <= set(hook) and hook["language"] == "python"
    assert _hook("kb-rules-lint")["entry"] == "kb rules lint" and _hook("kb-rules-test")["entry"] == "kb rules test"


@pytest.mark.parametrize(("path", "matched"), [
    (".kb/rules/team.yaml", True), (".kb/rules/team.yml", True), ("services/api/.kb/rules/team.yaml", True),
    (".kb/rules/drafts/team.yaml", False),  # kb loads only the packs directly in rules/
    (".kb/config.toml", False), ("kb/packs/python-core.yaml", False), ("my.kb/rules/team.yaml", False),
])
def test_the_hooks_run_on_the_packs_kb_loads(path: str, matched: bool) -> None:
    for hook in HOOKS:  # pre-commit matches `files` with re.search on the path from the repository's root
        assert bool(re.search(hook["files"], path)) == matched, (hook["id"], path)


def _pre_commit_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packs: dict[str, str]) -> Path:
    monkeypatch.delenv("KB_DB", raising=False)  # the project's own .kb, as in a real repository
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".kb" / "rules").mkdir(parents=True)
    for name, text in packs.items():
        (tmp_path / ".kb" / "rules" / name).write_text(text, encoding="utf-8")
    return tmp_path


def _run_hook(hook_id: str, repo: Path, *files: str) -> subprocess.CompletedProcess:
    """The hook as pre-commit runs it: entry + args + the matching staged files, from the repository's root."""
    hook = _hook(hook_id)
    argv = [*shlex.split(hook["entry"]), *hook.get("args", []), *[f for f in files if re.search(hook["files"], f)]]
    return subprocess.run(argv, cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]})


@pytest.mark.parametrize("hook_id", ["kb-rules-lint", "kb-rules-test"])
def test_each_hook_passes_a_good_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook_id: str) -> None:
    repo = _pre_commit_repo(tmp_path, monkeypatch, {"team.yaml": GOOD_PACK})
    done = _run_hook(hook_id, repo, ".kb/rules/team.yaml", "README.md")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] in ("1 pack(s), 1 rule(s): valid, 0 warning(s)",
                                            "1 rules and templates, 3 checks: all passed")


@pytest.mark.parametrize("hook_id", ["kb-rules-lint", "kb-rules-test"])
def test_each_hook_refuses_a_broken_pack_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     hook_id: str) -> None:
    broken = GOOD_PACK.replace("  source: https://docs.python.org/3/whatsnew/3.10.html#argparse\n", "")
    repo = _pre_commit_repo(tmp_path, monkeypatch, {"team.yaml": broken})
    done = _run_hook(hook_id, repo, ".kb/rules/team.yaml")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert re.fullmatch(r"kb: error: (.*/)?\.kb/rules/team\.yaml: /rules/0: 'source' is a required property", line)


def test_the_test_hook_fails_a_pack_whose_example_does_not_match(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = GOOD_PACK.replace("not found in 'usage: x\\\\noptions:\\\\n  -h'", "not found in 'usage: x'")
    repo = _pre_commit_repo(tmp_path, monkeypatch, {"team.yaml": wrong})
    done = _run_hook("kb-rules-test", repo, ".kb/rules/team.yaml")
    assert done.returncode == 1 and done.stderr.splitlines() == ["kb: error: 1 rule(s) failed their examples"]
    assert "match example 1 did not match" in done.stdout


# ---------------------------------------------------------------- the README shows both, and what it shows exists

def _readme_block(marker: str) -> str:
    found = re.search(rf"<!-- {marker} -->\s*```[a-z]*\n(.*?)```", README, re.S)
    assert found, f"README has no block marked {marker}"
    return found.group(1)


def test_the_readme_workflow_uses_the_action_with_its_inputs() -> None:
    workflow = yaml.safe_load(_readme_block("action-workflow"))
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    (kb_step,) = [s for s in steps if "kb" in str(s.get("uses", "")) and "codeql" not in s["uses"]]
    assert set(kb_step.get("with", {})) <= set(ACTION["inputs"])
    if "sarif" in kb_step.get("with", {}):  # upload-sarif needs this permission
        job = [j for j in workflow["jobs"].values() if kb_step in j["steps"]][0]
        assert job["permissions"]["security-events"] == "write"


def test_the_readme_pre_commit_config_names_these_hooks() -> None:
    config = yaml.safe_load(_readme_block("pre-commit-config"))
    ids = {h["id"] for repo in config["repos"] for h in repo["hooks"]}
    assert ids == {h["id"] for h in HOOKS}
