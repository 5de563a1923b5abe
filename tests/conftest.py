"""Shared fixtures: paths into the copied corpora, an isolated KB per test — on both backends for the
modules marked ``backends``, against a real throwaway PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from .pgserver import PgServer, pg_bindir

#: pytest's own fixture for testing what runs inside pytest (kb's plugins: test_order_plugin.py, test_log.py)
pytest_plugins = ["pytester"]

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
REAL = CORPUS / "real"

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends: run each test on SQLite and on PostgreSQL (KB_DB set to each)")
    config.addinivalue_line("markers", "sqlite_only: a backends-module test about the SQLite file itself")
    config.addinivalue_line("markers", "builtin_packs: reads and checks the built-in packs in full; these tests "
                                       "run first, one after another (see pytest_collection_modifyitems)")
    config.addinivalue_line("markers", "slow: takes 7 s or more (real kb and pytest processes); started early "
                                       "(see pytest_collection_modifyitems)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``builtin_packs`` first, then those marked ``slow``, each in their order. Checking the
    built-in packs in full (the mined pack's 16,140 rows against the schema) costs 9 s of CPU, once per process
    while kb's cache of validated packs still holds them — run apart, each test paid it again; and a long test
    left for the end keeps one worker busy while the other has nothing left to do. Under ``--dist worksteal``
    (setup.cfg) the front of the collection is the first worker's and work is stolen from the back, so the
    marked tests run first, together, on that worker."""
    items.sort(key=lambda item: (item.get_closest_marker("builtin_packs") is None,
                                 item.get_closest_marker("slow") is None))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kb_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        marker = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("kb_backend", BACKENDS[:1] if marker else BACKENDS, indirect=True)


#: PYTEST_ADDOPTS of every pytest process the tests start (kb run, kb isolate's probes, fix verification, a
#: generated project's report): they run this interpreter, whose test extra brings pytest plugins no generated
#: project uses — hypothesis's and anyio's (through datasette) import hypothesis and asyncio into each run,
#: more than half of a pytest start (0.24 of 0.43 s of CPU) over the 450-odd runs the suite makes. It also
#: keeps the suite's own options (PYTEST_ADDOPTS, e.g. CI's --cov) out of those runs.
SUBPROCESS_ADDOPTS = "-p no:hypothesispytest -p no:anyio"


@pytest.fixture(scope="session", autouse=True)
def _subprocess_addopts() -> Iterator[None]:
    """:data:`SUBPROCESS_ADDOPTS` in the environment of the process running the tests. A fixture, not
    ``pytest_configure``: an xdist controller runs no test, and the workers it starts read PYTEST_ADDOPTS
    themselves, so it must keep the suite's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTEST_ADDOPTS", SUBPROCESS_ADDOPTS)
        yield


@pytest.fixture
def kb_backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test's KB: SQLite unless the module is marked ``backends``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server per test process. Without the server's binaries the PostgreSQL half is
    skipped — and fails under CI (KB_CI=1), whose .ci/run installs them."""
    bindir = pg_bindir()
    if bindir is None:
        message = "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
        if os.environ.get("KB_CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PgServer(bindir)
    try:
        server.start()
        server.make_template()
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _isolated_kb(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, kb_backend: str,
                 request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test gets its own KB via KB_DB, so no test writes into the checkout: a SQLite file, or for
    the PostgreSQL half of a ``backends`` module a fresh database on the test server."""
    if kb_backend == "postgresql":
        server: PgServer = request.getfixturevalue("pg_server")
        url = server.new_database()
        monkeypatch.setenv("KB_DB", url)
        monkeypatch.setenv("KB_HOME", str(tmp_path_factory.mktemp("kb") / ".kb"))
        yield url
        server.drop(url)
        return
    path = tmp_path_factory.mktemp("kb") / "kb.sqlite"
    monkeypatch.setenv("KB_DB", str(path))
    yield str(path)


@pytest.fixture
def kb_db(_isolated_kb: str) -> str:
    """This test's KB (a SQLite path or a postgresql:// URL), also in KB_DB."""
    return _isolated_kb


@dataclass
class Ran:
    """What a ``kb`` command did: its exit status and what it wrote (as ``subprocess.run(..., text=True)``)."""

    returncode: int
    stdout: str
    stderr: str


KbCli = Callable[..., Ran]


def run_kb(*args: str | Path, env: Mapping[str, str | None] | None = None, cwd: str | Path | None = None,
           input: str | bytes | None = None) -> Ran:
    """Run ``kb ARGS…`` in this process, through the real entry point :func:`kb.cli.main` (its one-line
    errors and exit statuses) under click's ``CliRunner`` isolation: ``env`` adds to the environment (None
    removes a variable), ``cwd`` is the folder it runs in, ``input`` its standard input (empty by default,
    as from ``/dev/null``). A few tests keep real subprocesses for the entry points themselves."""
    from kb import cli

    here = os.getcwd()
    code = 0
    with CliRunner().isolation(input=input or b"", env=dict(env or {})) as (out, err, _):
        try:
            if cwd is not None:
                os.chdir(cwd)
            cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            os.chdir(here)
            cli._State.debug = False
    return Ran(code, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace"))


@pytest.fixture
def kb_cli() -> KbCli:
    """:func:`run_kb`, for the tests that run kb commands."""
    return run_kb
