"""SelfCorrectionModule: plan → gate → back up → apply → verify → roll back → record.

``plan_fix(report, root)`` turns each root cause's first applicable remedy into edits and a
unified diff that ``git apply`` accepts: a code-edit renders its fix template (``kb.fixes``)
over every line of the project's own Python files that contains the API (so a removed import is
fixed in every module that has it, not only the one in the traceback); a dependency pin is
merged into the project's own declarations (:mod:`kb.pins`). Nothing is written by planning.

``apply_fix`` runs one planned remedy as a transaction (journal and backups first, atomic
writes, verification by re-running the affected tests and some passing neighbours, roll back
when the targeted cause remains or a neighbour breaks, outcome recorded in the KB);
``fix_rounds`` gates and applies a whole report, going on with the causes a fix reveals.

Guards: paths stay inside ``root`` (symlinks, virtual environments, site-packages, VCS and build
folders are skipped), files keep their encoding, newline style and final newline, strings and
comments are never edited, and an edit that would not parse or only hides a failure is refused.
"""

from __future__ import annotations

import ast
import difflib
import io
import os
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .errors import FixError
from .templates import render_template

__all__ = ["Edit", "RemedyPlan", "FixPlan", "Outcome", "FixOptions", "Event", "plan_fix", "gate", "apply_fix",
           "fix_rounds", "undo_fix", "restore_environment", "silences", "unified_diff", "SKIP_DIRS"]

SKIP_DIRS = {".git", ".hg", ".svn", ".kb", ".tox", ".nox", ".venv", "venv", "env", ".env", "site-packages",
             "node_modules", "build", "dist", "__pycache__", ".mypy_cache", ".pytest_cache", ".eggs"}
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_FILES = 20_000


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the root, "/"-separated
    line: int  # 1-based
    before: str
    after: str


@dataclass
class RemedyPlan:
    cause: str
    title: str
    confidence: float
    remedy: dict[str, Any] | None
    edits: list[Edit] = field(default_factory=list)
    diff: str = ""
    skipped: str | None = None  # why nothing is planned for this cause
    rule: str = ""
    tests: list[str] = field(default_factory=list)  # the failing tests this cause explains
    neighbours: list[str] = field(default_factory=list)  # passing tests re-run too, to catch overfitting
    #: relative path -> (bytes before, bytes after)
    changes: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)


@dataclass
class FixPlan:
    root: Path
    plans: list[RemedyPlan]

    def diff(self) -> str:
        return "".join(p.diff for p in self.plans if p.diff)


@dataclass
class _Source:
    path: Path
    rel: str
    encoding: str
    lines: list[str]  # with their line endings


def _python_files(root: Path) -> Iterator[Path]:
    count = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                         and not os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder) / name
                if path.is_symlink():
                    continue
                count += 1
                if count > MAX_FILES:
                    return
                yield path


def _read(path: Path, root: Path) -> _Source | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) > MAX_FILE_BYTES:
        return None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return None
    rel = path.relative_to(root).as_posix()
    return _Source(path, rel, encoding, text.splitlines(keepends=True))


def _needles(template: str, params: dict[str, Any]) -> list[str]:
    """Substrings a line must contain before the template is tried on it."""
    if template == "replace-import":
        return [str(params["module"]), str(params["name"]), "import"]
    if template == "rename-attribute":
        return [str(params["old"]).rsplit(".", 1)[-1]]
    if template == "drop-kwarg":
        return [str(params["param"]), str(params["callable"]).rsplit(".", 1)[-1]]
    if template == "add-kwarg":
        return [str(params["callable"]).rsplit(".", 1)[-1]]
    if template == "replace-kwarg-value":
        return [str(params["param"]), str(params["old"])]
    if template == "rename-method":
        return ["def", str(params["old"])]
    if template == "quarantine":  # as a code-edit it only gets as far as the silences guard
        return ["def", "test"]
    return []


#: templates whose edit is a string literal itself (a keyword's value): comments stay untouchable
_EDITS_STRINGS = {"replace-kwarg-value"}


def _method_lines(source: _Source, params: dict[str, Any]) -> set[int] | None:
    """Lines of ``def <params.old>`` directly in a class whose bases name none of ``params.skip_bases``
    (nose-style ``setUp`` on a plain class, not on a ``unittest.TestCase``). None: not parseable."""
    try:
        tree = ast.parse("".join(source.lines))
    except (SyntaxError, ValueError):
        return None
    skip = [b.strip() for b in str(params.get("skip_bases", "")).split(",") if b.strip()]
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = " ".join(ast.unparse(b) for b in node.bases)
            if any(name in bases for name in skip):
                continue
            lines.update(f.lineno for f in node.body
                         if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.name == params["old"])
    return lines


