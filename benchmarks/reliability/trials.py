"""Reliability trials that go through the real ``kb`` command (issue 14): kills during fix, undo and
recording diagnose; malformed and hostile inputs; hostile rule packs; damaged knowledge bases.

Each trial returns None when kb held, or a one-line description of the failure. A trial holds when:
kb exits 0 or 1 (2 for usage), says so in at most one ``kb: error:`` line with no traceback and no
``internal error``, finishes within its time limit, stays under 300 MiB, and — after a kill and the next
kb command — every project file is byte-identical to the original or the fixed version, no temp file is
left anywhere, and the journal's states agree with the files. Used by ``campaign.py`` (the full table)
and ``tests/test_reliability.py`` (a short run).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Lab", "KINDS"]

#: peak memory allowed for any kb process on any input (bytes)
MAX_RSS = 300 * 1024 * 1024
#: seconds a refused input may take
TIME_LIMIT = 60

PROJECT = {
    "pkg/__init__.py": "",
    "pkg/a.py": "from collections import Mapping, OrderedDict\n\n\ndef is_map(x):\n    return isinstance(x, Mapping)\n",
    "pkg/b.py": "from collections import Mapping\n\nKIND = Mapping\n",
    "pkg/c.py": "import collections\n\n\ndef kind(x):\n    return isinstance(x, collections.Mapping)\n",
    "tests/test_a.py": "from pkg.a import is_map\n\n\ndef test_a():\n    assert is_map({})\n",
    "tests/test_b.py": "from pkg.b import KIND\n\n\ndef test_b():\n    assert KIND is not None\n",
    "tests/test_c.py": "from pkg.c import kind\n\n\ndef test_c():\n    assert kind({})\n",
}

# measures the peak memory of the kb process it runs (ru_maxrss of waited children, KiB on Linux)
_LAUNCH = ("import resource, subprocess, sys\n"
           "done = subprocess.run(sys.argv[1:])\n"
           "sys.stderr.write('\\n@rss %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
           "sys.exit(done.returncode)\n")


@dataclass
class Result:
    code: int | None
    stdout: str
    stderr: str
    rss: int
    seconds: float


def _judge(result: Result, *, allowed: tuple[int, ...] = (0, 1)) -> str | None:
    if result.code is None:
        return f"did not finish in {TIME_LIMIT} s"
    if result.code not in allowed:
        return f"exit status {result.code}: {result.stderr.strip()[-200:]!r}"
    # a real traceback's first line (a report may well contain the word "Traceback" and be quoted in an error)
    if "Traceback (most recent call last):" in result.stderr or "kb: internal error" in result.stderr:
        return "internal error: " + next((ln for ln in result.stderr.splitlines() if "internal error" in ln), "traceback")
    errors = [line for line in result.stderr.splitlines() if line.startswith("kb: error:")]
    if len(errors) > 1:
        return f"{len(errors)} error lines"
    if result.code == 1 and not errors and not result.stdout:
        return "exit 1 without saying why"
    if result.rss > MAX_RSS:
        return f"peak memory {result.rss // 2**20} MiB"
    return None


@dataclass
class Lab:
    """Where the trials run: a template project with its fix recorded once, a report, a run file, a KB."""

    root: Path
    seed: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.root.mkdir(parents=True, exist_ok=True)
        self.kb = self.root / "kb.sqlite"
        self.env = {**os.environ, "KB_DB": str(self.kb), "PYTHONDONTWRITEBYTECODE": "1"}
        self.template = self.root / "template"
        if not self.template.exists():
            for rel, text in PROJECT.items():
                path = self.template / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        self.original = self._snapshot(self.template)
        self.report = self.root / "report.xml"
        self.runfile = self.root / "kb-run.jsonl"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={self.report}",
                        f"--kb={self.runfile}"], cwd=self.template, capture_output=True, env=self.env)
        # the fix once, uninterrupted: its bytes and its timing set the kill windows
        fixed = self._copy("reference")
        started = time.monotonic()
        done = self.kb_run("fix", str(self.report), "--root", str(fixed), "--apply", "--yes", "--test-command",
                           f"{sys.executable} -m pytest", cwd=fixed)
        self.fix_seconds = time.monotonic() - started
        assert done.code == 0 and "verified" in done.stdout, done.stdout + done.stderr
        self.fixed = self._snapshot(fixed)
        assert self.fixed != self.original
        self.fixed_project = fixed
        undo = self._copy_from(fixed, "reference-undo")
        started = time.monotonic()
        assert self.kb_run("undo", "--root", str(undo), cwd=undo).code == 0
        self.undo_seconds = time.monotonic() - started
        self.count = 0

    # -- helpers

    def _snapshot(self, root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.py"))
                if ".kb" not in p.parts and "__pycache__" not in p.parts}

    def _copy(self, name: str) -> Path:
        return self._copy_from(self.template, name)

    def _copy_from(self, source: Path, name: str) -> Path:
        target = self.root / "work" / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        return target

    def kb_run(self, *args: str, cwd: Path | None = None, stdin: bytes | None = None,
               kill_after: float | None = None, env: dict[str, str] | None = None) -> Result:
        """Run ``kb ARGS`` (killed with SIGKILL after ``kill_after`` seconds when given)."""
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, sys.executable, "-m", "kb", *args], cwd=cwd or self.root,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or self.env,
                                start_new_session=True)
        if kill_after is not None:
            time.sleep(kill_after)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            out, err = proc.communicate(stdin, timeout=TIME_LIMIT)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            code = None
        text = err.decode("utf-8", "replace")
        rss = 0
        if "\n@rss " in text:
            text, _, tail = text.rpartition("\n@rss ")
            rss = int(tail.split()[0]) * 1024
        return Result(code, out.decode("utf-8", "replace"), text, rss, time.monotonic() - started)

    def _after_kill(self, project: Path) -> str | None:
        """The next kb command recovers; then every file is original or fixed, no temp file, states agree."""
        done = self.kb_run("history", "--root", str(project), cwd=project)
        if (why := _judge(done)) is not None:
            return f"kb history after the kill: {why}"
        now = self._snapshot(project)
        if now != self.original and now != self.fixed:
            bad = [rel for rel in now if now[rel] not in (self.original.get(rel), self.fixed.get(rel))]
            return f"files neither original nor fixed: {bad[:3]}"
        strays = [p.relative_to(project).as_posix() for p in project.rglob("*.tmp")]
        if strays:
            return f"temp files left: {strays[:3]}"
        states = [json.loads(p.read_text())["state"] for p in (project / ".kb" / "journal").glob("*.json")] \
            if (project / ".kb" / "journal").is_dir() else []
        if any(s in ("applying", "applied", "undoing") for s in states):
            return f"journal still says {states}"
        if now == self.fixed and not any(s in ("verified", "plausible") for s in states):
            return f"files fixed but the journal says {states}"
        if now == self.original and any(s in ("verified", "plausible") for s in states):
            return f"files original but the journal says {states}"
        return None

    def _copy_kb(self, target: Path) -> None:
        """A consistent copy of the lab's KB, through SQLite's backup: other trials SIGKILL kb while it writes
        that KB, and a kill during a checkpoint leaves a main file that only its WAL makes whole, so copying
        the file alone can hand the trial a damaged database that no kill of its own made."""
        source, copy = sqlite3.connect(self.kb), sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()

    # -- trials

    def kill_fix(self) -> str | None:
        project = self._copy(f"kill-fix-{self.count}")
        delay = self.rng.uniform(0.0, self.fix_seconds * 1.1)
        self.kb_run("fix", str(self.report), "--root", str(project), "--apply", "--yes", "--test-command",
                    f"{sys.executable} -m pytest", cwd=project, kill_after=delay)
        return self._after_kill(project)

    def kill_undo(self) -> str | None:
        project = self._copy_from(self.fixed_project, f"kill-undo-{self.count}")
        delay = self.rng.uniform(0.0, self.undo_seconds * 1.1)
        self.kb_run("undo", "--root", str(project), cwd=project, kill_after=delay)
        return self._after_kill(project)

    def kill_diagnose(self) -> str | None:
        kb = self.root / "work" / f"kill-diagnose-{self.count}.sqlite"
        kb.parent.mkdir(parents=True, exist_ok=True)
        self._copy_kb(kb)
        env = {**self.env, "KB_DB": str(kb)}
        self.kb_run("diagnose", str(self.report), env=env, kill_after=self.rng.uniform(0.05, 1.0))
        done = self.kb_run("db", "check", env=env)
        if done.code != 0:
            return f"kb db check after the kill: {done.stderr.strip()[-200:]!r}"
        kb.unlink()
        return None

    def _input(self, name: str, data: bytes, *, as_stdin: bool = False) -> str | None:
        if as_stdin:
            return _judge(self.kb_run("diagnose", "-", "--no-record", stdin=data))
        path = self.root / "work" / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        why = _judge(self.kb_run("diagnose", str(path), "--no-record"))
        path.unlink()
        return why

    def runfile_mutant(self) -> str | None:
        lines = self.runfile.read_bytes().splitlines()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append(line.decode("utf-8", "replace"))
        record = self.rng.randrange(len(records))
        records[record] = _mutate(records[record], self.rng)
        if self.rng.random() < 0.2:
            self.rng.shuffle(records)
        text = b"\n".join(json.dumps(r).encode() if not isinstance(r, str) else r.encode() for r in records)
        if self.rng.random() < 0.2:
            text = text[: self.rng.randrange(len(text))]
        return self._input("kb-run.jsonl", text)

    def junit_mutant(self) -> str | None:
        data = bytearray(self.report.read_bytes())
        for _ in range(self.rng.randint(1, 8)):
            at = self.rng.randrange(len(data))
            choice = self.rng.random()
            if choice < 0.4:
                data[at] = self.rng.randrange(256)
            elif choice < 0.7:
                del data[at: at + self.rng.randint(1, 40)]
            else:
                data[at:at] = self.rng.choice([b"<", b"&", b"]]>", b"\x00", b"\xff\xfe", b"<!ENTITY x 'y'>", b"\x1b]0;t\x07"])
        return self._input("report.xml", bytes(data), as_stdin=self.rng.random() < 0.2)

    def bomb(self) -> str | None:
        kinds: list[tuple[str, Callable[[], bytes], bool]] = [
            ("deep.xml", lambda: b"<a>" * 200_000 + b"</a>" * 200_000, False),
            ("entities.xml", lambda: (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                                      b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                                      b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><testsuite>&c;</testsuite>'), False),
            ("line.txt", lambda: b"E   " + b"x" * (80 * 2**20), False),
            ("stdin-line", lambda: b"=" * (70 * 2**20), True),
            ("utf16.xml", lambda: self.report.read_text().encode("utf-16"), False),
            ("latin1.txt", lambda: "\u00e9\u00e8 FAILED t.py::x - \u00ff".encode("latin-1") * 1000, False),
            ("nul.jsonl", lambda: b"\x00" * 1_000_000, False),
            ("empty.xml", lambda: b"", False),
        ]
        name, make, stdin = kinds[self.count % len(kinds)]
        return self._input(name, make(), as_stdin=stdin)

    def sparse(self) -> str | None:
        path = self.root / "work" / "inputs" / "sparse.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.truncate(2**30)
        why = _judge(self.kb_run("diagnose", str(path), "--no-record"))
        path.unlink()
        return why

    def hostile_pack(self) -> str | None:
        packs = [
            ("prior: .nan", _pack("prior: .nan")),
            ("100,000-digit integer", _pack("prior: " + "9" * 100_000)),
            ("nested 100,000 deep", "pack: p\nversion: '1'\nx: " + "[" * 100_000 + "]" * 100_000 + "\n"),
            ("NUL byte", _pack("prior: 0.5").replace("title: t", "title: t\x00")),
            ("lookaround regex", _pack("prior: 0.5", regex="boom (?P<module>[a-z]+) (?P<name>[A-Za-z]+)(?=(a+)+$)")),
            ("polynomial regex", _pack("prior: 0.5", regex="boom (?P<module>.*.*.*.*) (?P<name>.*.*.*.*.*)!")),
            ("injection in params", _pack("prior: 0.5", new_module="collections.abc import Mapping; "
                                                                    "__import__('os').system('touch PWNED')  #")),
        ]
        label, text = packs[self.count % len(packs)]
        folder = self.root / "work" / f"pack-{self.count}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "hostile.yaml"
        path.write_text(text)
        env = {**self.env, "KB_DB": str(folder / "kb.sqlite")}
        if label == "polynomial regex":  # linear on RE2 by construction: accepted, and a long message is quick
            for args in (("rules", "import", str(path)),):
                if (why := _judge(self.kb_run(*args, cwd=folder, env=env))) is not None:
                    return f"{label}: kb rules import: {why}"
            report = folder / "long.xml"
            report.write_text('<testsuite tests="1" failures="1"><testcase classname="t" name="x"><failure message="'
                              + "ValueError: boom " + "a" * 50_000 + '">x</failure></testcase></testsuite>')
            done = self.kb_run("diagnose", str(report), "--no-record", cwd=folder, env=env)
            why = _judge(done) or (None if done.code == 0 else f"exit {done.code}")
            return f"{label}: kb diagnose of a 50,000-character message: {why}" if why else None
        for args in (("rules", "lint", str(path)), ("rules", "import", str(path))):
            done = self.kb_run(*args, cwd=folder, env=env)
            why = _judge(done)
            if why is None and done.code == 0:
                why = "accepted"
            if why is not None:
                return f"{label}: kb {' '.join(args[:2])}: {why}"
        if (folder / "PWNED").exists():
            return f"{label}: code ran"
        return None

    def damaged_kb(self) -> str | None:
        kb = self.root / "work" / f"damaged-{self.count}.sqlite"
        self._copy_kb(kb)
        how = self.count % 3
        if how == 0:
            with open(kb, "r+b") as handle:
                handle.seek(self.rng.randrange(4096, max(8192, kb.stat().st_size - 4096)))
                handle.write(os.urandom(4096))
        elif how == 1:
            kb.write_bytes(kb.read_bytes()[: self.rng.randrange(10, kb.stat().st_size)])
        else:
            subprocess.run(["sqlite3", str(kb), "DROP TABLE verdicts"], capture_output=True)
        env = {**self.env, "KB_DB": str(kb)}
        for args in (("diagnose", str(self.report)), ("db", "check")):
            why = _judge(self.kb_run(*args, env=env))
            if why is not None:
                return f"damaged KB ({['pages', 'truncated', 'dropped table'][how]}): kb {args[0]}: {why}"
        kb.unlink()
        return None


def _pack(prior: str, regex: str = "boom (?P<module>[a-z]+) (?P<name>[A-Za-z]+)",
          new_module: str = "collections.abc") -> str:
    return f"""pack: hostile
