"""The CI formats: SARIF validated against the published 2.1.0 schema on the real cases, GitHub workflow
commands and GitLab code-quality issues checked field by field, and the levels they share."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kb.cli import cli
from kb.diagnose import diagnose
from kb.report import formats, render
from kb.report.findings import findings, level_of
from kb.report.github import escape_data, escape_property

from .conftest import REAL
from .sarif import sarif_errors

CASES = sorted(p.name for p in REAL.iterdir() if p.is_dir())
PYJWT_TITLE = "collections.Mapping was moved to collections.abc.Mapping (removed in Python 3.10)"
PYJWT_SOURCE = "https://docs.python.org/3/whatsnew/3.10.html"


def _report_of(case: str) -> str:
    folder = REAL / case
    return str(folder / "report.xml") if (folder / "report.xml").exists() else str(folder / "pytest.txt")


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every real case diagnosed once, with one KB for the module."""
    db = tmp_path_factory.mktemp("kb") / "kb.sqlite"
    return {case: diagnose([_report_of(case)], db=db, record=False) for case in CASES}


def _cause(**overrides: Any) -> dict[str, Any]:
    cause = {"key": "api:x", "rule": "py-x", "title": "x was removed", "category": "removed-api",
             "explanation": "X went away. Use y.", "source": "https://example.org/changes", "confidence": 0.9,
             "confidence_breakdown": {"prior": 0.5, "terms": {}, "final": 0.9}, "tests": ["tests/test_a.py::test_a"],
             "evidence": [], "locations": [{"file": "pkg/a.py", "line": 3, "function": "f", "count": 1}],
             "remedies": [{"kind": "manual", "template": None, "description": "use y", "risk": "medium"}]}
    return {**cause, **overrides}


def _doc(causes: list[dict[str, Any]] = (), undiagnosed: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"kb_version": "0.1.0", "run_id": None, "sources": ["report.xml"], "format": "junit",
            "summary": {"tests": 3, "passed": 0, "failures": 3, "errors": 0, "skipped": 0},
            "root_causes": list(causes), "undiagnosed": list(undiagnosed)}


def test_the_ci_formats_are_registered() -> None:
    assert {"sarif", "github", "gitlab", "text", "json", "markdown"} <= set(formats())


# -- SARIF

@pytest.mark.parametrize("case", CASES)
def test_sarif_of_every_real_case_is_valid_against_the_2_1_0_schema(case: str, docs: dict[str, Any]) -> None:
    doc = docs[case]
    log = json.loads(render(doc, "sarif"))
    assert sarif_errors(log) == []
    [run] = log["runs"]
    assert len(run["results"]) == len(doc["root_causes"]) + len(doc["undiagnosed"])
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == {r["ruleId"] for r in run["results"]}


def test_the_schema_check_is_not_vacuous(docs: dict[str, Any]) -> None:
    log = json.loads(render(docs["pyjwt-1.5.3"], "sarif"))
    log["runs"][0]["results"][0]["level"] = "fatal"
    del log["runs"][0]["tool"]["driver"]["name"]
    errors = sarif_errors(log)
    assert any("fatal" in e for e in errors) and any("'name' is a required property" in e for e in errors)


def test_sarif_of_pyjwt_field_by_field(docs: dict[str, Any]) -> None:
    doc = docs["pyjwt-1.5.3"]
    log = json.loads(render(doc, "sarif"))
    assert log["version"] == "2.1.0" and log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    [run] = log["runs"]
    assert run["tool"]["driver"]["name"] == "kb" and run["tool"]["driver"]["version"] == doc["kb_version"]
    [rule] = run["tool"]["driver"]["rules"]
    assert rule["id"] == "py-cannot-import-name" and rule["helpUri"] == PYJWT_SOURCE
    assert rule["fullDescription"]["text"] == doc["root_causes"][0]["explanation"]
    assert rule["properties"]["tags"] == ["removed-api"]
    [result] = run["results"]
    assert result["ruleId"] == "py-cannot-import-name" and result["ruleIndex"] == 0
    assert result["level"] == "error"  # confidence 0.94
    assert result["message"] == {"text": PYJWT_TITLE}
    assert result["locations"] == [{"physicalLocation": {"artifactLocation": {"uri": "jwt/api_jwt.py"},
                                                         "region": {"startLine": 5}}}]
    assert result["properties"]["tests"] == doc["root_causes"][0]["tests"] and len(result["properties"]["tests"]) == 9
    assert result["properties"]["confidence"] == doc["root_causes"][0]["confidence"]
    assert result["properties"]["source"] == PYJWT_SOURCE
    assert result["properties"]["remedies"][0] == "Import Mapping from collections.abc"
    assert len(result["partialFingerprints"]["kbFinding/v1"]) == 64
    assert run["properties"]["summary"]["errors"] == 9


