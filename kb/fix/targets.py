"""Which tests verify a fix, found by asking pytest rather than guessing file paths.

A report names tests the way its producer did: pytest's node ids (a kb run file), or a JUnit
``classname`` + ``name`` that kb turned into a path guess (``tests.objects.test_x.test_object_x`` may
be the module ``tests/objects/test_x.py`` with a lower-case test class, or a module of that name).
Both spellings collapse to one dotted form (:func:`normal_id`), and each report id is matched to the
node id pytest collects (``--collect-only``). Collection errors (a module id without ``::``) are
verified by collecting the module; ids pytest cannot run (``pytest.py::internal``) make the
verification a run of the whole command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..run.command import without_selection

__all__ = ["normal_id", "is_module_id", "Targets", "resolve", "without_selection"]

_PY = re.compile(r"\.py(?=::|$)")


def normal_id(test: str) -> str:
    """``tests/test_x.py::TestA::test_b[1-2]`` and ``tests.test_x.TestA.test_b[1-2]`` → one spelling
    (the parameter part is kept as it is)."""
    head, bracket, params = test.partition("[")
    head = _PY.sub("", head.replace("\\", "/")).replace("::", ".").replace("/", ".")
    return head.strip(".") + bracket + params


def is_module_id(test: str) -> bool:
    """A collection error's id: a module path, no test inside it."""
    return "::" not in test and test.endswith(".py")


@dataclass
class Targets:
    """What to run to verify a fix: collected node ids (and module paths for collection errors)."""

    run: list[str] = field(default_factory=list)
    #: report ids matched to what runs, by their normal form
    found: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    whole: bool = False  # some target can only be verified by running the whole command


def resolve(tests: Iterable[str], collected: list[str], files: set[str]) -> Targets:
    """Match report ids to ``collected`` node ids; ``files`` are the project's relative file paths
    (collection-error ids must name one)."""
    exact = {normal_id(c): c for c in collected}
    targets = Targets()
    for test in dict.fromkeys(tests):
        if is_module_id(test):
            rel = test.replace("\\", "/")
            match = rel if rel in files else next((f for f in sorted(files) if f.endswith("/" + rel)), None)
            if match:
                targets.run.append(match)
                targets.found[normal_id(test)] = match
            else:
                targets.missing.append(test)
                targets.whole = True
            continue
        key = normal_id(test)
        node = exact.get(key)
        if node is None:
            near = [c for n, c in exact.items() if n.endswith("." + key) or key.endswith("." + n)]
            node = near[0] if len(near) == 1 else None
        if node is None:
            targets.missing.append(test)
            if "::" not in test or test.endswith("::internal"):
                targets.whole = True
            continue
        targets.run.append(node)
        targets.found[key] = node
    targets.run = list(dict.fromkeys(targets.run))
    return targets

