"""The GitHub Action's step (``action.yml`` at the repository root runs ``python -m kb.github_action``).

It runs the test command once through ``kb run --format json`` (kb decides the exit status from ``--fail-on``),
then renders that one report through the renderer registry: Markdown into the job summary, SARIF to a file when
asked (its relative paths made relative to the workspace, as code scanning reads them). Its outputs go to ``$GITHUB_OUTPUT``. The step itself exits 0 when kb ran, so the SARIF upload can follow
whatever the tests did; the action's last step exits with ``exit-status``. It is Python rather than shell so the
command line is split like a shell would (``shlex``) and the whole step is tested on a real project.

Inputs come as environment variables (GitHub's advice against script injection: an input is never pasted into
shell source): ``INPUT_COMMAND``, ``INPUT_FAIL_ON``, ``INPUT_SARIF``, ``INPUT_WORKING_DIRECTORY``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import KbError
from .terminal import one_line

__all__ = ["OUTPUTS", "main", "run_action"]

#: every output the step sets (always all of them, empty when unknown, so ``if:`` tests are simple)
OUTPUTS = ("exit-status", "run-id", "causes", "undiagnosed", "failed", "report", "sarif")
#: GitHub refuses a job summary above 1 MiB for one step
SUMMARY_LIMIT = 1024 * 1024 - 4096


def _set_outputs(path: str, values: Mapping[str, str]) -> None:
    """Append ``name=value`` lines to the ``$GITHUB_OUTPUT`` file (values are one line by construction)."""
    with open(path, "a", encoding="utf-8") as out:
        for name in OUTPUTS:
            value = values.get(name, "")
            if "\n" in value or "\r" in value:
                raise KbError(f"output {name}: a line break in {value!r}")
            out.write(f"{name}={value}\n")


def _append_summary(path: str, text: str, report: Path) -> None:
    data = text.encode("utf-8")
    if len(data) > SUMMARY_LIMIT:  # cut at a line, and say where the whole report is
        cut = data[:SUMMARY_LIMIT].decode("utf-8", "ignore").rsplit("\n", 1)[0]
        text = f"{cut}\n\n*(cut at GitHub's summary limit: the whole report is `{report}`, the `report` output)*\n"
    with open(path, "a", encoding="utf-8") as out:
        out.write(text)


def _rebase_sarif(text: str, prefix: str) -> str:
    """SARIF whose relative file URIs (relative to where the tests ran) are made relative to the workspace by
    ``prefix``, the working directory from there: code scanning reads them from the repository's root."""
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            where = node.get("artifactLocation")
            if isinstance(where, dict) and "uri" in where and not urlsplit(where["uri"]).scheme \
                    and not where["uri"].startswith("/"):
                where["uri"] = f"{prefix}/{where['uri']}"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    doc = json.loads(text)
    walk(doc)
    return json.dumps(doc, indent=2) + "\n"


def _kb_run(command: list[str], fail_on: str, workdir: Path, report: Path) -> tuple[int, str]:
    """Run ``kb run`` with the report (stdout) into ``report``; its stderr (the tests' own output and kb's
    lines) streams to the log as it comes. Returns kb's exit status and its last stderr line."""
    argv = [sys.executable, "-m", "kb", "run", "--format", "json", "--fail-on", fail_on, "--", *command]
    last = ""
    with open(report, "wb") as out:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()
            if line.strip():
                last = line.decode("utf-8", "replace").strip()
        status = proc.wait()
    return status, last


def run_action(environ: Mapping[str, str]) -> int:
    """The step, from its environment: returns the exit status the action should end with."""
    command = shlex.split(environ.get("INPUT_COMMAND", "") or "python -m pytest")
    fail_on = environ.get("INPUT_FAIL_ON", "") or "status"
    sarif = environ.get("INPUT_SARIF", "")
    workdir = Path(environ.get("INPUT_WORKING_DIRECTORY", "") or ".")
    summary, outputs = environ.get("GITHUB_STEP_SUMMARY", ""), environ.get("GITHUB_OUTPUT", "")
    if not summary or not outputs:
        raise KbError("GITHUB_STEP_SUMMARY and GITHUB_OUTPUT must name files (this runs as a GitHub Actions step)")
    if not workdir.is_dir():
        raise KbError(f"{workdir}: the working directory does not exist")
    fd, name = tempfile.mkstemp(prefix="kb-report-", suffix=".json", dir=environ.get("RUNNER_TEMP") or None)
    os.close(fd)  # one file per use of the action in a job, so each `report` output stays what it was
    report = Path(name).resolve()
    status, last = _kb_run(command, fail_on, workdir, report)
    values = {"exit-status": str(status), "report": str(report)}
    try:
        doc: dict[str, Any] = json.loads(report.read_bytes())
    except (OSError, ValueError):  # kb could not run the command: it said why in its last line
        _append_summary(summary, f"# kb diagnosis\n\nkb could not diagnose `{one_line(shlex.join(command))}`: "
                                 f"{one_line(last) or f'exit status {status}'}\n", report)
        _set_outputs(outputs, {**values, "report": ""})
        report.unlink(missing_ok=True)
        return status
    from .report import render

    counts = doc.get("summary", {})
    values.update({"run-id": str(doc.get("run_id") or ""), "causes": str(len(doc.get("root_causes", []))),
                   "undiagnosed": str(counts.get("undiagnosed", 0)),
                   "failed": str(counts.get("failures", 0) + counts.get("errors", 0))})
    _append_summary(summary, render(doc, "markdown"), report)
    if sarif:
        from .safeio import write_text_atomic

        text = render(doc, "sarif")
        prefix = Path(os.path.relpath(workdir.resolve(), Path.cwd().resolve())).as_posix()
        if prefix != "." and prefix.split("/")[0] != "..":
            text = _rebase_sarif(text, quote(prefix, safe="/-._~"))
        Path(sarif).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(sarif, text)
        values["sarif"] = sarif
    _set_outputs(outputs, values)
    return status


def main() -> None:
    """Entry point: the step exits 0 once its outputs are set (``exit-status`` carries kb's verdict), 1 with one
    line when the step itself could not work."""
    try:
        run_action(os.environ)
    except KbError as exc:
        print(f"kb: error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
