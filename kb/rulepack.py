"""Rule packs: YAML (PyYAML ``safe_load`` — the only yaml importer) validated whole or refused.

A pack is refused with the file, the path inside the document and the reason; nothing of
an invalid pack is loaded. Besides the JSON Schema (``schemas/rule-pack.schema.json``) a
pack must have unique ids, regexes that compile, carry the named captures their symptom
kind needs and have no catastrophic-backtracking shape.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .engine.matcher import check_fields, regex_hazard
from .errors import RuleError
from .validate import errors as schema_errors

__all__ = ["Pack", "parse_pack", "read_pack", "builtin_packs", "golden_cases", "digest", "dump_pack", "load_document",
           "generated",
           "MAX_PACK_BYTES"]

MAX_PACK_BYTES = 16 * 1024 * 1024
#: kb's own generated packs (the shipped mined one) may be larger, unpacked: they are not user input
MAX_GENERATED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Pack:
    name: str
    version: str
    origin: str  # file path or "builtin:<file>"
    sha256: str
    doc: dict[str, Any]


class _NoAliasLoader(yaml.SafeLoader):
    """safe_load without anchors/aliases: a tiny "billion laughs" alias tree would make schema
    validation walk an exponentially large document. Packs never need them."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in rule packs",
                                              event.start_mark)
        return super().compose_node(parent, index)


def _lint(doc: dict[str, Any]) -> list[tuple[str, str]]:
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
            compiled = re.compile(regex)
        except re.error as exc:
            problems.append((where, f"regex does not compile: {exc}"))
            continue
        hazard = regex_hazard(regex)
        if hazard:
            problems.append((where, hazard))
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
    """kb's own generated packs (``builtin:*.json.gz``), validated in full when built and by the tests."""
    return origin.startswith("builtin:") and origin.endswith(".json.gz")


def load_document(text: str) -> Any:
    """A YAML document the way packs are read (safe, no aliases) — for editing packs in scripts."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def dump_pack(doc: dict[str, Any]) -> str:
    """A pack document as YAML (keys in the order given, no aliases, readable line width)."""
    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=110)


def digest(data: bytes) -> str:
    """The sha256 a pack is recorded under (the store reloads a built-in pack when it changes)."""
    return hashlib.sha256(data).hexdigest()


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


def parse_pack(data: bytes, origin: str, *, trusted: bool = False) -> Pack:
    """Parse and validate one pack; raise RuleError naming origin, path and reason.

    YAML (``.yaml``/``.yml``) is how people write packs; a large generated pack (the shipped mined
    one) is compact JSON, gzip-compressed (``.json.gz``), validated by the same schema.
    ``trusted``: the JSON Schema check is skipped (the lint still runs) — only for kb's own generated
    packs, which the build script and the test suite (``kb rules test``) validate in full; checking
    tens of thousands of rows at 0.4 ms each would cost seconds on every new KB."""
    limit = MAX_GENERATED_BYTES if trusted else MAX_PACK_BYTES
    if len(data) > limit:
        raise RuleError(f"{origin}: pack is larger than {limit // (1024 * 1024)} MiB")
    sha256 = digest(data)  # of the file as shipped: what the store compares to decide on a re-seed
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, origin, limit)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RuleError(f"{origin}: not UTF-8: {exc.reason} at byte {exc.start}") from None
    doc: Any = None
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)  # JSON is YAML, read by the (much faster) JSON parser
        except ValueError:
            doc = None  # YAML's flow style ({pack: x, ...}) is not JSON: the YAML reader decides
    try:
        if doc is None:
            doc = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleError(f"{origin}: not valid YAML: {where}{problem}") from None
    if not isinstance(doc, dict):
        raise RuleError(f"{origin}: /: a rule pack must be a mapping with 'pack' and 'version'")
    problems = (_shape(doc) if trusted else schema_errors(doc, "rule-pack")) or _lint(doc)
    if problems:
        path, reason = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise RuleError(f"{origin}: {path}: {reason}{more}")
    return Pack(str(doc["pack"]), str(doc["version"]), origin, sha256, doc)


def read_pack(path: str | Path) -> Pack:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RuleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_pack(data, str(path))


def builtin_packs() -> list[tuple[str, bytes]]:
    """(origin, bytes) of every built-in pack shipped in ``kb/packs``, sorted by file name."""
    folder = resources.files("kb.packs")
    found = [(f"builtin:{entry.name}", entry.read_bytes())
             for entry in folder.iterdir() if entry.name.endswith((".yaml", ".yml", ".json.gz"))]
    return sorted(found)


def golden_cases() -> list[dict[str, Any]]:
    """The fix templates' golden before/after cases (``fixes/golden.yaml``)."""
    text = resources.files("kb.fixes").joinpath("golden.yaml").read_text("utf-8")
    doc = yaml.safe_load(text) or {}
    return list(doc.get("cases") or [])
