"""Owner facts (DESIGN §10): who owns the module a failure names, in the environment the tests ran in.

A symptom that names a module or callable (cannot import name, module/object has no attribute,
unexpected keyword, missing or extra arguments, no module named) is traced to its owner: the
standard library, an installed distribution (with its version and whether the project declares
it), a distribution that is not installed (``absent``), the project itself, or unknown.

Which interpreter is asked, in this order: ``--python`` (``kb fix``: the test command's Python);
the interpreter a kb run file recorded; the interpreter whose ``site-packages`` the tracebacks
name (a venv's ``lib/python3.X/site-packages/...`` → its ``bin/python``, which is kb's own when the
tests ran where kb is installed). kb never assumes its own environment is the tests': a report
that does not say where it ran is judged without an interpreter — by the file paths in its
messages, the KB's import-name map, the versions the report itself states and the standard-library
module list of kb's Python (the same for every 3.x but the removals, which are listed here). An
interpreter is asked once (a subprocess), and the answer is cached beside the KB by interpreter and
the modification times of its site-packages folders, so a ``pip install`` invalidates it.

What counts as the project: modules whose files pytest printed relative to its rootdir (the
tracebacks' own frames), the folders of the test ids, and the packages and modules at the top of
the project root (and ``src/``). A missing name in the project's own code is a bug in the project,
never an API change: those symptoms get an owner of kind ``project`` and no generic cause.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from operator import attrgetter
from pathlib import Path

from .declared import Declared, declared, normalise
from .engine import Owner, Symptom
from .engine.generic import CALL_KINDS
from .facts import Failure
from .models import Run

__all__ = ["EnvFacts", "OwnerResolver", "probe", "interpreter_for", "project_tops", "REMOVED_STDLIB"]

#: modules the standard library once had and a later Python removed (What's New 3.10–3.13; PEP 594,
#: PEP 632): ``sys.stdlib_module_names`` of today's Python no longer lists them
REMOVED_STDLIB = frozenset({
    "asynchat", "asyncore", "distutils", "imp", "smtpd",  # 3.12
    "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "mailcap", "msilib", "nis", "nntplib",
    "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib", "lib2to3",  # 3.13
    "binhex",  # 3.11
    "formatter", "parser", "symbol", "macpath", "_dummy_thread", "dummy_threading",  # 3.9/3.10
})
#: import aliases so common that a call ``np.histogram(...)`` names its module even without the source
_ALIASES = {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot", "mpl": "matplotlib", "sp": "scipy",
            "sa": "sqlalchemy", "nx": "networkx", "tf": "tensorflow", "sns": "seaborn", "xr": "xarray",
            "da": "dask.array", "dd": "dask.dataframe", "pa": "pyarrow", "pq": "pyarrow.parquet"}
#: a builtin type's missing attribute is almost always the project's mistake (None, a str ...), not an API change
_BUILTIN_OWNERS = frozenset({"builtins", ""})
_SITE = re.compile(r"[/\\](?:site|dist)-packages[/\\]([^/\\]+)")
_SITE_PREFIX = re.compile(r"^(.*?)[/\\]lib[/\\]python(\d+\.\d+)[/\\](?:site|dist)-packages[/\\]")
_STDLIB_PATH = re.compile(r"[/\\]lib[/\\]python3\.\d+[/\\]([A-Za-z_]\w*)(?:\.py|[/\\])")
_MESSAGE_PATH = re.compile(r"\(([^()\n]{1,500}?\.(?:py|pyc|pyd|so))\)\s*$")
_OBJECT_REPR = r"<(?P<module>[A-Za-z_][\w.]*)\.{cls} object at 0x"
_PROBE_TIMEOUT = 60
_MAX_SOURCE = 512 * 1024

_PROBE = r"""
import importlib.metadata as m, json, platform, sys, sysconfig
dists, packages = {}, {}
for d in m.distributions():
    name = d.metadata["Name"]
    if not name or name in dists:
        continue
    dists[name] = d.version
    tops = set()
    text = d.read_text("top_level.txt")
    if text:
        tops.update(t.strip() for t in text.split() if t.strip())
    else:
        for f in d.files or ():
            parts = f.parts
            if len(parts) > 1 and not parts[0].endswith((".dist-info", ".egg-info", ".data")) \
                    and parts[0] not in ("..", "__pycache__", "bin"):
                tops.add(parts[0])
            elif len(parts) == 1 and parts[0].endswith(".py"):
                tops.add(parts[0][:-3])
    for top in tops:
        packages.setdefault(top, []).append(name)
