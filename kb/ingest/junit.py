"""JUnit XML in every dialect — the only module that imports lxml.

Hardened: no entity expansion, no DTD loading (a document with a DOCTYPE is refused), no
network; streamed with ``iterparse`` and element clearing, so memory stays bounded on huge
reports. Counts come from the ``<testcase>`` elements, never from suite attributes (see
tests/corpus/reports/README.md for the rules): one outcome per testcase, error > failure >
skipped; Surefire ``rerun*`` without a primary result count as that result, ``flaky*`` alone
as passed; ``status=``/``result=`` attributes only when there is no result child.
``<error>``/``<failure>`` directly under a ``<testsuite>`` are surfaced as suite-level
results (phase "suite"), not counted as tests.

Bounded: elements kb does not read (``system-out``, ``properties``, a second ``<failure>`` of a
testcase...) are dropped as soon as they end, so no element grows without end; libxml2's own limits
(no ``huge_tree``) bound text, names and depth; ids and texts count against :class:`kb.ingest.Budget`.
A syntax error is one line: libxml2's first message line, control characters escaped.
"""

from __future__ import annotations

import codecs
import io
import re
from typing import BinaryIO

from lxml import etree

from ..errors import ReportError
from ..models import Run, TestResult
from . import TEXT_LIMIT, Budget, bounded, one_line, reader

__all__ = ["read_junit"]

JUNIT_ROOTS = {"testsuites", "testsuite", "testrun"}
#: related formats kb has no reader for yet: refused as "unsupported format"
OTHER_REPORT_ROOTS = {"assemblies", "test-results", "test-run", "TestRun", "Site", "testResults"}
#: the children of a testcase kb reads (the first of each tag); any other element is dropped when it ends
_KEPT_CHILDREN = {"error", "failure", "rerunFailure", "rerunError", "skipped", "skip", "flakyFailure", "flakyError"}
_ROOTS_AND_CASES = JUNIT_ROOTS | {"testcase"}
_SKIP_STATUS = {"notrun", "disabled", "skipped", "skip", "ignored"}
_FAIL_STATUS = {"failed", "fail", "failure"}
_ERROR_STATUS = {"error", "errored"}
#: the Python version is looked for in the first failures' tracebacks only
_ENV_SCAN_RESULTS = 50
#: node-id prefixes remembered per report (one per test class)
_MAX_PREFIXES = 65_536
_PY_VERSION = re.compile(r"[/\\]python(3\.\d{1,2})[/\\]")
_DECL_ENCODING = re.compile(rb"^(\s*<\?xml[^>]*?)\s+encoding\s*=\s*(['\"])[^'\"]*\2", re.S)


