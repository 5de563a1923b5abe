"""The isolation fixture: the remedy ``kb isolate`` proposes for a test that fails because of test order.

kb builds it itself from a verdict (never from a user's rule pack): the state another test changed, as
kb's order plugin recorded it. In ``restore`` mode (a polluter changed state the victim relies on) an
autouse fixture in the victim's module puts back each value as it was before the polluter; in ``provide``
mode (a test that passes only after a setter) it sets each value the setter left. Only module globals
whose values are Python literals and environment variables become code; files, imported modules and the
working directory are named in the refusal instead.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, Any

from .registry import Context, remedy
from .sources import Source, planned_from
from .types import Planned

if TYPE_CHECKING:
    from .codemods.isolation import Setting

__all__ = ["plan_isolation_fixture", "fixture_name", "settings_from"]

_MODES = ("restore", "provide")


def fixture_name(victim: str) -> str:
    """``tests/t.py::TestA::test_b[1]`` → ``_kb_isolate_test_b`` (always an identifier)."""
    function = victim.split("::")[-1].split("[", 1)[0]
    return "_kb_isolate_" + (re.sub(r"[^A-Za-z0-9_]", "_", function) or "test")


def _literal(text: object) -> tuple[bool, object]:
    """(True, value) when ``text`` (a repr) reads back as a Python literal."""
    if not isinstance(text, str):
        return False, None
    try:
        return True, ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def settings_from(changes: list[Any], mode: str) -> tuple[list[Setting], list[str]]:
    """(the settings a fixture can make, why each other change is left out) — "before" values in
    ``restore`` mode, "after" values in ``provide`` mode."""
    from .codemods import Setting, is_attribute, is_dotted, is_env_name, is_identifier, literal_text

    want = "before" if mode == "restore" else "after"
    settings: list[Setting] = []
    skipped: list[str] = []
    for change in changes:
        kind = change.get("kind") if isinstance(change, dict) else None
        name = change.get("name") if isinstance(change, dict) else None
        if kind == "environ":
            value = change.get(want)
            if not is_env_name(name):
                skipped.append("an environment variable whose name is not an identifier")
            elif value is not None and not isinstance(value, str):
                skipped.append("an environment variable without a text value")
            else:
                settings.append(Setting(None, name, value, present=value is not None))
        elif kind == "global":
            module, text = change.get("module"), change.get(want)
            ok, value = _literal(text)
            if not (is_dotted(module) and is_attribute(name)):
                skipped.append("a global whose module or name is not a plain Python name")
            elif text is None:
                settings.append(Setting(module, name, present=False))
            elif not ok or literal_text(value) is None:
                skipped.append("a global whose value is not a Python literal")
            else:
                settings.append(Setting(module, name, value))
        else:
            skipped.append(f"{kind if is_identifier(kind) else 'unknown'} change")
    return settings, skipped


def _module_of(victim: str, sources: list[Source]) -> Source | str:
    """The victim's test module, or why it is not one."""
    path = victim.split("::", 1)[0]
    exact = [s for s in sources if s.rel == path]
    found = exact or [s for s in sources if s.rel.endswith("/" + path)]
    if len(found) == 1:
        return found[0]
    return "several files match" if found else "not found in the project's files"


@remedy("isolation-fixture")
def plan_isolation_fixture(spec: dict[str, Any], ctx: Context) -> Planned | None:
    """An autouse fixture in the victim's module that restores (or provides) the state another test
    changes; refused, in one line, when none of the changes is a global or environment variable."""
    from ..errors import FixError
    from .codemods import isolation_fixture, safe_text

    if spec.get("template") != "isolation-fixture":
        return None
    params = dict(spec.get("params") or {})
    victim, other, mode = str(params.get("victim") or ""), str(params.get("other") or ""), params.get("mode")
    shown_victim, shown_other = safe_text(victim, 200), safe_text(other, 200)
    if mode not in _MODES or "::" not in victim or not other:
        return Planned(refused=f"isolation fixture: needs a victim node id, the other test and a mode "
                               f"({' or '.join(_MODES)})")
    changes = params.get("changes")
    settings, skipped = settings_from(list(changes) if isinstance(changes, list) else [], str(mode))
    if not settings:
        what = ", ".join(sorted(set(skipped))) or "no change was recorded"
        return Planned(refused=f"the state {shown_other} changes is not a module global or an environment "
                               f"variable kb can {mode}: {what}")
    source = _module_of(victim, ctx.sources())
    if isinstance(source, str):
        return Planned(refused=f"the module of {shown_victim}: {source}")
    if mode == "restore":
        doc = (f"kb isolate: restore the state {other} leaves behind, which made {victim} fail after it.")
    else:
        doc = f"kb isolate: provide the state {victim} needs, which only {other} set up before."
    name = fixture_name(victim)
    try:
        text = isolation_fixture(source.text, name, doc, settings, only=victim.split("::")[-1])
    except FixError as exc:
        return Planned(refused=str(exc))
    if text == source.text:
        return Planned(refused=f"{source.rel} does not parse or already defines {name}")
    # no silencing check: the fixture is built only of assignments and monkeypatch calls (codemods.isolation),
    # and the node ids in its docstring (a test named test_..._exception) would read as an added "except"
    return planned_from([(source, text)], check=False)