paths = sysconfig.get_paths()
site = {paths.get("purelib", ""), paths.get("platlib", "")}
site.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
print(json.dumps({"executable": sys.executable, "python": platform.python_version(),
                  "stdlib": sorted(getattr(sys, "stdlib_module_names", ()) or sys.builtin_module_names),
                  "stdlib_dir": paths.get("stdlib", ""), "site": sorted(p for p in site if p),
                  "dists": dists, "packages": packages}))
"""


@dataclass(frozen=True)
class EnvFacts:
    """What an interpreter says about itself: Python version, standard library, installed distributions."""

    python: str = ""
    stdlib: frozenset[str] = frozenset()
    stdlib_dir: str = ""
    site: tuple[str, ...] = ()
    #: normalised distribution name → (its own spelling, version)
    dists: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: top-level import name → distributions providing it
    packages: dict[str, list[str]] = field(default_factory=dict)
    how: str = ""  # which interpreter, and why that one

    @classmethod
    def from_probe(cls, doc: dict, how: str) -> EnvFacts:
        return cls(python=str(doc.get("python", "")), stdlib=frozenset(doc.get("stdlib") or ()),
                   stdlib_dir=str(doc.get("stdlib_dir", "")), site=tuple(doc.get("site") or ()),
                   dists={normalise(k): (k, str(v)) for k, v in (doc.get("dists") or {}).items()},
                   packages={str(k): list(v) for k, v in (doc.get("packages") or {}).items()}, how=how)


def _stamp(python: str, site: Iterable[str]) -> list[float]:
    stamp = []
    for path in [python, *site]:
        try:
            stamp.append(os.stat(path).st_mtime)
        except OSError:
            stamp.append(-1.0)
    return stamp


def probe(python: str, cache_dir: Path | None = None) -> dict | None:
    """Ask ``python`` about itself (one subprocess), or take the cached answer while its site-packages
    folders are unchanged. None when it cannot be run."""
    python = os.path.abspath(python)  # not realpath: a venv's python is a symlink that must stay the venv's
    real = os.path.realpath(python)
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"env-{hashlib.sha256(python.encode()).hexdigest()[:24]}.json"
        try:
            cached = json.loads(cache.read_text("utf-8"))
            if cached.get("stamp") == _stamp(real, cached["facts"].get("site", ())):
                return dict(cached["facts"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    try:
        done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=_PROBE_TIMEOUT,
                              cwd=tempfile.gettempdir())  # not the project: its modules must not shadow anything
        facts = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not isinstance(facts, dict):
        return None
    if cache is not None:
        from .safeio import write_text_atomic

        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(cache, json.dumps({"stamp": _stamp(real, facts.get("site", ())), "facts": facts}))
        except OSError:
            pass  # a cache that cannot be written costs one more probe, nothing else
    return facts


def _paths(failures: Iterable[Failure]) -> Iterator[str]:
    for failure in failures:
        for frame in failure.frames:
            yield frame.file
        found = _MESSAGE_PATH.search(failure.message.splitlines()[0] if failure.message else "")
        if found:
            yield found.group(1)


def interpreter_for(failures: Sequence[Failure], run: Run, explicit: str | None = None) -> tuple[str | None, str]:
    """(the interpreter the tests ran with, how kb knows), or (None, why not)."""
    if explicit:
        return explicit, f"the interpreter given ({explicit})"
    if run.interpreter and os.path.exists(run.interpreter):
        return run.interpreter, f"the interpreter the run file recorded ({run.interpreter})"
    for path in _paths(failures[:200]):
        found = _SITE_PREFIX.match(path)
        if not found:
            continue
        prefix, version = found.group(1), found.group(2)
        for name in (f"python{version}", "python3", "python"):
            candidate = os.path.join(prefix, "bin", name)
            if os.path.exists(candidate):
                return candidate, f"the interpreter whose site-packages the tracebacks name ({candidate})"
        return None, f"the tracebacks name an environment that is not on this machine ({prefix})"
    return None, "the report does not say which interpreter ran the tests (give --python)"


def _relative_top(path: str) -> str | None:
    """The project's top-level module a relative traceback path belongs to (``src/pkg/x.py`` → ``pkg``)."""
    if not path or path.startswith(("/", "\\", "<")) or path[1:3] == ":\\" or _SITE.search("/" + path) \
            or _STDLIB_PATH.search("/" + path):
        return None
    parts = [p for p in re.split(r"[/\\]", path) if p and p != "."]
    if parts and parts[0] in ("src", "lib", "python") and len(parts) > 2:
        parts = parts[1:]
    if not parts or parts[0] == "..":
        return None
    top = parts[0]
    return top[:-3] if top.endswith(".py") else top