def test_sarif_undiagnosed_failures_are_warnings_at_their_line(docs: dict[str, Any]) -> None:
    doc = docs["configargparse-1.2.3"]
    run = json.loads(render(doc, "sarif"))["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["kb/undiagnosed"]
    first = run["results"][0]
    item = doc["undiagnosed"][0]
    assert first["ruleId"] == "kb/undiagnosed" and first["level"] == "warning"
    assert first["message"]["text"].startswith(f"{item['test']}: {item['exception']}: ")
    assert first["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "tests/test_configargparse.py"}, "region": {"startLine": 250}}
    assert first["properties"]["tests"] == [item["test"]]


def test_sarif_places_a_cause_without_location_at_its_test_file_and_keeps_other_locations(docs: dict[str, Any]) -> None:
    run = json.loads(render(docs["mistune-0.8.4"], "sarif"))["runs"][0]
    assert run["results"][0]["locations"] == [
        {"physicalLocation": {"artifactLocation": {"uri": "tests/test_cases.py"}}}]
    fs = json.loads(render(docs["fs-2.4.16"], "sarif"))["runs"][0]["results"][0]
    assert fs["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "fs/__init__.py"
    assert fs["relatedLocations"] == [{"id": 1, "physicalLocation": {"artifactLocation": {"uri": "tests/test_opener.py"},
                                                                     "region": {"startLine": 6}}}]


def test_sarif_uris_and_a_class_name_test() -> None:
    doc = _doc([_cause(locations=[{"file": "/opt/site packages/x.py", "line": 7, "function": None, "count": 1}]),
                _cause(key="api:y", rule="py-y", locations=[], tests=["com.acme.FooTest::testBar"], source="see notes")])
    log = json.loads(render(doc, "sarif"))
    assert sarif_errors(log) == []
    first, second = log["runs"][0]["results"]
    assert first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "file:///opt/site%20packages/x.py"
    assert "locations" not in second  # a Java class name is no file
    assert "helpUri" not in log["runs"][0]["tool"]["driver"]["rules"][1]  # "see notes" is no URI


# -- levels

@pytest.mark.parametrize(("confidence", "level"), [(1.0, "error"), (0.8, "error"), (0.79, "warning"),
                                                    (0.5, "warning"), (0.49, "note"), (0.0, "note")])
def test_levels_from_confidence(confidence: float, level: str) -> None:
    assert level_of(confidence) == level
    doc = _doc([_cause(confidence=confidence)])
    assert json.loads(render(doc, "sarif"))["runs"][0]["results"][0]["level"] == level
    assert render(doc, "github").startswith({"error": "::error ", "warning": "::warning ", "note": "::notice "}[level])
    assert json.loads(render(doc, "gitlab"))[0]["severity"] == {"error": "major", "warning": "minor", "note": "info"}[level]


# -- GitHub workflow commands

def test_github_annotation_of_pyjwt_field_by_field(docs: dict[str, Any]) -> None:
    out = render(docs["pyjwt-1.5.3"], "github")
    assert out == (
        f"::error file=jwt/api_jwt.py,line=5,title={PYJWT_TITLE}::"
        "confidence 0.94 · 9 test(s) · rule py-cannot-import-name · removed-api%0A"
        "tests: tests/contrib/test_algorithms.py, tests/test_algorithms.py, tests/test_api_jws.py (+6 more)%0A"
        "fix: Import Mapping from collections.abc%0A"
        f"source: {PYJWT_SOURCE}\n")  # in the message only %, CR and LF are escaped


def test_github_undiagnosed_failures(docs: dict[str, Any]) -> None:
    doc = docs["configargparse-1.2.3"]
    lines = render(doc, "github").splitlines()
    assert len(lines) == len(doc["undiagnosed"]) == 5
    item = doc["undiagnosed"][0]
    _, command, message = lines[0].split("::", 2)
    assert command == "warning file=tests/test_configargparse.py,line=250,title=kb%3A undiagnosed failure"
    assert message.startswith(escape_data(f"{item['test']}\n{item['exception']}: "))


def test_github_escaping_follows_actions_core() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%d\ne") == "a%3Ab%2Cc%25d%0Ae"
    evil = _cause(title="t: a, b 50%\n::error::forged",
                  locations=[{"file": "dir,x/a:b.py", "line": 2, "function": None, "count": 1}],
                  remedies=[{"kind": "manual", "template": None, "description": "x\r\n::warning::forged", "risk": "low"}])
    out = render(_doc([evil]), "github")
    [line] = out.splitlines()
    assert line.startswith("::error file=dir%2Cx/a%3Ab.py,line=2,title=t%3A a%2C b 50%25%0A%3A%3Aerror%3A%3Aforged::")
    assert "%0D%0A::warning::forged" in line  # in the message only CR, LF and % are escaped: no new command line


def test_github_without_a_file_and_without_failures() -> None:
    doc = _doc([_cause(locations=[], tests=["com.acme.FooTest::testBar"], confidence=0.3)])
    assert render(doc, "github").startswith("::notice title=x was removed::")
    assert render(_doc(), "github") == ""


# -- GitLab code quality

def test_gitlab_issue_of_pyjwt_field_by_field(docs: dict[str, Any]) -> None:
    [issue] = json.loads(render(docs["pyjwt-1.5.3"], "gitlab"))
    assert issue == {
        "description": f"{PYJWT_TITLE} (kb rule py-cannot-import-name, confidence 0.94, 9 test(s))",
        "check_name": "py-cannot-import-name",
        "fingerprint": issue["fingerprint"],
        "severity": "major",
        "location": {"path": "jwt/api_jwt.py", "lines": {"begin": 5}},
    }
    assert len(issue["fingerprint"]) == 64 and int(issue["fingerprint"], 16) >= 0


def test_gitlab_undiagnosed_and_missing_lines(docs: dict[str, Any]) -> None:
    issues = json.loads(render(docs["configargparse-1.2.3"], "gitlab"))
    item = docs["configargparse-1.2.3"]["undiagnosed"][0]
    assert issues[0]["check_name"] == "kb/undiagnosed" and issues[0]["severity"] == "minor"
    assert issues[0]["location"] == {"path": "tests/test_configargparse.py", "lines": {"begin": 250}}
    assert issues[0]["description"].startswith(f"{item['test']}: {item['exception']}: ")
    assert len({i["fingerprint"] for i in issues}) == len(issues) == 5
    [mistune] = json.loads(render(docs["mistune-0.8.4"], "gitlab"))
    assert mistune["location"] == {"path": "tests/test_cases.py", "lines": {"begin": 1}}
    [java] = json.loads(render(_doc([_cause(locations=[], tests=["com.acme.FooTest::testBar"])]), "gitlab"))
    assert java["location"] == {"path": "com.acme.FooTest", "lines": {"begin": 1}}


def test_fingerprints_are_stable_when_code_moves_and_differ_between_causes() -> None:
    moved = _cause(locations=[{"file": "pkg/a.py", "line": 30, "function": "f", "count": 1}])
    other = _cause(key="api:other")
    prints = [f.fingerprint for f in findings(_doc([_cause(), moved, other]))]
    assert prints[0] == prints[1] != prints[2]
    assert json.loads(render(_doc([_cause()]), "gitlab"))[0]["fingerprint"] == prints[0]


# -- through the command

def test_kb_diagnose_writes_each_ci_format(tmp_path: Path) -> None:
    report = _report_of("pyjwt-1.5.3")
    for fmt, check in (("sarif", lambda out: sarif_errors(json.loads(out)) == []),
                       ("github", lambda out: out.startswith("::error file=jwt/api_jwt.py,line=5,")),
                       ("gitlab", lambda out: json.loads(out)[0]["check_name"] == "py-cannot-import-name")):
        result = CliRunner().invoke(cli, ["diagnose", report, "--no-record", "--format", fmt])
        assert result.exit_code == 0, result.output
        assert check(result.stdout), fmt
        written = tmp_path / f"out.{fmt}"
        assert CliRunner().invoke(cli, ["diagnose", report, "--no-record", "--format", fmt, "-o", str(written)]
                                  ).exit_code == 0
        assert written.read_text(encoding="utf-8") == result.stdout


@pytest.mark.parametrize("command", [["diagnose"], ["run"], ["knowledge", "learn"]])
def test_every_format_option_offers_the_ci_formats(command: list[str]) -> None:
    help_text = CliRunner().invoke(cli, [*command, "--help"]).output
    assert "sarif" in help_text and "github" in help_text and "gitlab" in help_text


def test_the_readmes_ci_format_commands_run(tmp_path: Path) -> None:
    """The README's CI-format block, each line run from the checkout as a user would (outputs into tmp)."""
    root = Path(__file__).resolve().parent.parent
    block = re.search(r"<!-- ci-formats -->\s*```sh\n(.*?)```", (root / "README.md").read_text(encoding="utf-8"), re.S)
    assert block, "README has no block marked ci-formats"
    env = {**os.environ, "KB_DB": str(tmp_path / "kb.sqlite"), "PYTHONIOENCODING": "utf-8"}
    outputs = {}
    for line in filter(None, (raw.split("  #", 1)[0].strip() for raw in block.group(1).splitlines())):
        assert line.startswith("kb diagnose "), line
        command = f'"{sys.executable}" -m kb {line[3:]}'
        for name in ("kb.sarif", "gl-code-quality.json"):
            command = command.replace(f"-o {name}", f"-o {tmp_path / name}")
        done = subprocess.run(command, shell=True, cwd=root, capture_output=True, text=True, env=env)
        assert done.returncode == 0, f"{line}: {done.stderr}"
        outputs[line] = done.stdout
    assert sarif_errors(json.loads((tmp_path / "kb.sarif").read_text(encoding="utf-8"))) == []
    assert json.loads((tmp_path / "gl-code-quality.json").read_text(encoding="utf-8"))[0]["severity"] == "major"
    github, gate = [out for line, out in outputs.items() if "-o " not in line]
    assert github.startswith("::error file=jwt/api_jwt.py,line=5,title=collections.Mapping was moved")
    assert gate.rstrip().endswith("exit 1")
    assert not (root / "kb.sarif").exists() and not (root / "gl-code-quality.json").exists()
