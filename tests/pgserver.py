"""A throwaway PostgreSQL server for the tests and benchmarks (the machine's own ``initdb``/``pg_ctl``)."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PgServer", "pg_bindir"]


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
        from kb.pgstore import PgStore

        self.admin("CREATE DATABASE kb_template")
        # a home of its own: the built-in packs only, whatever user packs the checkout's .kb/rules holds
        PgStore(self.url("kb_template"), home=self.folder / "home").close()

    def new_database(self, template: str | None = "kb_template") -> str:
        """A fresh database: a copy of the seeded template, or (``template=None``) a blank one kb has not
        touched yet."""
        name = f"kb_{os.getpid()}_{next(self.names)}"
        self.admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""))
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.split("/")[-1].split("?")[0]
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None
