"""kb isolate through real pytest, in the order the failure really happened (issue 15): an order file, a
recorded kb run with pytest-randomly's seed, a command that names a path, a project whose addopts add
--verbose, a brittle test before its setter, three polluters, kb run --repeat on an order-dependent test,
a reproducer that fails from a plain shell, and a polluted module global healed by the offered fixture.

No pytester here: kb isolate runs the user's test command as a process for every probe, and those real
processes (through kb's order plugin) are what is tested; the projects come from tests/faults.py, which
lays them out as a project does (a ``tests`` package), a layout pytester's in-process runs cannot hold
beside this suite's own ``tests`` package. The order plugin's own hooks are tested with pytester in
test_order_plugin.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kb.run.isolate import run_bound
from kb.store import open_store

from .conftest import KbCli
from .faults import make_project

PYTEST = [sys.executable, "-m", "pytest"]


def _isolate(kb_cli: KbCli, root: Path, db: Path, test: str, *options: str, command: tuple[str, ...] = ()) -> dict:
    out = kb_cli("isolate", test, *options, "--json", "--", *(command or PYTEST), env={"KB_DB": str(db)}, cwd=root)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _late_polluter(root: Path, **kw: object) -> dict:
    """The polluter runs after the victim in the default order: the default order passes."""
    return make_project(root, tests=20, faults=("polluter",), positions={"polluter": 15, "victim": 4}, **kw)


def test_an_order_file_gives_the_failing_order(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = _late_polluter(tmp_path / "p")
    default = _isolate(kb_cli, tmp_path / "p", kb_db, info["victim"])
    assert default["verdict"] == "passes" and default["order"] == "the command's collection order"
    order = tmp_path / "ci-order.txt"
    order.write_text("\n".join(reversed(info["order"])) + "\n")
    found = _isolate(kb_cli, tmp_path / "p", kb_db, info["victim"], "--order-file", str(order))
    assert found["verdict"] == "order-dependent" and found["polluters"] == info["polluters"]
    assert found["order"] == f"order file {order}"
    assert found["by_step"]["alone"] == 1 and "order" not in found["by_step"]  # the file's order failed: not re-run
    assert found["probes"] <= 1 + run_bound(found["tests_before"])


def _seed_putting(root: Path, first: str, then: str) -> int:
    """A pytest-randomly seed whose shuffled order runs ``first`` before ``then``."""
    for seed in range(1, 200):
        out = subprocess.run([*PYTEST, "-p", "randomly", f"--randomly-seed={seed}", "--collect-only", "-q"],
                             cwd=root, capture_output=True, text=True)
        ids = [line for line in out.stdout.splitlines() if "::" in line]
        if ids.index(first) < ids.index(then):
            return seed
    raise AssertionError("no seed puts the polluter first")


def test_a_recorded_run_with_pytest_randomly_seed(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root, db = tmp_path / "p", kb_db
    info = _late_polluter(root, shuffled=True)
    seed = _seed_putting(root, info["polluters"][0], info["victim"])
    ran = kb_cli("run", "--quiet", "--format", "json", "--", *PYTEST, f"--randomly-seed={seed}", env={"KB_DB": str(db)}, cwd=root)
    assert ran.returncode == 1, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    recorded = open_store(db).run_order(run_id)
    assert recorded["seed"] == seed and recorded["tests"].index(info["polluters"][0]) < recorded["tests"].index(
        info["victim"])
    found = _isolate(kb_cli, root, db, info["victim"])  # no --run: the last run here in which it failed
    assert found["verdict"] == "order-dependent" and found["polluters"] == info["polluters"]
    assert found["order"] == f"recorded run {run_id} (pytest-randomly seed {seed})"
    # the reproducer keeps the seed (the random state it sets) without letting pytest-randomly reorder the ids
    assert f"--randomly-seed={seed} --randomly-dont-reorganize" in found["reproduce"]
    assert found["reproduced"].startswith("checked"), found["reproduced"]


def test_a_command_that_names_a_path_and_verbose_addopts(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root = tmp_path / "p"
    info = make_project(root, tests=30, faults=("polluter",))
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = tests\naddopts = -p no:randomly --verbose -rA\n")
    found = _isolate(kb_cli, root, kb_db, info["victim"], command=(*PYTEST, "tests", "-x"))
    assert found["verdict"] == "order-dependent" and found["polluters"] == info["polluters"]
    assert found["tests_before"] == 29


def test_a_brittle_test_before_its_setter_needs_setup(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = make_project(tmp_path / "p", tests=20, faults=("needs-setup",), positions={"provider": 15, "dependent": 3})
    found = _isolate(kb_cli, tmp_path / "p", kb_db, info["dependent"])
    assert found["verdict"] == "needs-setup" and found["providers"] == [info["provider"]]
    assert found["root_causes"][0]["rule"] == "verdict-needs-setup"


@pytest.mark.slow
def test_three_polluters_are_all_named(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = make_project(tmp_path / "p", tests=24, faults=("three-polluters",))
    found = _isolate(kb_cli, tmp_path / "p", kb_db, info["victim"])
    assert sorted(found["polluters"]) == sorted(info["polluters"]) and not found["capped"]
    capped = _isolate(kb_cli, tmp_path / "p", kb_db, info["victim"], "--max-polluters", "2")
    assert len(capped["polluters"]) == 2 and capped["capped"]


def test_kb_run_repeat_does_not_call_an_order_dependent_test_flaky(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root, db = tmp_path / "p", kb_db
    info = make_project(root, tests=20, faults=("polluter",))
    out = kb_cli("run", "--quiet", "--repeat", "2", "--", *PYTEST, env={"KB_DB": str(db)}, cwd=root)
    assert "flaky:" not in out.stdout and "The test is flaky" not in out.stdout and "quarantine" not in out.stdout.lower()
    assert f"order-dependent: {info['victim']} fails in the suite's order and passes alone" in out.stdout
    verdicts = {row["test"]: row["verdict"] for row in open_store(db).query_dicts("SELECT * FROM verdicts ORDER BY 1")}
    assert verdicts == {info["victim"]: "order-dependent"}


def test_the_reproducer_fails_from_a_plain_shell(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = make_project(tmp_path / "p", tests=20, faults=("polluter",))
    found = _isolate(kb_cli, tmp_path / "p", kb_db, info["victim"])
    assert found["reproduce"].startswith(f"cd {tmp_path / 'p'} && ")
    assert found["reproduced"].startswith("checked")
    done = subprocess.run(["/bin/sh", "-c", found["reproduce"]], cwd="/", env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert done.returncode == 1 and re.search(r"1 failed, 1 passed", done.stdout), done.stdout


@pytest.mark.slow
def test_a_polluted_module_global_is_healed_by_the_offered_fixture(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root, db = tmp_path / "p", kb_db
    info = make_project(root, tests=20, faults=("polluter",))
    found = _isolate(kb_cli, root, db, info["victim"])
    assert {"kind": "global", "module": "shared_state", "name": "LEAKS", "before": "[]",
            "after": f"[{info['polluters'][0].rsplit('_', 1)[-1].lstrip('0')}]"} in found["state"]
    remedy = found["root_causes"][0]["remedies"][0]
    assert remedy["kind"] == "isolation-fixture"
    fixed = kb_cli("fix", "--last", "--apply", "--yes", "--max-risk", "medium", "--root", str(root), env={"KB_DB": str(db)}, cwd=root)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "verified" in fixed.stdout, fixed.stdout
    again = _isolate(kb_cli, root, db, info["victim"], "--order-file", str(_write(tmp_path / "o.txt", info["order"])))
    assert again["verdict"] == "passes"


def _write(path: Path, ids: object) -> Path:
    path.write_text("\n".join(ids) + "\n")  # type: ignore[arg-type]
    return path