def _looks_like_xml(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        head = head[:512].decode("utf-16", errors="ignore").encode("utf-8")
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""  # comments, processing instructions
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


#: local names of the tags seen, by tag (a report uses a handful; past the cap, names are not remembered)
_LOCALS: dict[object, str] = {}
_MAX_LOCALS = 1024


def _local_name(tag: object) -> str:
    """``_local(tag)``, remembered: it is asked for every element of the report."""
    name = _LOCALS.get(tag)
    if name is None:
        name = _local(tag)
        if len(_LOCALS) < _MAX_LOCALS:
            _LOCALS[tag] = name
    return name


def _source(data: BinaryIO, name: str) -> BinaryIO | bytes:
    """UTF-16 documents are decoded from their BOM (labels such as "UTF-16 LE" confuse libxml2)."""
    head = data.peek(4)[:4] if hasattr(data, "peek") else b""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raw = data.read()
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ReportError(name, f"cannot decode UTF-16: {exc.reason}") from None
        return _DECL_ENCODING.sub(rb"\1", text.encode("utf-8"), count=1)
    return data


def _pytest_id(classname: str, name: str) -> str:
    """A pytest node id from pytest's classname/name ("tests.test_x.Class" + "test_y")."""
    if not classname:
        # collection errors: name is the dotted module ("tests.test_x")
        return name.replace(".", "/") + ".py" if name and "/" not in name and " " not in name else name
    return _pytest_prefix(classname) + "::" + name


def _pytest_prefix(classname: str) -> str:
    """``tests/test_x.py::Class`` for ``tests.test_x.Class``: a module path, then the classes."""
    parts = classname.split(".")
    split = len(parts)
    while split > 1 and parts[split - 1][:1].isupper():
        split -= 1
    module = "/".join(parts[:split]) + ".py"
    return "::".join([module, *parts[split:]])


class _Reader:
    def __init__(self, name: str) -> None:
        self.name = name
        self.run = Run(format="junit")
        self.pytest = False
        self.budget = Budget(name)
        self._prefixes: dict[str, str] = {}
        #: the Python version is still looked for in failure texts (the first ones only)
        self._env_scan = True

    def testcase(self, el: etree._Element) -> None:
        run = self.run
        get = el.get
        classname = get("classname") or get("class") or ""
        name = get("name") or ""
        if not self.pytest:
            test_id = f"{classname}::{name}" if classname else name
        elif classname:  # a report repeats each class many times: its node-id prefix is worked out once
            prefix = self._prefixes.get(classname)
            if prefix is None:
                prefix = _pytest_prefix(classname)
                if len(self._prefixes) < _MAX_PREFIXES:
                    self._prefixes[classname] = prefix
            test_id = prefix + "::" + name
        else:
            test_id = _pytest_id(classname, name)
        budget = self.budget  # Budget.test, inline: it runs for every testcase of the report
        budget.tests += 1
        budget.chars += len(test_id)
        if budget.tests > budget.max_tests or budget.chars > budget.max_chars:
            budget.check()
        run.tests += 1
        run.order.append(test_id)
        children: dict[str, etree._Element] = {}
        for child in el:
            tag = _LOCALS.get(child.tag)
            if tag is None:
                tag = _local_name(child.tag)
            if tag and tag not in children:
                children[tag] = child
        primary = None
        outcome = "passed"
        if "error" in children:
            outcome, primary = "error", children["error"]
        elif "failure" in children:
            outcome, primary = "failed", children["failure"]
        elif "rerunFailure" in children:  # failed on its last rerun
            outcome, primary = "failed", children["rerunFailure"]
        elif "rerunError" in children:
            outcome, primary = "error", children["rerunError"]
        elif "skipped" in children or "skip" in children:
            outcome = "skipped"
        elif not (children.keys() & {"flakyFailure", "flakyError"}):
            status = (get("status") or "").lower()
            result = (get("result") or "").lower()
            if status in _SKIP_STATUS or result in ("skipped", "suppressed"):
                outcome = "skipped"
            elif status in _FAIL_STATUS:
                outcome = "failed"
            elif status in _ERROR_STATUS:
                outcome = "error"
        if outcome == "passed":
            run.passed += 1
            return
        if outcome == "skipped":
            run.skipped += 1
            return
        if outcome == "failed":
            run.failures += 1
        else:
            run.errors += 1
        run.results.append(self._result(test_id, outcome, classname, name, primary, el, False))

    def _result(self, test_id: str, outcome: str, classname: str, name: str,
                primary: etree._Element | None, owner: etree._Element, suite: bool) -> TestResult:
        """The result of a testcase (``owner``) or, ``suite``, of a testsuite's own error/failure element."""
        message = type_ = text = ""
        if primary is not None:
            message = primary.get("message") or ""
            type_ = primary.get("type") or ""
            text = primary.text or ""
            if not text or text.isspace():
                trace = next((c for c in primary if _local(c.tag) == "stackTrace"), None)
                text = (trace.text or "") if trace is not None else ""
        phase = "call"
        if suite:
            phase = "suite"
        elif self.pytest and outcome == "error":
            lowered = message.lower()
            if lowered == "collection failure":
                phase = "collection"
            elif lowered.startswith("failed on setup"):
                phase = "setup"
            elif lowered.startswith("failed on teardown"):
                phase = "teardown"
        line = owner.get("line")
        time = None
        raw_time = owner.get("time")
        if raw_time:
            try:
                time = float(raw_time.replace(",", ""))
            except ValueError:
                time = None
        if self._env_scan and text:
            if len(self.run.results) >= _ENV_SCAN_RESULTS or "python" in self.run.environment:
                self._env_scan = False
            else:
                found = _PY_VERSION.search(text)
                if found:
                    self.run.environment["python"] = found.group(1)
        if len(message) > TEXT_LIMIT or len(type_) > 1024 or len(text) > TEXT_LIMIT:
            message, type_, text = bounded(message), bounded(type_, 1024), bounded(text)
        budget = self.budget  # Budget.result, inline: it runs for every failing test of the report
        budget.results += 1
        budget.chars += len(message) + len(type_) + len(text)
        if budget.results > budget.max_results or budget.chars > budget.max_chars:
            budget.check()
        # positional: a frozen dataclass's keyword call costs twice as much, and a report has thousands
        return TestResult(test_id, outcome, phase, classname, name, message, type_, text, owner.get("file"),
                          int(line) if line and line.isdigit() else None, time, self.name)

    def suite_level(self, el: etree._Element, suite: etree._Element) -> None:
        suite_name = suite.get("name") or ""
        outcome = "error" if _local(el.tag) == "error" else "failed"
        test_id = f"{suite_name} (suite)" if suite_name else "(suite)"
        self.run.results.append(self._result(test_id, outcome, suite_name, "", el, suite, True))


def _check_root(root: etree._Element, name: str) -> None:
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ReportError(name, "refusing a document with a DTD (entities and DTDs are not allowed in reports)")
    tag = _local(root.tag)
    if tag in OTHER_REPORT_ROOTS:
        raise ReportError(name, f"unsupported format: <{tag}>")
    if tag not in JUNIT_ROOTS:
        raise ReportError(name, f"not a test report: root element <{tag}>")


@reader("junit", sniff=_looks_like_xml)
def read_junit(data: BinaryIO, name: str) -> Run:
    """Stream a JUnit-family XML report into a Run."""
    state = _Reader(name)
    source = _source(data, name)
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    # only the elements kb reads are reported; the first "start" is the root, checked before anything else
    events = etree.iterparse(
        source, events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        remove_comments=True, remove_pis=True,
    )
    checked = False
    known = _LOCALS  # local names by tag, looked up inline: this loop sees every element twice
    try:
        for event, el in events:
            if not checked:
                checked = True
                root = el.getroottree().getroot()
                _check_root(root, name)
                state.pytest = (root.get("name") or "") in ("pytest tests", "pytest")
            tag = known.get(el.tag)
            if tag is None:
                tag = _local_name(el.tag)
            if event == "start":
                if tag in JUNIT_ROOTS:
                    if not state.pytest and tag == "testsuite" and el.get("name") == "pytest":
                        state.pytest = True
                    if not state.run.timestamp:  # the first one the report gives
                        state.run.timestamp = one_line(el.get("timestamp") or "", 64)
                continue
            if tag == "testcase":
                state.testcase(el)
                _release(el)
            elif tag == "testsuite":
                _release(el)
            elif tag not in _ROOTS_AND_CASES:
                parent = el.getparent()
                above = (known.get(parent.tag) or _local_name(parent.tag)) if parent is not None else ""
                if above == "testcase" and tag in _KEPT_CHILDREN and el.getprevious() is None:
                    continue  # a testcase's first child: kept (the usual <failure>), as _wanted says
                if above == "testsuite" and tag in ("error", "failure"):
                    state.suite_level(el, parent)
                    _release(el)
                elif not _wanted(el, tag, above, parent):
                    el.clear(keep_tail=False)
                    if parent is not None:
                        parent.remove(el)
        if not checked:  # well-formed, but none of the elements a test report has
            root = events.root
            if root is None:
                raise ReportError(name, "no XML document found")
            _check_root(root, name)
    except etree.XMLSyntaxError as exc:
        raise ReportError(name, f"not well-formed XML: {_syntax(exc)}") from None
    except (UnicodeDecodeError, LookupError) as exc:
        raise ReportError(name, f"cannot decode: {one_line(str(exc))}") from None
    return state.run


def _wanted(el: etree._Element, tag: str, above: str, parent: etree._Element | None) -> bool:
    """Whether an element that just ended is one kb reads: the first child of a testcase of each tag
    in ``_KEPT_CHILDREN``, and the first ``stackTrace`` of such a child."""
    if parent is None:
        return False
    # the parser runs ahead of the events: later siblings may be in the tree already, earlier ones
    # were decided on when they ended
    if above == "testcase":
        return tag in _KEPT_CHILDREN and (el.getprevious() is None or not any(
            _local(c.tag) == tag for c in el.itersiblings(preceding=True)))
    if tag == "stackTrace" and above in _KEPT_CHILDREN:
        grand = parent.getparent()
        return grand is not None and _local(grand.tag) == "testcase" and not any(
            _local(c.tag) == tag for c in el.itersiblings(preceding=True))
    return False


def _syntax(exc: etree.XMLSyntaxError) -> str:
    """libxml2's message in one line: its first line only (a message may go on to echo report text,
    e.g. an unfinished CDATA section's content), escaped, and where the error is."""
    message = str(getattr(exc, "msg", "") or exc).split("\n", 1)[0]
    message = re.sub(r", line \d+, column \d+$", "", message)
    line, column = getattr(exc, "position", None) or (None, None)
    where = f" (line {line}, column {column})" if isinstance(line, int) and isinstance(column, int) else ""
    return one_line(message) + where


def _release(el: etree._Element) -> None:
    """Free a processed element and the siblings before it (bounded memory on huge files)."""
    el.clear(keep_tail=False)
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]
