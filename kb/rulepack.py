"""Rule packs: YAML (PyYAML's safe loader — the only yaml importer) validated whole or refused.

A pack is refused with one line naming the file, the path inside the document and the reason;
nothing of an invalid pack is loaded. Packs are data from possibly shared sources, so the reader
is bounded before the JSON Schema (``schemas/rule-pack.schema.json``) sees anything: at most
``MAX_PACK_BYTES``, ``MAX_DEPTH`` levels of nesting, no aliases, no NaN/infinity, no integer
beyond ±10**12, at most ``MAX_RULES`` rules and ``MAX_ENTRIES`` rows per section. Besides the schema (which types
every fix template's parameters), a pack must have unique ids, and regexes that RE2 compiles
(linear-time matching, :mod:`kb.engine.regex`), that carry the named captures their symptom kind
needs and have no catastrophic-backtracking shape. kb's own packs may use a regex RE2 cannot
express (the matcher runs those on Python ``re``), other packs may not.

A user pack in ``.kb/rules/`` that is refused stops every command that loads the knowledge base
with that one line (exit 1) until it is fixed or removed: knowledge is never silently skipped.
"""

from __future__ import annotations

import gc
import json
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .engine.matcher import check_fields, regex_hazard
from .engine.regex import RegexError, backtracking as backtracking_regex, compile as compile_regex
from .errors import RuleError
from .packs import builtin_packs, digest
from .validate import errors as schema_errors, numbers as number_errors

__all__ = ["Pack", "parse_pack", "read_pack", "read_pack_bytes", "builtin_packs", "golden_cases", "digest", "dump_pack", "load_document",
           "generated",
           "MAX_PACK_BYTES", "MAX_DEPTH", "MAX_RULES", "MAX_ENTRIES"]

MAX_PACK_BYTES = 16 * 1024 * 1024
#: nesting a pack needs is about 8 levels (pack → rules → rule → remedies → remedy → params → list)
MAX_DEPTH = 32
#: rules per pack (each is a regex the matcher may run; 10,000 is what benchmarks/ measures) and
#: API-change rows or distributions per pack (kb's own generated packs: unbounded)
MAX_RULES = 10_000
MAX_ENTRIES = 50_000
#: |integers| beyond this are refused (no pack value needs them; JSON readers lose precision)
MAX_INT = 10**12
#: kb's own generated packs (the shipped mined one) may be larger, unpacked: they are not user input
MAX_GENERATED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Pack:
    name: str
    version: str
    origin: str  # file path or "builtin:<file>"
    sha256: str
    doc: dict[str, Any]  # read-only: packs of the same bytes share it


#: documents validated in this process, by (sha256, trusted): the last few (a pack is read again
#: when it is imported then loaded, linted then loaded)
_VALID: dict[tuple[str, bool], dict[str, Any]] = {}


def _int_scalar(loader: Any, node: Any) -> Any:
    """An integer scalar, refused before conversion when it is too long to be a sane value
    (Python's int() of a 100,000-digit string is slow or refused)."""
    text = str(node.value).replace("_", "").lstrip("+-")
    if len(text) > 40:
        raise yaml.constructor.ConstructorError(None, None, f"integer of {len(text)} digits (at most {MAX_INT:.0e})",
                                                node.start_mark)
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


class _PyLoader(yaml.SafeLoader):
    """The pure-Python safe loader (when PyYAML has no libyaml), with the checks the event scan does."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in rule packs",
                                              event.start_mark)
        return super().compose_node(parent, index)


_PyLoader.add_constructor("tag:yaml.org,2002:int", _int_scalar)
_FAST = getattr(yaml, "CSafeLoader", None)
if _FAST is not None:
    class _CLoader(_FAST):  # type: ignore[misc, valid-type]
        """libyaml's parser and composer with the safe constructor (10× the pure-Python loader)."""

    _CLoader.add_constructor("tag:yaml.org,2002:int", _int_scalar)
    _LOADER: type = _CLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _LOADER = _PyLoader