def _rewrite(source: _Source, new_lines: list[str]) -> tuple[str, tuple[bytes, bytes]]:
    """The diff of one rewritten file and its bytes before and after (in the file's own encoding)."""
    return unified_diff(source.rel, source.lines, new_lines), (
        "".join(source.lines).encode(source.encoding), "".join(new_lines).encode(source.encoding))


def _ending(line: str) -> str:
    for end in ("\r\n", "\n", "\r"):
        if line.endswith(end):
            return end
    return ""


def unified_diff(rel: str, old: list[str], new: list[str]) -> str:
    """A ``git apply``-compatible unified diff of one file (lines keep their endings)."""
    out = [f"diff --git a/{rel} b/{rel}\n"]
    body = list(difflib.unified_diff(old, new, fromfile=f"a/{rel}", tofile=f"b/{rel}", n=3))
    if not body:
        return ""
    for line in body:
        if line.endswith(("\n", "\r")):
            out.append(line)
        else:  # the file's last line has no newline
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


_SILENCERS = ("except", "pytest.skip", "pytest.mark.skip", "pytest.mark.xfail", "pytest.xfail", "unittest.skip",
              "@skip")


def silences(before: str, after: str) -> str | None:
    """Why an edit only hides a failure instead of fixing it, or None.

    Refused outside an explicit quarantine remedy: adding exception handlers or skip/xfail
    marks, and removing assertions or test functions.
    """
    for marker in _SILENCERS:
        if marker in after and marker not in before:
            return f"adds {marker!r}"
    for marker in ("self.assert", "assert", "def test"):
        if before.count(marker) > after.count(marker):
            return f"removes {marker!r}"
    return None


_LITERAL_TOKENS = {tokenize.STRING, tokenize.COMMENT} | {
    getattr(tokenize, name) for name in ("FSTRING_MIDDLE", "FSTRING_START", "FSTRING_END") if hasattr(tokenize, name)}


def _literal_spans(lines: list[str], kinds: set[int] = _LITERAL_TOKENS) -> dict[int, list[tuple[int, int]]] | None:
    """Per 1-based row, the column spans of string literals and comments (None: not tokenizable)."""
    spans: dict[int, list[tuple[int, int]]] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO("".join(lines)).readline):
            if tok.type in kinds:
                (row, col), (end_row, end_col) = tok.start, tok.end
                for r in range(row, end_row + 1):
                    spans.setdefault(r, []).append((col if r == row else 0, end_col if r == end_row else 10**9))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    return spans


def _changed_region(before: str, after: str) -> tuple[int, int]:
    start = 0
    while start < min(len(before), len(after)) and before[start] == after[start]:
        start += 1
    end = 0
    while end < min(len(before), len(after)) - start and before[-1 - end] == after[-1 - end]:
        end += 1
    return start, max(start + 1, len(before) - end)


def _outside_literals(body: str, rendered: str, spans: list[tuple[int, int]], template: str,
                      params: dict[str, Any]) -> str:
    """``rendered`` if the edit touches code only; else the edit of the code before a trailing comment;
    else the line unchanged (never edit inside string literals or comments)."""
    low, high = _changed_region(body, rendered)
    if not any(a < high and low < b for a, b in spans):
        return rendered
    comment = min((a for a, b in spans if b >= len(body) and body[a:a + 1] == "#"), default=None)
    if comment is None:
        return body
    code = body[:comment]
    redone = render_template(template, line=code.rstrip(), params=params)
    redone += code[len(code.rstrip()):]
    low, high = _changed_region(code, redone)
    if redone == code or any(a < high and low < b for a, b in spans if a < comment):
        return body
    return redone + body[comment:]


