"""Releases of a distribution: which exist (PyPI's JSON API) and their files, downloaded once into a
cache and unpacked safely, for mining.

A file is taken from, in order: the cache; ``find_links`` folders (local wheels or sdists named the
standard way, ``dist-1.0-py3-none-any.whl`` / ``dist-1.0.tar.gz``); the index (``KB_INDEX_URL``,
default ``https://pypi.org``). A pure-Python wheel is preferred, then a wheel of this platform,
then any wheel, then the sdist: mining reads sources, never builds or runs them. Archives are
unpacked with every member checked (no absolute paths, no ``..``, no links, bounded size).
Without network, one clear error (:class:`OfflineError`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import KbError
from ..pep440 import normalise, sort_versions

__all__ = ["Release", "OfflineError", "index_url", "versions", "fetch", "release_url", "default_cache"]

#: an unpacked release larger than this is refused (a zip bomb, or not a library)
MAX_UNPACKED = 512 * 1024 * 1024
TIMEOUT_S = 60


class OfflineError(KbError):
    """The package index cannot be reached."""


@dataclass(frozen=True)
class Release:
    dist: str
    version: str
    root: Path  # the unpacked tree: import packages are at its top (or under src/)
    url: str  # the release's page on the index (what mined rows cite)
    filename: str  # the file the sources were read from (a local wheel, or the index's)
    local: bool = False  # read from a --find-links folder, not the index


def index_url() -> str:
    return os.environ.get("KB_INDEX_URL", "https://pypi.org").rstrip("/")


def release_url(dist: str, version: str) -> str:
    """The release's page on the index: the source a mined row cites."""
    return f"{index_url()}/project/{normalise(dist)}/{version}/"


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kb" / "releases"


def _get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - https index only
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise KbError(f"{url}: no such project or release on the index") from None
        raise OfflineError(f"{url}: the package index answered {exc.code}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(f"{url}: cannot reach the package index ({reason})") from None


_PROJECTS: dict[str, dict] = {}


def _project(dist: str) -> dict:
    """The index's JSON document of a project (every release and its files), fetched once per process."""
    url = f"{index_url()}/pypi/{normalise(dist)}/json"
    if url not in _PROJECTS:
        _PROJECTS[url] = _get_json(url)
    return _PROJECTS[url]


def versions(dist: str, *, since: str | None = None, find_links: tuple[Path, ...] = ()) -> list[str]:
    """Final releases of ``dist``, oldest first, not yanked; ``since`` (an ISO date) keeps those
    uploaded on or after it. With ``find_links``, the versions found there (no network)."""
    if find_links:
        found = {v for folder in find_links for v, _p in _local_files(dist, folder)}
        if found:
            return sort_versions(sorted(found))
    doc = _project(dist)
    kept = []
    for version, files in (doc.get("releases") or {}).items():
        if not files or all(f.get("yanked") for f in files):
            continue
        uploaded = min((f.get("upload_time_iso_8601") or f.get("upload_time") or "") for f in files)
        if since and uploaded and uploaded[:10] < since:
            continue
        kept.append(version)
    return sort_versions(kept)


_ARCHIVE = re.compile(r"^(?P<name>.+?)-(?P<version>\d[^-]*?)(?:-[^-]+-[^-]+-[^-]+\.whl|\.tar\.gz|\.zip|\.tgz)$")


def _local_files(dist: str, folder: Path) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    if not folder.is_dir():
        return out
    for path in folder.iterdir():
        found = _ARCHIVE.match(path.name)
        if found and normalise(found.group("name")) == normalise(dist):
            out.append((found.group("version"), path))
    return out


def _preference(filename: str) -> int:
    """Lower is better: pure-Python wheel, this platform's wheel, any wheel, sdist."""
    if filename.endswith("-none-any.whl"):
        return 0
    if filename.endswith(".whl"):
        tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
        return 1 if tag in filename and ("manylinux" in filename or "linux" in filename) else 2
    if filename.endswith((".tar.gz", ".zip", ".tgz")):
        return 3
    return 9


def _download(url: str, target: Path, sha256: str | None) -> None:
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:  # noqa: S310
            digest = hashlib.sha256()
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise OfflineError(f"{url}: cannot download ({getattr(exc, 'reason', exc)})") from None
    if sha256 and digest.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise KbError(f"{url}: sha256 mismatch (the download is corrupt)")
    os.replace(tmp, target)


def _safe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return not name.startswith(("/", "\\")) and ".." not in parts and not re.match(r"^[A-Za-z]:", name)


def _unpack(archive: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    total = 0
    try:
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    total += info.file_size
                    if not _safe_name(info.filename) or total > MAX_UNPACKED:
                        raise KbError(f"{archive}: unsafe or oversized member {info.filename!r}")
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                members = []
                for member in tf.getmembers():
                    total += member.size
                    if not _safe_name(member.name) or total > MAX_UNPACKED:
                        raise KbError(f"{archive}: unsafe or oversized member {member.name!r}")
                    if member.isfile() or member.isdir():  # links and devices are skipped
                        members.append(member)
                tf.extractall(tmp, members=members)  # noqa: S202 - every member checked above
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise KbError(f"{archive}: not a readable archive ({exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def fetch(dist: str, version: str, *, cache: Path | None = None, find_links: tuple[Path, ...] = ()) -> Release:
    """The unpacked sources of ``dist==version`` (downloaded at most once)."""
    cache = cache or default_cache()
    folder = cache / normalise(dist) / version
    marker = folder / ".kb-release.json"
    if marker.is_file():
        try:
            info = json.loads(marker.read_text("utf-8"))
            return Release(dist, version, folder / "src", info["url"], info["filename"], bool(info.get("local")))
        except (OSError, ValueError, KeyError):
            pass
    folder.mkdir(parents=True, exist_ok=True)
    local = sorted(((_preference(p.name), p) for d in find_links for v, p in _local_files(dist, d) if v == version),
                   key=lambda item: (item[0], item[1].name))
    if local:
        archive = local[0][1]
    else:
        listed = (_project(dist).get("releases") or {}).get(version) or []
        files = [f for f in listed if isinstance(f, dict) and isinstance(f.get("filename"), str)
                 and isinstance(f.get("url"), str) and not f.get("yanked") and _preference(f["filename"]) < 9]
        if not files:
            raise KbError(f"{dist} {version}: the index has no wheel or sdist for it")
        best = min(files, key=lambda f: (_preference(f["filename"]), f.get("size") or 0))
        name = best["filename"]
        if name != Path(name).name or "/" in name or "\\" in name or name.startswith("."):
            raise KbError(f"{dist} {version}: the index names a file {name!r} that is not a plain file name")
        archive = folder / name
        if not archive.is_file():
            # some indexes list files relative to the JSON document
            link = urllib.parse.urljoin(f"{index_url()}/pypi/{normalise(dist)}/json", best["url"])
            _download(link, archive, (best.get("digests") or {}).get("sha256"))
    url = release_url(dist, version)  # what rows cite; the file it was read from is kept beside it
    _unpack(archive, folder / "src")
    from ..safeio import write_text_atomic

    write_text_atomic(marker, json.dumps({"url": url, "filename": archive.name, "local": bool(local)}))
    if archive.parent == folder:
        archive.unlink(missing_ok=True)  # the unpacked tree is what is kept
    return Release(dist, version, folder / "src", url, archive.name, bool(local))
