"""Screenshot the datasette view of kb's fix outcomes in headless Chromium (issue 8; not in CI).

    python scripts/screenshot_datasette.py OUT.png [--chromium /usr/bin/chromium]

Builds a real history in a temporary KB — diagnoses of real corpus reports, and kb fix --apply
--yes on a small project with two layered removed APIs (real fixes, verified by real pytest runs) —
exports it (kb export datasette), serves it with datasette on 127.0.0.1, screenshots the
fix_outcomes table page with Chromium, and checks the PNG: a valid image of the requested size
whose page showed the outcomes (the HTML is fetched too and must list them).
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_fix_apply import LAYERED  # noqa: E402  (two layered removed APIs, as the suite uses)


def _kb(*args: str, env: dict[str, str], cwd: Path = ROOT) -> str:
    done = subprocess.run([sys.executable, "-m", "kb", *args], capture_output=True, text=True, env=env, cwd=cwd)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-shot-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "KB_DB": str(work / "kb.sqlite")}
        for case in ("pyjwt-1.5.3", "configargparse-1.2.3", "janus-0.4.0", "fs-2.4.16"):
            _kb("diagnose", str(ROOT / "tests/corpus/real" / case / "report.xml"), env=env)
        project = work / "proj"
        for rel, text in LAYERED.items():
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            (project / rel).write_text(text)
        report = work / "report.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
                       cwd=project, capture_output=True)
        print(_kb("fix", str(report), "--root", str(project), "--apply", "--yes", env=env).strip())
        _kb("export", "datasette", str(work / "kb-history.db"), env=env)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "datasette", "serve", str(work / "kb-history.db"),
                                   "--metadata", str(work / "kb-history.metadata.json"), "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/kb-history/fix_outcomes"
        try:
            for _ in range(150):
                try:
                    html = urllib.request.urlopen(url, timeout=5).read().decode()
                    break
                except OSError:
                    time.sleep(0.2)
            else:
                raise SystemExit("datasette did not start")
            assert "verified" in html and "What happened to each fix kb applied" in html, "outcomes not on the page"
            width, height = 1400, 900
            subprocess.run([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={work / 'chrome'}", "--hide-scrollbars",
                            f"--window-size={width},{height}", f"--screenshot={args.out.resolve()}", url],
                           capture_output=True, timeout=120, check=True)
        finally:
            server.terminate()
            server.wait(timeout=10)
    data = args.out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    got = struct.unpack(">II", data[16:24])
    assert got == (width, height), f"unexpected size {got}"
    print(f"{args.out}: PNG {got[0]}x{got[1]}, {len(data)} bytes, of {url}")


if __name__ == "__main__":
    main()
