"""Real wheels of a throwaway distribution, built on the spot (a wheel is a zip with its metadata,
PEP 427): what the mining and learning tests install and compare, without the package index."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(folder: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> Path:
    """Write ``name-version-py3-none-any.whl`` holding ``files`` (path in the wheel → source), its
    metadata declaring ``requires`` (``Requires-Dist`` lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    contents = {path: text.encode() for path, text in files.items()}
    requires_dist = "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires_dist}".encode()
    contents[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: kb-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    tops = sorted({p.split("/", 1)[0].removesuffix(".py") for p in files})
    contents[f"{dist_info}/top_level.txt"] = ("\n".join(tops) + "\n").encode()
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in contents.items()]
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in contents.items():
            zf.writestr(path, data)
    return wheel