def _plan_remedy(remedy: dict[str, Any], sources: list[_Source]
                 ) -> tuple[list[Edit], str, str | None, dict[str, tuple[bytes, bytes]]]:
    template, params = remedy["template"], remedy.get("params") or {}
    needles = _needles(template, params)
    if not needles:
        return [], "", f"template {template} edits no source lines", {}
    edits: list[Edit] = []
    diffs: list[str] = []
    changes: dict[str, tuple[bytes, bytes]] = {}
    kinds = {tokenize.COMMENT} if template in _EDITS_STRINGS else _LITERAL_TOKENS
    for source in sources:
        new_lines: list[str] = []
        changed: list[Edit] = []
        spans: dict[int, list[tuple[int, int]]] | None = None
        allowed: set[int] | None = None
        if template == "rename-method":
            if not any(all(n in line for n in needles) for line in source.lines):
                continue
            allowed = _method_lines(source, params) or set()
        for number, line in enumerate(source.lines, 1):
            body = line[: len(line) - len(_ending(line))]
            if all(n in body for n in needles) and (allowed is None or number in allowed):
                rendered = render_template(template, line=body, params=params)
                if rendered != body:
                    if spans is None:
                        spans = _literal_spans(source.lines, kinds) or {}
                    rendered = _outside_literals(body, rendered, spans.get(number, []), template, params)
                    if rendered == body:
                        new_lines.append(line)  # the API's name only inside strings or comments: not code
                        continue
                    why = None if remedy.get("kind") == "quarantine" else silences(body, rendered)
                    if why:
                        return [], "", f"{source.rel}:{number}: the edit {why}: it would hide the failure, refused", {}
                    ending = _ending(line) or ("\n" if "\n" in rendered else "")
                    rendered_lines = rendered.split("\n")
                    new_lines.extend(part + ending for part in rendered_lines[:-1])
                    new_lines.append(rendered_lines[-1] + _ending(line))
                    changed.append(Edit(source.rel, number, body, rendered))
                    continue
            new_lines.append(line)
        if not changed:
            continue
        new_text = "".join(new_lines)
        try:
            ast.parse(new_text, filename=source.rel)
        except SyntaxError as exc:
            return [], "", f"the edited {source.rel} would not parse (line {exc.lineno}): refused", {}
        edits.extend(changed)
        diff, changes[source.rel] = _rewrite(source, new_lines)
        diffs.append(diff)
    return edits, "".join(diffs), None, changes


def _plan_pin(remedy: dict[str, Any], root: Path
              ) -> tuple[list[Edit], str, str | None, dict[str, tuple[bytes, bytes]]]:
    """Write the pin where the project declares the dependency (see :mod:`kb.pins`)."""
    from .pins import declaration_files, pin_line, split_requirement

    requirement = str((remedy.get("params") or {}).get("requirement", ""))
    dist = split_requirement(requirement)[0]
    if not dist:
        return [], "", f"not a requirement: {requirement!r}", {}
    edits: list[Edit] = []
    diffs: list[str] = []
    changes: dict[str, tuple[bytes, bytes]] = {}
    for path, quoted in declaration_files(root):
        source = _read_any(path, root)
        if source is None:
            continue
        new_lines = []
        changed = []
        for number, line in enumerate(source.lines, 1):
            body = line[: len(line) - len(_ending(line))]
            pinned = pin_line(body, requirement, quoted)
            if pinned != body:
                changed.append(Edit(source.rel, number, body, pinned))
            new_lines.append(pinned + _ending(line))
        if changed:
            edits.extend(changed)
            diff, changes[source.rel] = _rewrite(source, new_lines)
            diffs.append(diff)
    if not edits:
        return _plan_new_requirement(requirement, root)
    return edits, "".join(diffs), None, changes


def _plan_new_requirement(requirement: str, root: Path
                          ) -> tuple[list[Edit], str, str | None, dict[str, tuple[bytes, bytes]]]:
    """The dependency comes in transitively: constrain it where the project lists test dependencies."""
    from .pins import add_requirement, split_requirement, test_declarations

    for path in test_declarations(root):
        source = _read_any(path, root)
        new_lines = add_requirement(source.lines, requirement, path.name == "tox.ini") if source else None
        if source is None or new_lines is None:
            continue
        added = next(i for i, line in enumerate(new_lines) if line.strip() == requirement
                     and source.lines[i:i + 1] != [line])
        diff, change = _rewrite(source, new_lines)
        return [Edit(source.rel, added + 1, "", requirement)], diff, None, {source.rel: change}
    return [], "", (f"the project does not declare {split_requirement(requirement)[0]} (requirements*.txt, setup.cfg, pyproject.toml, setup.py) "
                    f"and lists no test dependencies (tox.ini [testenv] deps, requirements-test*.txt): "
                    f"add '{requirement}' where it declares its test dependencies"), {}


