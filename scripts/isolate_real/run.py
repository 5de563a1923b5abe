"""`kb isolate` on real order-dependent tests of published packages, beside detect-test-pollution.

    /work/venv/bin/python scripts/isolate_real/run.py [CASE ...] [--work /work/isolate-real]
        [--no-dtp] [--no-fix] [--json results.json]

For each case of scripts/isolate_real/cases.yaml (all when none is named), in /work/isolate-real/<case>
(re-used when present):

1. prepare: `pip download --no-binary :all: --no-deps PKG==VER` (sha256 checked), unpack to src/,
   `python3.11 -m venv venv`, install the sdist (or src/ editable, `install: editable`), the case's
   requirements, pytest,
   detect-test-pollution and kb (`pip install -e` of this checkout);
2. the failing order (order.txt): for a victim, its known polluters first, then the rest of the
   selection in collection order, the victim last (when a cleaner in the rest makes that order pass,
   the polluters go right before the victim instead); for a brittle test, every test but its
   setters, then it, then its setters. The order is run once through plain pytest (ids as arguments,
   which pytest keeps in order) and must fail the test, else the case is reported and skipped;
3. `kb isolate VICTIM --order-file order.txt --json -- venv/bin/python -m pytest [ARGS] PATHS`
   (cwd src/, KB_DB a fresh scratch file), its JSON kept in kb.json;
4. `detect-test-pollution --failing-test VICTIM --testids-file order.txt` (cwd src/): its pytest
   sessions are counted by a 5-line plugin loaded through PYTEST_ADDOPTS that appends one line per
   session to a file (and, as a cross-check, from the steps its output prints: alone 1, group 1,
   one per "running step", the double check 1);
5. when kb's first root cause offers an isolation-fixture remedy: copy src/ to fixcopy/ and run
   `kb fix --last --apply --yes --max-risk medium --root fixcopy --test-command "venv/bin/python -m pytest"`
   with the same KB_DB; "verified" in its output is the verdict.

Prints a table (also written as markdown to results.md beside the JSON). Not part of kb's test suite;
heavy work runs one case at a time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import pairscan  # noqa: E402

COUNT_PLUGIN = '''\
import os
def pytest_sessionstart(session):
    with open(os.environ["DTP_COUNT_FILE"], "a") as f:
        f.write("session\\n")
'''


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def case_env(case: dict, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in (case.get("env") or {}).items():
        env[key] = str(value).replace("{case}", str(work))
        if key == "HOME":
            Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


def prepare(case: dict, work: Path) -> None:
    venv, src, dl = work / "venv", work / "src", work / "dl"
    marker = work / ".prepared"
    editable = case.get("install") == "editable"
    stamp = case["package"] + (" editable" if editable else "")
    if marker.exists() and marker.read_text().strip() == stamp:
        return
    work.mkdir(parents=True, exist_ok=True)
    name, version = case["package"].split("==")
    sdists = list(dl.glob("*.tar.gz")) if dl.exists() else []
    if not sdists:
        done = sh([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q",
                   case["package"], "-d", str(dl)])
        if done.returncode:
            raise RuntimeError(f"pip download failed: {done.stderr[-500:]}")
        sdists = list(dl.glob("*.tar.gz"))
    sdist = sdists[0]
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if case.get("sha256") and digest != case["sha256"]:
        raise RuntimeError(f"sha256 of {sdist.name} is {digest}, not {case['sha256']}")
    if src.exists():
        shutil.rmtree(src)
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "unpack", filter="data")
    (top,) = list((work / "unpack").iterdir())
    top.rename(src)
    (work / "unpack").rmdir()
    if not (venv / "bin" / "python").exists():
        done = sh(["python3.11", "-m", "venv", str(venv)])
        if done.returncode:
            raise RuntimeError(f"venv failed: {done.stderr[-500:]}")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    for args in (["-e", str(src)] if editable else [str(sdist)], ["pytest", "detect-test-pollution", *case.get("requires", [])],
                 ["-e", str(REPO)]):
        done = sh([*pip, *args])
        if done.returncode:
            raise RuntimeError(f"pip install {' '.join(args)} failed: {done.stderr[-800:]}")
    marker.write_text(stamp + "\n")


def failing_order(case: dict, work: Path, python: str, env: dict) -> tuple[list[str], str] | None:
    """An order the test fails in, and how it was built (None when none of the tries fails it)."""
    src, opts, victim = str(work / "src"), case.get("pytest_args", []), case["victim"]
    ids = pairscan.collect(python, src, case["tests"], opts, env)
    if victim not in ids:
        raise RuntimeError(f"{victim} not collected ({len(ids)} ids)")
    if case["kind"] == "victim":
        known = [t for t in ids if t in case["polluters"]]
        rest = [t for t in ids if t not in known and t != victim]
        tries = [(known + rest + [victim], "known polluters first, the rest in collection order, the victim last"),
                 (rest + known + [victim], "the rest in collection order, the known polluters, the victim last")]
    else:
        known = [t for t in ids if t in case["setters"]]
        rest = [t for t in ids if t not in known and t != victim]
        tries = [(rest + [victim] + known, "every test but the setters, the brittle test, then the setters")]
    for order, how in tries:
        if pairscan.victim_passed(python, src, order, victim, opts, env) is False:
            return order, how
    return None


def run_kb(case: dict, work: Path, python: str, env: dict) -> dict:
    db = work / "kb.sqlite"
    for leftover in work.glob("kb.sqlite*"):
        leftover.unlink()
    cmd = [str(work / "venv" / "bin" / "kb"), "isolate", case["victim"], "--order-file", str(work / "order.txt"),
           "--json", "--", python, "-m", "pytest", *case.get("pytest_args", []), *case["tests"]]
    started = time.perf_counter()
    done = sh(cmd, cwd=work / "src", env={**env, "KB_DB": str(db)})
    seconds = time.perf_counter() - started
    (work / "kb.stdout").write_text(done.stdout)
    (work / "kb.stderr").write_text(done.stderr)
    out = {"command": shlex.join(cmd), "exit": done.returncode, "seconds": round(seconds, 1)}
    try:
        out["json"] = json.loads(done.stdout)
    except json.JSONDecodeError:
        out["error"] = (done.stderr or done.stdout).strip()[-1500:]
    return out


def run_dtp(case: dict, work: Path, env: dict) -> dict:
    plugin_dir = work / "dtp-count"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / "_dtp_count.py").write_text(COUNT_PLUGIN)
    count_file = work / "dtp-count.txt"
    count_file.unlink(missing_ok=True)
    dtp_env = {**env, "DTP_COUNT_FILE": str(count_file),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")])),
               "PYTEST_ADDOPTS": " ".join(filter(None, [env.get("PYTEST_ADDOPTS"), "-p _dtp_count"]))}
    cmd = [str(work / "venv" / "bin" / "detect-test-pollution"), "--failing-test", case["victim"],
           "--testids-file", str(work / "order.txt")]
    started = time.perf_counter()
    done = sh(cmd, cwd=work / "src", env=dtp_env, timeout=3600)
    seconds = time.perf_counter() - started
    (work / "dtp.stdout").write_text(done.stdout + done.stderr)
    text = done.stdout
    found = re.search(r"the polluting test is: (.+)", text)
    steps = len(re.findall(r"^running step \d+:", text, re.M))
    from_output = (("ensuring test passes by itself" in text) + ("ensuring test fails with test group" in text)
                   + steps + ("double checking" in text))
    sessions = count_file.read_text().count("session") if count_file.exists() else 0
    last = [line for line in text.splitlines() if line.startswith("->")]
    return {"command": shlex.join(cmd), "exit": done.returncode, "seconds": round(seconds, 1),
            "polluter": found.group(1).strip() if found else None, "runs": sessions,
            "runs_from_output": from_output, "said": last[-1] if last else text.strip()[-200:]}


def run_fix(case: dict, work: Path, python: str, env: dict) -> dict:
    copy = work / "fixcopy"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(work / "src", copy, symlinks=True)
    cmd = [str(work / "venv" / "bin" / "kb"), "fix", "--last", "--apply", "--yes", "--max-risk", "medium",
           "--root", str(copy), "--test-command", f"{python} -m pytest"]
    done = sh(cmd, cwd=copy, env={**env, "KB_DB": str(work / "kb.sqlite")})
    (work / "fix.stdout").write_text(done.stdout + "\n--- stderr\n" + done.stderr)
    text = done.stdout + done.stderr
    out = {"command": shlex.join(cmd), "exit": done.returncode, "verified": bool(re.search(r"^\s+verified: ", text, re.M)),  # the outcome line, not "0 fix(es) verified"
           "said": text.strip()[-1500:]}
    # kb's proof re-runs the victim; check the rest too: the selection in collection order before and after
    # the fix, and the victim in the whole failing order (order.txt), in the copy
    opts = case.get("pytest_args", [])
    before = pairscan.failures(python, str(work / "src"), [*opts, *case["tests"]], env)
    after = pairscan.failures(python, str(copy), [*opts, *case["tests"]], env)
    order = [line for line in (work / "order.txt").read_text().splitlines() if line]
    out.update(suite_failures_before=sorted(before), suite_failures_after=sorted(after),
               new_failures=sorted(after - before),
               victim_passes_in_full_order=pairscan.victim_passed(python, str(copy), order, case["victim"], opts, env),
               victim_passes_alone=pairscan.victim_passed(python, str(copy), [case["victim"]], case["victim"], opts, env))
    return out


def judge(case: dict, found: list[str]) -> str:
    """Victim: "all" when the set found is the known set, "subset (k/n)" when only part of it; brittle: one
    setter is all a test needs, so any known one is "yes". A test named that is not known is WRONG."""
    known = set(case.get("polluters") or case.get("setters") or [])
    got = set(found)
    if not got:
        return "none found"
    if got - known:
        return "WRONG: " + ", ".join(sorted(got - known))
    if case["kind"] == "brittle":
        return f"yes ({len(got)} of {len(known)} known setters)"
    return "all" if got == known else f"subset ({len(got)}/{len(known)})"


def run_case(case: dict, args: argparse.Namespace) -> dict:
    work = args.work / case["name"]
    result: dict = {"case": case["name"], "kind": case["kind"], "package": case["package"]}
    prepare(case, work)
    python = str(work / "venv" / "bin" / "python")
    env = case_env(case, work)
    got = failing_order(case, work, python, env)
    if got is None:
        result["error"] = "no tried order fails the test"
        return result
    order, how = got
    (work / "order.txt").write_text("\n".join(order) + "\n")
    result.update(order=how, order_len=len(order),
                  position=order.index(case["victim"]) + 1)
    kb = run_kb(case, work, python, env)
    result["kb"] = kb
    doc = kb.get("json") or {}
    found = (doc.get("polluters") or []) if case["kind"] == "victim" else (doc.get("providers") or [])
    causes = doc.get("root_causes") or []
    remedies = (causes[0].get("remedies") or []) if causes else []
    result["kb_summary"] = {
        "verdict": doc.get("kind") or doc.get("verdict"), "found": found,
        "correct": judge(case, found) if doc else "kb error",
        # every pytest session kb started: the steps it lists (its "probes" total leaves out the reproducer
        # check, one more session, which by_step lists)
        "runs": sum((doc.get("by_step") or {}).values()) if doc else None, "probes": doc.get("probes"),
        "by_step": doc.get("by_step"), "cleaners": doc.get("cleaners"),
        "reproduced": doc.get("reproduced"), "remedy": remedies[0]["kind"] if remedies else None,
        "state": doc.get("state"), "seconds": kb["seconds"], "tests_before": doc.get("tests_before"),
        "title": causes[0].get("title") if causes else None,
    }
    if not args.no_dtp:
        dtp = run_dtp(case, work, env)
        dtp["correct"] = judge(case, [dtp["polluter"]]) if dtp["polluter"] else dtp["said"]
        result["dtp"] = dtp
    if not args.no_fix and any(r.get("kind") == "isolation-fixture" for r in remedies):
        result["fix"] = run_fix(case, work, python, env)
    (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def table(results: list[dict]) -> str:
    head = ["case", "kind", "n before", "kb verdict", "kb found", "kb correct?", "kb runs", "kb s", "dtp polluter",
            "dtp correct?", "dtp runs", "dtp s", "fix offered / verified"]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["case"], r["kind"], "", "—", "—", r["error"], "", "", "", "", "", "", ""])
            continue
        k, d, f = r["kb_summary"], r.get("dtp") or {}, r.get("fix")
        fix = "no" if k["remedy"] is None else (k["remedy"] if f is None else
                                                 f"{k['remedy']} / {'verified' if f['verified'] else 'NOT verified'}")
        if f is not None:
            fix += (f"; in the full failing order the victim {'passes' if f['victim_passes_in_full_order'] else 'FAILS'}"
                    f"; suite in collection order: {len(f['new_failures'])} new failure(s)"
                    + (f" ({', '.join(t.split('::')[-1] for t in f['new_failures'])})" if f["new_failures"] else ""))
        rows.append([r["case"], r["kind"], str(k["tests_before"]), str(k["verdict"]), str(len(k["found"])), k["correct"], str(k["runs"]),
                     str(k["seconds"]), (d.get("polluter") or "—").split("::")[-1], str(d.get("correct", "")),
                     str(d.get("runs", "")), str(d.get("seconds", "")), fix])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def kb_version() -> str:
    """The kb checkout the case venvs run (editable): its commit, and whether kb/ had uncommitted edits."""
    head = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = sh(["git", "-C", str(REPO), "status", "--porcelain", "--", "kb"]).stdout.strip()
    return head + (" + uncommitted edits in kb/" if dirty else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*")
    ap.add_argument("--work", type=Path, default=Path("/work/isolate-real"))
    ap.add_argument("--cases-file", type=Path, default=HERE / "cases.yaml")
    ap.add_argument("--no-dtp", action="store_true")
    ap.add_argument("--no-fix", action="store_true")
    ap.add_argument("--json", type=Path, help="write all results here (default WORK/results.json)")
    ap.add_argument("--from-json", type=Path, help="only print the table of results a run wrote")
    args = ap.parse_args()
    if args.from_json:
        doc = json.loads(args.from_json.read_text())
        for r in doc["cases"]:
            k = r.get("kb_summary")
            if k and k.get("by_step") is not None:
                k["probes"] = k.get("probes", k["runs"])
                k["runs"] = sum(k["by_step"].values())
        print(f"kb {doc['kb']}\n\n" + table(doc["cases"]))
        return 0
    cases = yaml.safe_load(args.cases_file.read_text())["cases"]
    if args.cases:
        cases = [c for c in cases if c["name"] in args.cases]
    results = []
    started = kb_version()
    for case in cases:
        print(f"== {case['name']}", file=sys.stderr, flush=True)
        try:
            results.append(run_case(case, args))
        except Exception as exc:  # one broken case must not hide the others
            results.append({"case": case["name"], "kind": case["kind"], "error": f"{type(exc).__name__}: {exc}"})
    ended = kb_version()
    version = started if started == ended else f"{started} at the start, {ended} at the end"
    out = args.json or args.work / "results.json"
    out.write_text(json.dumps({"kb": version, "cases": results}, indent=2) + "\n")
    text = f"kb {version}\n\n" + table(results)
    out.with_suffix(".md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