def _scan(text: str) -> None:
    """Refuse aliases and nesting deeper than MAX_DEPTH on the event stream (both YAML parsers
    produce it without recursion), before anything recursive composes the document: a tiny
    alias tree ("billion laughs") would make validation walk an exponentially large document,
    and 100,000 nested brackets would exhaust the stack."""
    depth = 0
    opening = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    closing = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    for event in yaml.parse(text, Loader=_LOADER):
        kind = type(event)
        if kind in opening:
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.MarkedYAMLError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        elif kind in closing:
            depth -= 1
        elif kind is yaml.AliasEvent:
            raise yaml.MarkedYAMLError(None, None, "aliases (*name) are not allowed in rule packs", event.start_mark)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Building a large document allocates millions of objects and no cycles: the cyclic
    collector would rescan them all, again and again (a 22,000-rule pack: 9 s instead of 2 s)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_yaml(text: str) -> Any:
    _scan(text)
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader (libyaml) subclass


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _depth_error(doc: Any) -> str | None:
    """Why a document read as JSON (YAML is checked on its event stream) is nested too deeply."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth >= MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return None


@lru_cache(maxsize=1)
def _builtin_digests() -> frozenset[str]:
    return frozenset(digest(data) for _origin, data in builtin_packs())


def _compile(regex: str, ignore_case: bool, builtin: Callable[[], bool]) -> Any:
    """RE2 (linear time); Python ``re`` only for kb's own packs, which the hazard check vets."""
    try:
        return compile_regex(regex, ignore_case)
    except RegexError:
        if not builtin():
            raise
        return backtracking_regex(regex, ignore_case)


def _lint(doc: dict[str, Any], builtin: Callable[[], bool] = lambda: False) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for section in ("rules", "api_changes"):
        for i, item in enumerate(doc.get(section) or []):
            where = f"/{section}/{i}/id"
            if item["id"] in seen:
                problems.append((where, f"duplicate id {item['id']!r} (first at {seen[item['id']]})"))
            seen.setdefault(item["id"], where)
    for i, rule in enumerate(doc.get("rules") or []):
        where = f"/rules/{i}/match/regex"
        regex = rule["match"]["regex"]
        try:
            compiled = _compile(regex, bool(rule["match"].get("ignore_case")), builtin)
        except RegexError as exc:
            problems.append((where, f"rule {rule['id']}: regex refused: {exc}"))
            continue
        hazard = regex_hazard(regex)
        if hazard:
            problems.append((where, f"rule {rule['id']}: {hazard}"))
        missing = check_fields(rule["symptom"], set(compiled.groupindex) | set(rule.get("set") or {}))
        if missing:
            problems.append((where, f"symptom {rule['symptom']} needs named group(s): {', '.join(missing)}"))
        if rule["symptom"] == "direct" and not rule.get("remedies"):
            problems.append((f"/rules/{i}", "a direct rule must name its remedies"))
    imports: set[str] = set()
    for i, dist in enumerate(doc.get("distributions") or []):
        if dist["import"] in imports:
            problems.append((f"/distributions/{i}/import", f"duplicate import name {dist['import']!r}"))
        imports.add(dist["import"])
    return problems