_CONFIG_KEYS = {"register-marker": "markers", "filterwarnings": "filterwarnings"}


def _plan_config(remedy: dict[str, Any], root: Path
                 ) -> tuple[list[Edit], str, str | None, dict[str, tuple[bytes, bytes]]]:
    """Add a marker or a filterwarnings entry to the project's pytest configuration
    (see :mod:`kb.pytestconfig`)."""
    from .pytestconfig import add_setting, config_file

    found = config_file(root)
    if found is None:
        return [], "", "no pytest configuration (pytest.ini, pyproject.toml, tox.ini, setup.cfg) to register it in", {}
    path, header = found
    source = _read_any(path, root)
    if source is None:
        return [], "", f"{path.name}: not readable as UTF-8 text", {}
    line = render_template(remedy["template"], params=remedy.get("params") or {})
    new_lines = add_setting(source.lines, header, _CONFIG_KEYS[remedy["template"]], line, path.suffix == ".toml")
    if new_lines is None or new_lines == source.lines:
        return [], "", f"{source.rel}: already registered, or no {header} section", {}
    diff, change = _rewrite(source, new_lines)
    added = next(i for i, (a, b) in enumerate(zip(source.lines + [""], new_lines, strict=False)) if a != b)
    edit = Edit(source.rel, added + 1, "", new_lines[added].rstrip("\r\n"))
    return [edit], diff, None, {source.rel: change}


QUARANTINE_DAYS = 30


def _plan_quarantine(remedy: dict[str, Any], tests: list[str], sources: list[_Source], today: date | None = None
                     ) -> tuple[list[Edit], str, str | None, dict[str, tuple[bytes, bytes]]]:
    """Mark each of the cause's tests xfail until an expiry date (``params.days``, default 30 days),
    importing pytest where the module does not. The only remedy allowed to add an xfail."""
    params = dict(remedy.get("params") or {})
    until = ((today or date.today()) + timedelta(days=int(params.get("days", QUARANTINE_DAYS)))).isoformat()
    reason = f"kb quarantine until {until}: {params.get('reason') or remedy.get('description', '')}".strip()
    by_file: dict[str, set[str]] = {}
    for test in tests:
        path, _, rest = test.partition("::")
        if rest:
            by_file.setdefault(path, set()).add(rest.rsplit("::", 1)[-1].split("[", 1)[0])
    edits: list[Edit] = []
    diffs: list[str] = []
    changes: dict[str, tuple[bytes, bytes]] = {}
    for source in sources:
        names = next((n for p, n in by_file.items() if source.rel == p or source.rel.endswith("/" + p)), None)
        if not names:
            continue
        new_lines = list(source.lines)
        changed: list[Edit] = []
        for index in range(len(source.lines) - 1, -1, -1):
            line = source.lines[index]
            body = line[: len(line) - len(_ending(line))]
            found = _DEF.match(body)
            if not found or found.group(1) not in names or (index and "xfail" in source.lines[index - 1]):
                continue
            rendered = render_template("quarantine", line=body, params={"until": until, "reason": reason})
            if rendered == body:
                continue
            ending = _ending(line) or "\n"
            new_lines[index:index + 1] = [part + ending for part in rendered.split("\n")[:-1]] + [line]
            changed.append(Edit(source.rel, index + 1, body, rendered))
        if not changed:
            continue
        if not any(re.match(r"\s*(import pytest\b|from pytest import)", line) for line in new_lines):
            at = _import_position(source)
            new_lines.insert(at, "import pytest" + (_ending(source.lines[0]) if source.lines else "\n"))
        edits.extend(reversed(changed))
        diff, changes[source.rel] = _rewrite(source, new_lines)
        diffs.append(diff)
    if not edits:
        return [], "", "none of the cause's tests was found in the project's files", {}
    return edits, "".join(diffs), None, changes


_DEF = re.compile(r"\s*(?:async\s+)?def\s+(test\w*)\s*\(")