version: "1"
rules:
  - id: hostile-rule
    title: t
    category: removed-api
    explanation: e
    source: https://example.org
    {prior}
    match:
      exception: [ValueError]
      regex: '{regex}'
    symptom: missing_name
    remedies:
      - kind: code-edit
        template: replace-import
        risk: low
        description: d
        params: {{module: collections, name: Mapping, new_module: "{new_module}"}}
    examples:
      match: ["ValueError: boom collections Mapping"]
      no_match: ["ValueError: other"]
"""


def _mutate(record: object, rng: random.Random) -> object:
    """One structure-aware change to a run-file record."""
    if isinstance(record, dict) and record:
        key = rng.choice(sorted(record))
        choice = rng.random()
        if choice < 0.25:
            del record[key]
        elif choice < 0.5:
            record[key] = rng.choice([None, 10**40, float("nan"), [], {}, "", [[[[[]]]]], "\x00", True])
        elif choice < 0.75:
            record[key] = _mutate(record[key], rng)
        else:
            record[rng.choice(["type", "nodeid", "when", "outcome", "frames", "chain", "x"])] = rng.choice(
                [None, 1, "?", {"a": 1}, ["x"]])
        return record
    if isinstance(record, list) and record:
        record[rng.randrange(len(record))] = _mutate(record[rng.randrange(len(record))], rng)
        return record
    return rng.choice([None, 0, -1, 10**30, "", "x" * 1000, {}, [], {"type": None}])


#: trial kind → (method name, how many in the full campaign)
KINDS: dict[str, tuple[str, int]] = {
    "SIGKILL during kb fix --apply": ("kill_fix", 220),
    "SIGKILL during kb undo": ("kill_undo", 60),
    "SIGKILL during recording diagnose": ("kill_diagnose", 60),
    "run-file mutants": ("runfile_mutant", 700),
    "JUnit mutants (file and stdin)": ("junit_mutant", 600),
    "stream and size bombs": ("bomb", 40),
    "sparse 1 GiB file": ("sparse", 5),
    "hostile rule packs": ("hostile_pack", 280),
    "damaged knowledge bases": ("damaged_kb", 60),
}


def run_kind(lab: Lab, method: str, trials: int) -> list[str]:
    failures = []
    for _ in range(trials):
        lab.count += 1
        why = getattr(lab, method)()
        if why is not None:
            failures.append(why)
    return failures