def _shape(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The little a trusted pack is checked for before it is loaded: the keys the store reads."""
    for key in ("pack", "version"):
        if not isinstance(doc.get(key), str):
            return [(f"/{key}", "missing or not a string")]
    for section in ("rules", "api_changes", "distributions"):
        if not isinstance(doc.get(section, []), list):
            return [(f"/{section}", "not a list")]
    return []


def generated(origin: str) -> bool:
    """kb's own generated packs (``builtin:*.json.gz``), validated in full when built and by the tests
    (tests/test_pack_lint.py); the store, ``kb rules lint`` and ``kb rules test`` read them trusted."""
    return origin.startswith("builtin:") and origin.endswith(".json.gz")


def load_document(text: str) -> Any:
    """A YAML document the way packs are read (safe, bounded, no aliases) — for editing packs in scripts."""
    with _no_gc():
        return _load_yaml(text)


def dump_pack(doc: dict[str, Any]) -> str:
    """A pack document as YAML (keys in the order given, no aliases, readable line width)."""
    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=110)


def _gunzip(data: bytes, origin: str, limit: int) -> bytes:
    """A gzip-compressed pack, decompressed with a bound (a small file must not inflate without end)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise RuleError(f"{origin}: not a valid gzip file: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise RuleError(f"{origin}: pack is larger than {limit // (1024 * 1024)} MiB unpacked")
    return out


def _read(text: str, origin: str, *, trusted: bool = False) -> Any:
    """The document of a pack's text, or RuleError (one line). ``trusted`` (kb's own packs): a JSON
    document's nesting is not walked (JSON's own recursion limit still holds)."""
    doc: Any = None
    try:
        with _no_gc():
            if text.lstrip().startswith("{"):
                try:
                    doc = json.loads(text)  # JSON is YAML, read by the (much faster) JSON parser
                except RecursionError:
                    raise RuleError(f"{origin}: not valid JSON: nested deeper than {MAX_DEPTH} levels") from None
                except ValueError:
                    doc = None  # YAML's flow style ({pack: x, ...}) is not JSON: the YAML reader decides
                else:
                    problem = None if trusted else _depth_error(doc)
                    if problem:
                        raise RuleError(f"{origin}: not valid JSON: {problem}")
            if doc is None:
                doc = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        if isinstance(exc, yaml.reader.ReaderError):
            where = f"character {exc.position + 1}: "
            code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
            problem = f"{exc.reason} (#x{code:04x})"
        else:
            problem = getattr(exc, "problem", None) or str(exc)
        raise RuleError(f"{origin}: not valid YAML: {where}{_one_line(problem)}") from None
    except (RecursionError, MemoryError) as exc:  # a reader's own limit, whatever it is
        raise RuleError(f"{origin}: not a readable pack: {type(exc).__name__}") from None
    except ValueError as exc:  # e.g. Python's limit on int() digits, from a scalar the scanner passed
        raise RuleError(f"{origin}: not valid YAML: {_one_line(str(exc))}") from None
    return doc


def _sizes(doc: dict[str, Any]) -> list[tuple[str, str]]:
    for section in ("rules", "api_changes", "distributions"):
        items, most = doc.get(section), MAX_RULES if section == "rules" else MAX_ENTRIES
        if isinstance(items, list) and len(items) > most:
            return [(f"/{section}", f"{len(items)} entries; a pack holds at most {most} (split it)")]
    return []


def parse_pack(data: bytes, origin: str, *, trusted: bool = False) -> Pack:
    """Parse and validate one pack; raise RuleError naming origin, path and reason.

    YAML (``.yaml``/``.yml``) is how people write packs; a large generated pack (the shipped mined
    one) is compact JSON, gzip-compressed (``.json.gz``), validated by the same schema.
    ``trusted``: the JSON Schema check is skipped (the lint still runs) — only for kb's own packs, which
    the build script and the test suite (tests/test_pack_lint.py) validate in full: the generated one
    wherever it is read (tens of thousands of rows at 0.4 ms each would cost seconds on every new KB), the
    curated ones where they are only compared against (kb.authoring.all_packs)."""
    limit = MAX_GENERATED_BYTES if trusted else MAX_PACK_BYTES
    if len(data) > limit:
        raise RuleError(f"{origin}: pack is larger than {limit // (1024 * 1024)} MiB")
    sha256 = digest(data)  # of the file as shipped: what the store compares to decide on a re-seed
    valid = _VALID.get((sha256, trusted))
    if valid is not None:  # the same bytes, already validated in this process (kb rules import: twice)
        return Pack(str(valid["pack"]), str(valid["version"]), origin, sha256, valid)
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, origin, limit)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RuleError(f"{origin}: not UTF-8: {exc.reason} at byte {exc.start}") from None
    doc = _read(text, origin, trusted=trusted)
    if not isinstance(doc, dict):
        raise RuleError(f"{origin}: /: a rule pack must be a mapping with 'pack' and 'version'")
    def builtin() -> bool:  # kb's own pack, also when read from its file (kb rules lint kb/packs/x.yaml)
        return origin.startswith("builtin:") or sha256 in _builtin_digests()

    if trusted:
        problems = _shape(doc)
    else:
        problems = _sizes(doc) or number_errors(doc, max_int=MAX_INT) or schema_errors(doc, "rule-pack")
    problems = problems or _lint(doc, builtin)
    if problems:
        path, reason = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise RuleError(f"{origin}: {path}: {_one_line(reason, 400)}{more}")
    _VALID[(sha256, trusted)] = doc
    while len(_VALID) > 8:
        del _VALID[next(iter(_VALID))]
    return Pack(str(doc["pack"]), str(doc["version"]), origin, sha256, doc)


def read_pack_bytes(path: str | Path) -> bytes:
    """The bytes of a pack file: a regular file (or a symlink to one), read at most MAX_PACK_BYTES + 1 (the
    parser refuses more). Opened once, without blocking on a FIFO: what is checked is what is read."""
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise RuleError(f"{path}: not a regular file")
            return handle.read(MAX_PACK_BYTES + 1)
    except OSError as exc:
        raise RuleError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_pack(path: str | Path) -> Pack:
    """A pack file (see :func:`read_pack_bytes`), parsed and validated."""
    return parse_pack(read_pack_bytes(path), str(path))


def golden_cases() -> list[dict[str, Any]]:
    """The fix templates' golden before/after cases (``fixes/golden.yaml``)."""
    text = resources.files("kb.fixes").joinpath("golden.yaml").read_text("utf-8")
    doc = yaml.safe_load(text) or {}  # kb's own file (it uses anchors for shared sources)
    return list(doc.get("cases") or [])
