"""Shared fixtures: paths into the copied corpora, an isolated KB per test — on both backends for the
modules marked ``backends``, against a real throwaway PostgreSQL server."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
REAL = CORPUS / "real"

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends: run each test on SQLite and on PostgreSQL (KB_DB set to each)")
    config.addinivalue_line("markers", "sqlite_only: a backends-module test about the SQLite file itself")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kb_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        marker = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("kb_backend", BACKENDS[:1] if marker else BACKENDS, indirect=True)


@pytest.fixture
def kb_backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test's KB: SQLite unless the module is marked ``backends``."""
    return str(getattr(request, "param", "sqlite"))


class PgServer:
    """A PostgreSQL server of the machine's own binaries (``initdb``/``pg_ctl``) in a temporary folder,
    listening on a Unix socket only. ``initdb`` refuses root, and tests and CI run as root: then the
    server runs as ``nobody``. Each test gets a fresh database copied from a template that was migrated
    and seeded once."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="kb-pg-"))
        self.data = self.folder / "data"
        self.socket = self.folder / "socket"
        self.socket.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "nobody", "--"]
            shutil.chown(self.folder, "nobody")
            shutil.chown(self.socket, "nobody")
        self.folder.chmod(0o755)
        self.names = itertools.count()

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, cwd=self.folder)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "kb", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-locale")
        options = (f"-k {self.socket} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   f"-c full_page_writes=off -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://kb@/{database}?host={self.socket}"

    def admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(statement)

    def make_template(self) -> None:
        """A database kb has migrated and seeded with the built-in packs: each test's copy starts there."""
        from kb.store import open_store

        self.admin("CREATE DATABASE kb_template")
        open_store(self.url("kb_template"), seed=True).close()

    def new_database(self) -> str:
        name = f"kb_{os.getpid()}_{next(self.names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE kb_template STRATEGY FILE_COPY")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.split("/")[-1].split("?")[0]
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server per test process. Without the server's binaries the PostgreSQL half is
    skipped — and fails under CI (KB_CI=1), whose .ci/run installs them."""
    bindir = _pg_bindir()
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
