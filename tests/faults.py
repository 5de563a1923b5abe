"""Throwaway pytest projects with injected faults, to test kb's orchestrator through real pytest runs.

``make_project(root, tests=…, faults=[…])`` writes ``tests/test_NNN.py`` files (10 tests each by
default) of passing tests and injects the faults named in ``faults``:

- ``polluter`` / ``two-polluters`` / ``three-polluters``: test(s) that append to a module-level list in ``shared_state``
  which a later *victim* test expects empty (passes alone, fails after a polluter);
- ``group-polluter``: two tests that only pollute together (each sets half of a flag pair);
- ``flaky``: a test that fails with a seeded rate — it counts its runs in a file and draws from
  ``random.Random(seed + count)``, so the failure sequence repeats exactly across sessions;
- ``needs-setup``: a test that passes only when a provider test ran before it;
- ``removed-api``: a test calling ``inspect.getargspec`` (removed in Python 3.11);
- ``conftest-error``: a conftest.py importing a module that does not exist (pytest stops early);
- ``collection-error``: a test module that fails to import.

Returns the node ids of interest (victim, polluters, flaky, …) in a dict.
"""

from __future__ import annotations

from pathlib import Path

PASSING = "def test_{n:04d}():\n    assert {n} + 1 == {m}\n"


def make_project(root: Path, *, tests: int = 40, per_file: int = 10, faults: tuple[str, ...] = (),
                 positions: dict[str, int] | None = None, flaky_rate: float = 0.5, seed: int = 7,
                 shuffled: bool = False) -> dict[str, object]:
    """Write the project and return {"victim": id, "polluters": [ids], "flaky": id, ...}. pytest-randomly
    (a test extra) is off in the project unless ``shuffled``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "shared_state.py").write_text("LEAKS = []\nFLAGS = {}\nREGISTRY = {}\n")
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n" + ("" if shuffled else "addopts = -p no:randomly\n"))
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "__init__.py").write_text("")
    bodies: dict[int, str] = {n: PASSING.format(n=n, m=n + 1) for n in range(tests)}
    where = {"victim": tests - 1, "polluter": tests // 2, "polluter2": tests // 5, "polluter3": (2 * tests) // 3, "group_a": tests // 4,
             "group_b": (3 * tests) // 4 - 1, "flaky": tests // 3, "provider": 1, "dependent": tests - 2,
             **(positions or {})}
    info: dict[str, object] = {"polluters": []}

    def node(n: int) -> str:
        return f"tests/test_{n // per_file:03d}.py::test_{n:04d}"

    if {"polluter", "two-polluters", "three-polluters", "group-polluter"} & set(faults):
        v = where["victim"]
        bodies[v] = (f"def test_{v:04d}():\n    import shared_state\n"
                     f"    assert shared_state.LEAKS == [] and not all(shared_state.FLAGS.get(k) for k in 'ab')\n")
        info["victim"] = node(v)
    count = 3 if "three-polluters" in faults else 2 if "two-polluters" in faults else 1 if "polluter" in faults else 0
    if count:
        for key in ("polluter", "polluter2", "polluter3")[:count]:
            p = where[key]
            bodies[p] = f"def test_{p:04d}():\n    import shared_state\n    shared_state.LEAKS.append({p})\n"
            info["polluters"].append(node(p))  # type: ignore[union-attr]
    if "group-polluter" in faults:
        for key, flag in (("group_a", "a"), ("group_b", "b")):
            p = where[key]
            bodies[p] = f"def test_{p:04d}():\n    import shared_state\n    shared_state.FLAGS[{flag!r}] = True\n"
            info["polluters"].append(node(p))  # type: ignore[union-attr]
    if "flaky" in faults:
        f = where["flaky"]
        bodies[f] = (f"def test_{f:04d}():\n    import pathlib, random\n"
                     f"    counter = pathlib.Path(__file__).parent.parent / '.flaky-runs'\n"
                     f"    count = int(counter.read_text()) if counter.exists() else 0\n"
                     f"    counter.write_text(str(count + 1))\n"
                     f"    assert random.Random({seed} + count).random() >= {flaky_rate}, 'unlucky draw'\n")
        info["flaky"] = node(f)
    if "needs-setup" in faults:
        p, d = where["provider"], where["dependent"]
        bodies[p] = f"def test_{p:04d}():\n    import shared_state\n    shared_state.REGISTRY['db'] = 'ready'\n"
        bodies[d] = (f"def test_{d:04d}():\n    import shared_state\n"
                     f"    assert shared_state.REGISTRY.get('db') == 'ready', 'no database registered'\n")
        info["provider"], info["dependent"] = node(p), node(d)
    if "removed-api" in faults:
        r = where.get("removed", 0)
        bodies[r] = (f"def test_{r:04d}():\n    import inspect\n\n    def f(a, b=1):\n        return a\n"
                     f"    assert inspect.getargspec(f).args == ['a', 'b']\n")
        info["removed"] = node(r)
    for start in range(0, tests, per_file):
        chunk = [bodies[n] for n in range(start, min(start + per_file, tests))]
        (root / "tests" / f"test_{start // per_file:03d}.py").write_text("\n\n".join(chunk))
    if "collection-error" in faults:
        (root / "tests" / "test_broken.py").write_text("import cv2\n\n\n"
                                                       "def test_never():\n    pass\n")
        info["broken"] = "tests/test_broken.py"
    if "conftest-error" in faults:
        (root / "conftest.py").write_text("import cv2\n")
    info["order"] = [node(n) for n in range(tests)]
    return info
