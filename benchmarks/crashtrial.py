"""A crash-safety trial: apply a multi-file fix in a child process, SIGKILL it at a random moment,
recover, and check that no file is corrupted or half-written (used by the test suite and by
benchmarks/crash_trials.py)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from kb.journal import Journal

__all__ = ["make_project", "trial"]

FILES = 12
SIZE = 200_000

_CHILD = """
import sys
from pathlib import Path
from kb.journal import Journal
root = Path(sys.argv[1])
changes = {p.name: (p.read_bytes(), p.read_bytes().replace(b"old", b"new")) for p in sorted(root.glob("*.py"))}
journal = Journal(root)
entry = journal.begin(cause="c", rule="r", title="crash trial", remedy={}, diff="", changes=changes)
journal.write(entry, changes)
print("done", flush=True)
"""


def make_project(root: Path, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    originals = {}
    for i in range(FILES):
        newline = rng.choice([b"\n", b"\r\n"])
        body = newline.join(b"x_%d = 'old value %d'" % (i, n) for n in range(SIZE // 24))
        originals[f"m{i}.py"] = body + (newline if rng.random() < 0.5 else b"")
        (root / f"m{i}.py").write_bytes(originals[f"m{i}.py"])
    return originals


def trial(root: Path, seed: int, window: tuple[float, float] = (0.02, 0.12)) -> str:
    """Run one trial; returns "completed", "rolled back" or "untouched". Raises AssertionError on damage."""
    originals = make_project(root, seed)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(root)], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    # the window covers interpreter start-up and the apply itself (~0.05 s of backups and writes here)
    time.sleep(random.Random(seed).uniform(*window))
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    journal = Journal(root)
    journal.recover()
    entries = journal.entries()
    new = {name: data.replace(b"old", b"new") for name, data in originals.items()}
    current = {name: (root / name).read_bytes() for name in originals}
    for name, data in current.items():
        assert data in (originals[name], new[name]), f"{name} is corrupted or half-written"
    leftovers = [p.name for p in root.glob(".*.tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    if not entries:
        assert current == originals
        return "untouched"
    [entry] = entries
    if entry.state == "applied":
        assert current == new
        return "completed"
    assert entry.state == "rolled back" and current == originals, entry.state
    return "rolled back"