def _import_position(source: _Source) -> int:
    """Index of the line a new top-level import goes before: after the docstring and __future__ imports."""
    try:
        tree = ast.parse("".join(source.lines))
    except (SyntaxError, ValueError):
        return 0
    at = 0
    for node in tree.body:
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                and at == 0) or (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            at = node.end_lineno or at
        else:
            break
    return at


def _read_any(path: Path, root: Path) -> _Source | None:
    """A UTF-8 text file of the project (declarations are not Python source)."""
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if len(data) > MAX_FILE_BYTES:
        return None
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    return _Source(path, path.relative_to(root).as_posix(), encoding, text.splitlines(keepends=True))


def installed_location(root: Path) -> str | None:
    """Why ``root`` is not a project kb may edit: the standard library, an installed package
    (site-packages, an interpreter's own paths) or a virtual environment; None when it is fine."""
    import sysconfig

    if "site-packages" in root.parts or "dist-packages" in root.parts:
        return "inside an installed package (site-packages)"
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path and (root == Path(path).resolve() or Path(path).resolve() in root.parents):
            return f"inside this interpreter's {key} ({path})"
    for folder in (root, *root.parents):
        if (folder / "pyvenv.cfg").is_file():
            return f"inside the virtual environment {folder}"
    return None


def plan_fix(report: dict[str, Any], root: str | Path) -> FixPlan:
    """Plan the code edits for every root cause of a diagnosis report (nothing is written)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FixError(f"{root}: not a directory")
    refused = installed_location(root)
    if refused:
        raise FixError(f"{root}: {refused}; kb only edits a project's own files")
    sources = [s for s in (_read(p, root) for p in _python_files(root)) if s is not None]
    plans: list[RemedyPlan] = []
    for cause in report["root_causes"]:
        plan = RemedyPlan(cause.get("key", cause["rule"]), cause["title"], cause["confidence"], None,
                          rule=cause["rule"], tests=list(cause.get("tests", [])),
                          neighbours=list(cause.get("neighbours", [])))
        reasons: list[str] = []
        for remedy in cause["remedies"]:
            if remedy["kind"] == "dependency-pin" and (remedy.get("params") or {}).get("requirement"):
                edits, diff, refused, changes = _plan_pin(remedy, root)
            elif remedy["kind"] == "code-edit" and remedy.get("template"):
                edits, diff, refused, changes = _plan_remedy(remedy, sources)
            elif remedy["kind"] == "test-config" and remedy.get("template") in _CONFIG_KEYS:
                edits, diff, refused, changes = _plan_config(remedy, root)
            elif remedy["kind"] == "quarantine" and remedy.get("template") == "quarantine":
                edits, diff, refused, changes = _plan_quarantine(remedy, plan.tests, sources)
            else:
                continue
            if edits:
                plan.remedy, plan.edits, plan.diff, plan.changes = remedy, edits, diff, changes
                break
            reasons.append(refused or f"template {remedy['template']} found nothing to change under {root}")
        if plan.remedy is None:
            if reasons:
                plan.skipped = "; ".join(reasons)
            elif cause["remedies"]:
                first = cause["remedies"][0]
                plan.skipped = (f"kb cannot apply this remedy itself (no fix template); do it by hand: "
                                f"[{first['kind']}] {first['description']}")
            else:
                plan.skipped = "no remedy known"
        plans.append(plan)
    return FixPlan(root, plans)


# ---------------------------------------------------------------- the transaction

@dataclass
class Outcome:
    fix_id: str
    verdict: str  # verified | plausible | failed | rolled back
    note: str
    tests_before: int
    tests_after: dict[str, int] | None = None
    #: the diagnosis of the verification run: where the next (layered) causes come from
    after: dict[str, Any] | None = None


def gate(item: RemedyPlan, *, yes: bool, min_confidence: float, allow_critical: bool,
         allow_auto_fix: bool, interactive: bool) -> str | None:
    """Why this remedy may not be applied now (None: it may, subject to approval when not ``yes``)."""
    remedy = item.remedy or {}
    risk = remedy.get("risk", "critical")
    if risk == "critical":
        if not allow_critical:
            return "critical risk: needs --allow-critical"
        if not interactive:
            return "critical risk: needs a person at the terminal to approve it"
        return None
    if yes:
        if not allow_auto_fix:
            return "allow_auto_fix is off in this project's kb configuration"
        if risk != "low":
            return f"{risk} risk: --yes applies only low-risk remedies (run without --yes to approve it)"
        if item.confidence < min_confidence:
            return f"confidence {item.confidence:.2f} is below --min-confidence {min_confidence:.2f}"
        return None
    if not interactive:
        return "needs approval at a terminal (or --yes for low-risk remedies)"
    return None


def _verdict(item: RemedyPlan, after: dict[str, Any] | None, run: Any) -> tuple[str, str]:
    if run is None or after is None:
        return "failed", "the test command wrote no report"
    if run.tests == 0:
        return "failed", "no test ran (the affected tests were not found)"
    if any(c.get("key") == item.cause for c in after["root_causes"]):
        return "failed", "the targeted failures remain"
    broken = {r.test_id for r in run.results if r.outcome in ("failed", "error")} & set(item.neighbours)
    if broken:
        return "failed", f"{len(broken)} neighbouring test(s) that passed before now fail"
    failing = run.failures + run.errors
    if failing == 0:
        return "verified", f"{run.tests} test(s) re-run, all pass"
    others = "; ".join(c["title"] for c in after["root_causes"][:3]) or "no known cause"
    return "plausible", f"the targeted cause is gone; {failing} failure(s) remain: {others}"


def apply_fix(item: RemedyPlan, root: str | Path, store: Any, *, verify: bool = True,
              test_command: list[str] | None = None, timeout: float | None = None,
              environment: dict[str, str] | None = None) -> Outcome:
    """Journal, back up, write atomically, verify by re-running the affected tests, roll back on failure,
    and record the outcome in the KB (which moves the rule's learned confidence). ``environment``
    (installed versions where the tests run) is given to the diagnosis of the verification run."""
    from .diagnose import diagnose_run
    from .journal import Journal
    from .orchestrate import DEFAULT_TIMEOUT, run_tests

    if item.remedy is None or not item.changes:
        raise FixError(f"nothing planned for {item.title}")
    journal = Journal(root)
    for rel, (old, _new) in item.changes.items():
        if journal._target(rel).read_bytes() != old:
            raise FixError(f"{rel} changed since the fix was planned; plan again")
    entry = journal.begin(cause=item.cause, rule=item.rule, title=item.title, remedy=item.remedy,
                          diff=item.diff, changes=item.changes)
    try:
        journal.write(entry, item.changes)
    except BaseException:
        journal.restore(entry, "rolled back", "the write failed")
        raise
    if item.remedy.get("kind") == "dependency-pin":
        problem = _install_pin(item, entry, journal, test_command)
        if problem:
            restore_environment(entry)
            journal.restore(entry, "rolled back", problem)
            store.record_outcome(item.cause, item.rule, "rolled back", {"fix": entry.id, "note": problem})
            return Outcome(entry.id, "rolled back", problem, len(item.tests))
    verdict, note, after_counts, after = "plausible", "not verified (--no-verify)", None, None
    if verify:
        result = run_tests([*item.tests, *item.neighbours], root, test_command, timeout or DEFAULT_TIMEOUT)
        if result.run is not None:
            result.run.add_environment(environment)
        from .pins import test_python

        after = (diagnose_run(result.run, store, record=False, python=test_python(test_command), root=root)
                 if result.run is not None else None)
        verdict, note = _verdict(item, after, result.run)
        if result.run is not None:
            after_counts = result.run.summary()
        if verdict == "failed" and result.run is None:
            note += ": " + " ".join(result.output.strip().splitlines()[-1:])
    entry.tests = {"before": item.tests, "after": after_counts}
    if verdict == "failed":
        restore_environment(entry)
        journal.restore(entry, "rolled back", note)
    else:
        journal.set_state(entry, verdict, note)
    store.record_outcome(item.cause, item.rule, verdict if verdict != "failed" else "rolled back", {
        "fix": entry.id, "title": item.title, "remedy": item.remedy, "diff": item.diff, "note": note,
        "tests_before": len(item.tests), "tests_after": after_counts,
    })
    return Outcome(entry.id, verdict if verdict != "failed" else "rolled back", note, len(item.tests), after_counts,
                   after if verdict == "plausible" else None)


def _install_pin(item: RemedyPlan, entry: Any, journal: Any, test_command: list[str] | None) -> str | None:
    """Install the pinned requirement into the tests' environment, remembering what was there."""
    from .pins import conflicts, install, installed_version, split_requirement, test_python

    requirement = str(item.remedy["params"]["requirement"])
    python = test_python(test_command)
    dist = split_requirement(requirement)[0].split("[")[0]
    entry.env = {"python": python, "dist": dist, "requirement": requirement,
                 "previous": installed_version(python, dist)}
    journal.save(entry)
    broken_before = conflicts(python)
    problem = install(python, [requirement])
    if problem:
        return f"pip could not install {requirement}: {problem}"
    broken = sorted(conflicts(python) - broken_before)
    if broken:  # e.g. Werkzeug<3 under Flask 3: pip installs it and only warns
        return f"installing {requirement} breaks what other installed distributions require: {broken[0]}"
    return None


def restore_environment(entry: Any) -> None:
    """Put back the version of a pinned distribution that was installed before the fix."""
    from .pins import install

    env = getattr(entry, "env", None) or {}
    if env.get("previous"):
        install(env["python"], [f"{env['dist']}=={env['previous']}"])


def undo_fix(root: str | Path, store: Any, fix_id: str | None = None, *, force: bool = False) -> tuple[str, list[str]]:
    """Undo a fix (the last one still in place when ``fix_id`` is None): files, installed versions,
    and an "undone" outcome in the KB. Returns the fix id and the files restored."""
    from .journal import Journal

    journal = Journal(root)
    journal.recover()
    if fix_id is None:
        live = [e for e in journal.entries() if e.state in ("applied", "verified", "plausible")]
        if not live:
            raise FixError(f"{journal.folder}: no applied fix to undo")
        fix_id = live[-1].id
    entry = journal.load(fix_id)
    restored = journal.undo(fix_id, force=force)
    restore_environment(entry)
    store.record_outcome(entry.cause, entry.rule, "undone", {"fix": fix_id, "title": entry.title})
    return fix_id, restored


@dataclass
class FixOptions:
    apply: bool = False
    yes: bool = False
    min_confidence: float = 0.8
    allow_critical: bool = False
    allow_auto_fix: bool = True
    interactive: bool = False
    verify: bool = True
    test_command: list[str] | None = None
    max_rounds: int = 8
    #: installed versions where the tests run (layered causes are diagnosed with them too)
    environment: dict[str, str] = field(default_factory=dict)


@dataclass
class Event:
    """What happened to one planned fix, or between rounds (for the CLI to show)."""

    kind: str  # plan | refused | declined | outcome | round | stop
    item: RemedyPlan | None = None
    note: str = ""
    outcome: Outcome | None = None


def _stale(item: RemedyPlan, root: Path) -> bool:
    for rel, (old, _new) in item.changes.items():
        try:
            if (root / rel).read_bytes() != old:
                return True
        except OSError:
            return True
    return False


def fix_rounds(report: dict[str, Any], root: str | Path, store: Any, options: FixOptions,
               approve: Any = None) -> Iterator[Event]:
    """Plan (and with ``options.apply``, gate, apply and verify) the fixes of a report, round by round.

    After fixes that hold, the verification runs' diagnoses give the next round's causes (layered
    causes: an import fix reveals the module's next removed API), up to ``max_rounds``. ``approve``
    is asked for each fix when ``options.yes`` is not set.
    """
    for round_no in range(1, options.max_rounds + 1):
        plan = plan_fix(report, root)
        causes = {c.get("key", c["rule"]): c for c in report["root_causes"]}
        layered: dict[str, dict[str, Any]] = {}
        for item in plan.plans:
            if item.remedy is not None and options.apply and _stale(item, plan.root):
                # an earlier fix of this round edited the same file: plan this one on the new bytes
                item = plan_fix({"root_causes": [causes[item.cause]]}, root).plans[0]
            yield Event("plan", item)
            if item.remedy is None or not options.apply:
                continue
            refused = gate(item, yes=options.yes, min_confidence=options.min_confidence,
                           allow_critical=options.allow_critical, allow_auto_fix=options.allow_auto_fix,
                           interactive=options.interactive)
            if refused:
                yield Event("refused", item, refused)
                continue
            if not options.yes and not (approve and approve(item)):
                yield Event("declined", item)
                continue
            outcome = apply_fix(item, root, store, verify=options.verify, test_command=options.test_command,
                                environment=options.environment)
            yield Event("outcome", item, outcome=outcome)
            for cause in (outcome.after or {}).get("root_causes", []):
                layered.setdefault(cause["key"], cause)
        if not options.apply or not layered:
            return
        if round_no == options.max_rounds:
            yield Event("stop", note=f"stopping after {options.max_rounds} rounds; {len(layered)} known cause(s) remain")
            return
        yield Event("round", note=f"round {round_no + 1}: the fixes revealed {len(layered)} further known cause(s)")
        report = {"root_causes": sorted(layered.values(), key=lambda c: -c["confidence"])}
