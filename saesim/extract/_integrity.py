"""Integrity of the files saesim writes itself (tiny models, trained SAEs, assembled models).

A folder saesim writes gets a *manifest*, :data:`MANIFEST` (JSON: size,
sha256 and mtime of every file), written **last** into the temporary folder
before the folder is moved into place. A folder without it is incomplete.

On load, :func:`manifest_problem` checks, cheaply: every listed file exists and
has its recorded size, and every ``.safetensors`` file has a well-formed
header whose tensors end exactly at the end of the file (a truncated file
fails). The sha256 is recomputed only for a file whose mtime differs from the
recorded one (edited in place, or copied without ``-p``).

The manifest's name has no ``.json`` suffix on purpose: content digests of
SAE folders (``saesim.extract._extract_keys.folder_digest``) read ``*.json`` and
``*.safetensors`` only, so the manifest (which holds mtimes) does not change
them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

from saesim.io import atomic_write_text

MANIFEST = "saesim_files.manifest"
"""Name of the manifest file saesim writes last into every folder it makes."""

MANIFEST_VERSION = 1
_CHUNK = 1 << 22


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a ``.safetensors`` file (missing, truncated, bad header), or None.

    Reads the 8-byte header length and the JSON header only: the data must end
    exactly where the header's largest ``data_offsets`` says.
    """
    path = Path(path)
    if not path.is_file():
        return f"`{path}` is missing"
    size = path.stat().st_size
    if size < 8:
        return f"`{path}` has {size} bytes, too short for a safetensors header"
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > size - 8 or n > 100_000_000:
            return f"`{path}` declares a {n}-byte header but has {size} bytes (truncated)"
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return f"`{path}` has an unreadable safetensors header"
    if not isinstance(header, dict):
        return f"`{path}` has an unreadable safetensors header"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        return f"`{path}` has an unreadable safetensors header"
    if 8 + n + end != size:
        return f"`{path}` has {size} bytes but its header needs {8 + n + end} (truncated or damaged)"
    return None


def write_manifest(folder: str | os.PathLike, *, extra: dict | None = None,
                   known_sha256: dict[str, str] | None = None) -> dict:
    """Record size, sha256 and mtime of every file under ``folder`` in :data:`MANIFEST` (written last).

    ``known_sha256`` (relative path -> hex) spares re-hashing files just hashed while written.
    """
    folder = Path(folder)
    known = known_sha256 or {}
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(MANIFEST)):
        stat = path.stat()
        rel = path.relative_to(folder).as_posix()
        files[rel] = {"size": stat.st_size, "sha256": known.get(rel) or sha256_file(path), "mtime_ns": stat.st_mtime_ns}
    manifest = {"version": MANIFEST_VERSION, "files": files, **(extra or {})}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of ``folder``, or None when it is missing or unreadable."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def manifest_problem(folder: str | os.PathLike, *, full: bool = False) -> str | None:
    """What is wrong with a saesim-made folder, or None when it checks out.

    Parameters
    ----------
    folder : path
    full : bool, default False
        Recompute every file's sha256 (otherwise only for files whose mtime changed).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return f"`{folder}` does not exist"
    manifest = read_manifest(folder)
    if manifest is None:
        return f"`{folder}` has no {MANIFEST} (an interrupted or older write)"
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            return f"`{path}` is missing"
        stat = path.stat()
        if stat.st_size != entry.get("size"):
            return f"`{path}` has {stat.st_size} bytes, expected {entry.get('size')} (truncated or damaged)"
        if path.suffix == ".safetensors":
            problem = safetensors_problem(path)
            if problem:
                return problem
        if full or stat.st_mtime_ns != entry.get("mtime_ns"):
            if sha256_file(path) != entry.get("sha256"):
                return f"`{path}` does not match its recorded sha256 (damaged)"
    return None


def safetensors_files_problem(folder: str | os.PathLike) -> str | None:
    """The first problem among the ``*.safetensors`` files directly in ``folder`` (header checks only)."""
    for path in sorted(Path(folder).glob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem:
            return problem
    return None


def is_safetensors_error(exc: BaseException) -> bool:
    """Whether ``exc`` is safetensors' own error (a damaged file), by type name."""
    return any(type(e).__name__ == "SafetensorError" for e in _chain(exc))


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__

def replace_dir(tmp: Path, folder: Path) -> None:
    """Move the finished folder ``tmp`` to ``folder``, replacing a broken earlier one."""
    if folder.exists():
        old = folder.with_name(f".old-{folder.name}.{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:
        if not (folder / MANIFEST).is_file():  # another process finished first: keep theirs
            raise