_TEST, _FRAMES, _FILE = attrgetter("test"), attrgetter("frames"), attrgetter("file")


def project_tops(failures: Iterable[Failure], root: Path | None) -> set[str]:
    """Top-level module names that are the project's own code."""
    tops: set[str] = set()
    # distinct paths first (a large run repeats a few files many times), gathered without a Python-level
    # loop per failure: half the time on a 20,000-failure report (benchmarks/bench_diagnose.py)
    failures = list(failures)
    paths = {test.partition("::")[0] for test in map(_TEST, failures)}
    paths.update(map(_FILE, chain.from_iterable(map(_FRAMES, failures))))
    for path in paths:
        top = _relative_top(path)
        if top and top.isidentifier():
            tops.add(top)
    if root is not None and root.is_dir():
        for folder in (root, root / "src"):
            try:
                entries = list(folder.iterdir()) if folder.is_dir() else []
            except OSError:
                entries = []
            for entry in entries:
                if entry.is_dir() and (entry / "__init__.py").is_file() and entry.name.isidentifier():
                    tops.add(entry.name)
                elif entry.suffix == ".py" and entry.stem.isidentifier() and entry.stem not in ("setup", "conftest"):
                    tops.add(entry.stem)
    return tops


def _path_owner(path: str, env: EnvFacts) -> tuple[str, str] | None:
    """("site", top) / ("stdlib", module) / ("project", "") for a file path a message or frame names."""
    found = _SITE.search(path)
    if found:
        top = found.group(1)
        return "site", top[:-3] if top.endswith(".py") else top.split(".", 1)[0]
    if env.stdlib_dir and path.startswith(env.stdlib_dir.rstrip("/\\") + os.sep):
        rest = path[len(env.stdlib_dir.rstrip("/\\")) + 1:]
        return "stdlib", re.split(r"[/\\.]", rest, maxsplit=1)[0]
    found = _STDLIB_PATH.search(path)
    if found:
        return "stdlib", found.group(1)
    if path.startswith(("/", "\\")) or path[1:3] == ":\\":
        return "project", ""
    return None


class OwnerResolver:
    """Resolves symptoms' owners for one diagnosed run (the engine calls it with the symptoms no
    row explains and those that a row does, for the evidence)."""

    def __init__(self, failures: Sequence[Failure], run: Run, *, python: str | None = None,
                 root: Path | None = None, import_map: Callable[[list[str]], dict[str, str]] | None = None,
                 cache_dir: Path | None = None, local: bool = True) -> None:
        """``local=False``: the report comes from another machine (``kb batch`` over an archive), so nothing on
        this one is asked — no interpreter the report names, no project folder found from it — and the owner
        facts come from what the report says (plus ``python`` and ``root`` when given)."""
        self.failures = {f.id: f for f in failures}
        self.run = run
        self.python = python
        self.local = local
        self.root = _project_root(root, run, failures) if local else root
        self._import_map = import_map or (lambda names: {})
        self._mapped: dict[str, dict[str, str]] = {}
        self._owners: dict[tuple[str, str | None, bool], Owner] = {}
        self.cache_dir = cache_dir
        self._env: EnvFacts | None = None
        self._tops: set[str] | None = None
        self._declared: Declared | None = None

    # -- lazily, once per run

    @property
    def env(self) -> EnvFacts:
        if self._env is None:
            if self.local or self.python:
                python, how = interpreter_for(list(self.failures.values()), self.run, self.python)
            else:
                python, how = None, "an archived report: kb asks no interpreter on this machine about it"
            python = _locate(python, self.root) if python else None
            facts = probe(python, self.cache_dir) if python else None
            if facts is None:
                own = frozenset(getattr(sys, "stdlib_module_names", ()))
                self._env = EnvFacts(python=self.run.environment.get("python", ""), stdlib=own,
                                     how=f"no interpreter could be asked ({how})")
            else:
                self._env = EnvFacts.from_probe(facts, how)
        return self._env

    @property
    def tops(self) -> set[str]:
        if self._tops is None:
            self._tops = project_tops(self.failures.values(), self.root)
        return self._tops

    @property
    def declared(self) -> Declared:
        if self._declared is None:
            self._declared = declared(self.root)
        return self._declared

    def __call__(self, symptoms: Sequence[Symptom]) -> list[Owner | None]:
        return [self.resolve(s) for s in symptoms]

    # -- one symptom

    def resolve(self, symptom: Symptom) -> Owner | None:
        first = [self.failures[i] for i in symptom.failures[:5] if i in self.failures]
        if symptom.kind in CALL_KINDS:
            return self._call_owner(symptom, first)
        module = symptom.get("module")
        if symptom.kind == "missing_attribute" and module in _BUILTIN_OWNERS:
            cls = symptom.get("name").split(".", 1)[0]
            module = self._class_module(cls, first) or ""
            if not module:
                return None
        if not module:
            return None
        hint = self._message_path(symptom, first) if symptom.kind == "missing_name" else None
        return self.module_owner(module, hint, missing=symptom.kind == "missing_module")

    def import_map(self, names: list[str]) -> dict[str, str]:
        """The KB's import-name → distribution rows for ``names`` (each name asked once per run)."""
        key = ",".join(names)
        if key not in self._mapped:
            self._mapped[key] = self._import_map(names)
        return self._mapped[key]

    def module_owner(self, module: str, path: str | None = None, *, missing: bool = False) -> Owner:
        """The owner of ``module``; ``path`` is a file the message says it lives in; ``missing``: the
        module itself could not be imported (No module named). Memoised per run."""
        key = (module, path, missing)
        if key not in self._owners:
            self._owners[key] = self._module_owner(module, path, missing=missing)
        return self._owners[key]

    def _module_owner(self, module: str, path: str | None = None, *, missing: bool = False) -> Owner:
        env = self.env
        top = module.split(".", 1)[0]
        if path:
            where = _path_owner(path, env)
            if where and where[0] == "site":
                return self._installed(module, where[1], f"{path} is in site-packages", seen=True)
            if where and where[0] == "stdlib":
                return Owner(module, "stdlib", python=env.python, how=f"{path} is in the standard library")
            if where and where[0] == "project":
                return Owner(module, "project", how=f"{path} is outside site-packages and the standard library")
        if top in self.tops:
            return Owner(module, "project", how="the project's own code (its files are in the tracebacks or its root)")
        if top in env.stdlib or top in REMOVED_STDLIB:
            gone = top in REMOVED_STDLIB and top not in env.stdlib
            # a module a later Python removed is known; a missing name of a present module may as well be
            # one a newer Python added (itertools.batched on 3.11): no row says which, so it is a guess
            return Owner(module, "stdlib", python=env.python, guessed=not gone,
                         how=f"{top} is a standard-library module"
                             f"{' removed from it in a later Python' if gone else ''}; {env.how}")
        if top in env.packages:
            return self._installed(module, top, env.how, seen=True)
        if missing and "." not in module:
            # "No module named 'x'": x itself is not importable — no installed distribution provides it
            mapped = self.import_map([top]).get(top)
            dist = mapped or self.declared.get(top)
            how = ("the KB's import-name map" if mapped else "the project declares it" if dist
                   else "no import-name row names it")
            return Owner(module, "absent", dist or top, "", bool(dist) and dist in self.declared, env.python,
                         f"{top} is not installed; {how}", guessed=not dist)
        # the top-level module imported (the name or submodule under it is what is missing)
        return self._installed(module, top, env.how, seen=False)

    def _installed(self, module: str, top: str, how: str, *, seen: bool) -> Owner:
        """The installed distribution providing ``top``. ``seen``: its files were seen in site-packages
        (a path in the message, or the interpreter's own metadata) — else only a name map or the
        project's declarations can say which distribution it is, and without them the owner is unknown."""
        env = self.env
        names = env.packages.get(top) or []
        mapped = None if names else self.import_map([top]).get(top)
        declared_as = self.declared.get(top)
        if not (names or mapped or declared_as or seen):
            return Owner(module, "unknown", python=env.python,
                         how=f"{top} imported, but nothing says which distribution provides it; {env.how}")
        dist = names[0] if names else mapped or declared_as or top
        name, version = env.dists.get(normalise(dist), (dist, self.run.environment.get(dist.lower(), "")))
        if top in self.tops:
            return Owner(module, "project", how=f"{top} is the project's own package (installed into site-packages)")
        if normalise(name) in self.declared.own:
            return Owner(module, "project", how=f"{name} is the project's own distribution")
        source = ("" if names else " (the KB's import-name map)" if mapped else " (the project declares it)"
                  if declared_as else " (the distribution is named after its folder)")
        wanted = self.declared.wanted.get(normalise(name), "") if name in self.declared else ""
        return Owner(module, "distribution", name, version, name in self.declared, env.python, how + source,
                     wanted=wanted)

    def _message_path(self, symptom: Symptom, failures: Sequence[Failure]) -> str | None:
        needle = f"'{symptom.get('name')}' from '{symptom.get('module')}'"
        for failure in failures:
            for message in [failure.message, *(m for _t, m in failure.chain)]:
                line = next((ln for ln in message.splitlines() if needle in ln), "")
                found = _MESSAGE_PATH.search(line)
                if found:
                    return found.group(1)
        return None

    def _class_module(self, cls: str, failures: Sequence[Failure]) -> str | None:
        """The module of an object's class, from a repr the traceback printed (``<pkg.mod.Cls object at 0x..>``)."""
        if not cls.isidentifier():
            return None
        pattern = re.compile(_OBJECT_REPR.format(cls=re.escape(cls)))
        for failure in failures:
            found = pattern.search(failure.text[-20_000:])
            if found:
                return found.group("module")
        return None

    # -- calls

    def _call_owner(self, symptom: Symptom, failures: Sequence[Failure]) -> Owner | None:
        """A call with the wrong arguments. The callee's module when the failing source line names it
        (``asyncio.Lock(loop=loop)``, ``np.histogram(..)``); else, when the call was made inside a library
        or the standard library (it calls an overridden hook, or another API, with a changed signature),
        that library."""
        for failure in failures:
            module, sure = self._callee_module(symptom, failure)
            if module:
                owner = self.module_owner(module)
                if owner.kind != "absent":
                    return owner if sure else replace(owner, guessed=True)
            if failure.frames:
                inner = failure.frames[-1].file
                where = _path_owner(inner, self.env)
                if where and where[0] in ("site", "stdlib"):
                    owner = self.module_owner(where[1], inner)
                    # a method the library calls is a hook it defines (HelpFormatter._format_usage); a plain
                    # function it calls is the project's callback, whose signature is the project's own
                    return owner if "." in symptom.get("callable") else replace(owner, guessed=True)
        return None

    def _callee_module(self, symptom: Symptom, failure: Failure) -> tuple[str | None, bool]:
        """(the module the failing call's callee comes from, whether the file's imports say so).

        ``asyncio.Lock(loop=loop)`` → asyncio; ``np.histogram(..)`` → numpy; ``load(..)`` after ``from yaml
        import load`` → yaml. A prefix the file does not import is a local variable (``profile.update(..)``):
        nothing. When the file cannot be read, a well-known alias, an installed top-level name, a standard-library
        module or a name of the import-name map is taken, as a guess."""
        tail = symptom.get("callable").rsplit(".", 1)[-1]
        line = _failing_line(failure.text)
        if not line or not tail.isidentifier():
            return None, False
        found = re.search(r"(?<![\w.])((?:[A-Za-z_]\w*\.)*)" + re.escape(tail) + r"\s*\(", line)
        if not found:
            return None, False
        prefix = found.group(1).rstrip(".")
        imports = self._imports(failure)
        if not prefix:
            return (imports or {}).get(tail, "").rpartition(".")[0] or None, True
        head = prefix.split(".", 1)[0]
        if head in ("self", "cls"):
            return None, False
        if imports is not None:
            base = imports.get(head)
            return (base + prefix[len(head):], True) if base else (None, False)
        if head in _ALIASES or head in self.env.packages or head in self.env.stdlib or self.import_map([head]):
            return _ALIASES.get(head, head) + prefix[len(head):], False
        return None, False

    def _imports(self, failure: Failure) -> dict[str, str] | None:
        """Names bound by the imports of the file the failing call is in (alias → module or module.name);
        None when that file cannot be read (it is not under the project root, or not there at all)."""
        frame = failure.frames[-1] if failure.frames else failure.location
        if frame is None or self.root is None:
            return None
        try:
            path = (self.root / frame.file).resolve()
            if not path.is_relative_to(self.root.resolve()) or path.stat().st_size > _MAX_SOURCE:
                return None
            tree = ast.parse(path.read_bytes())
        except (OSError, ValueError, SyntaxError):
            return None
        names: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    names[alias.asname or alias.name.split(".", 1)[0]] = alias.name if alias.asname else \
                        alias.name.split(".", 1)[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        return names


def _locate(python: str, root: Path | None) -> str:
    """A bare name (``python``, as ``kb run python -m pytest`` gives it) through PATH; a relative path
    from the current directory, else from the project root (where ``kb run --root`` runs the tests)."""
    if os.sep not in python and "/" not in python:
        return shutil.which(python) or python
    if not os.path.isabs(python) and not os.path.exists(python) and root is not None and (root / python).exists():
        return str(root / python)
    return python


def _failing_line(text: str) -> str:
    """The source line a traceback shows for the innermost frame: pytest's last ``>`` line, or the
    code line under Python's last ``File "...", line N`` entry."""
    window = text[-20_000:]
    marked = [ln[1:].strip() for ln in window.splitlines() if ln.startswith(">")]
    if marked:
        return marked[-1]
    lines = window.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].lstrip().startswith('File "') and i + 1 < len(lines):
            return lines[i + 1].strip()
    return ""


def _project_root(root: Path | None, run: Run, failures: Sequence[Failure]) -> Path | None:
    """The project whose declarations and top-level packages count as "the project": the root given,
    the run file's rootdir, else the current directory when the tracebacks' relative files are there
    (a report from another project must not be judged by this directory's declarations)."""
    if root is not None:
        return root
    if run.rootdir and os.path.isdir(run.rootdir):
        return Path(run.rootdir)
    here = Path.cwd()
    relative = sorted({f.file for failure in failures[:50] for f in failure.frames if _relative_top(f.file)})[:20]
    if relative and all((here / p).is_file() for p in relative):
        return here
    return None
