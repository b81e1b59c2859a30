"""Content-addressed artefact store: sparse codes, arrays and JSON on disk.

Every artefact lives under a **key**, the sha256 of the sorted JSON of the
fields that determine it (model, revision, SAE id, hook, data hash, dtype,
codes mode, ``compat``, ...). Change any field and the key changes, so a stale
artefact is never found under a new key.

Layout::

    root/<kind>/<key[:2]>/<key>/manifest.json
    root/<kind>/<key[:2]>/<key>/<payload>-<sha256[:16]>.<ext>

with ``kind`` one of ``"codes"`` (CSR as ``.npz`` holding ``indptr``,
``indices``, ``data`` and ``shape``), ``"array"`` (``.npy``), ``"arrays"`` (several
named arrays in one ``.npz``) and ``"json"``.

Writes are atomic: each file is written to a temporary file in the same
folder, flushed, fsync'ed and moved into place with :func:`os.replace`; the
manifest (file names, byte sizes, sha256 checksums, shape and the caller's
metadata) is written **last** and is the commit marker. A payload file name
carries its own checksum, so a manifest always points at one complete payload
even when two writers race on the same key.

An entry without a readable manifest, with a missing payload, or whose size,
checksum or shape disagrees with the manifest is treated as missing: the
store warns (:class:`CacheCorruptionWarning`) and logs it, :meth:`has` returns
False and the ``load_*`` methods raise :class:`CacheMissError`, so the caller
rebuilds it. Nothing inconsistent is ever returned. An interrupted run keeps
every entry whose manifest was written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import scipy.sparse as sp

__all__ = [
    "ArtefactStore",
    "CacheCorruptionWarning",
    "CacheMissError",
    "KEY_SCHEMA",
]

logger = logging.getLogger(__name__)

KEY_SCHEMA = "saesim-artefact/1"
"""Mixed into every key; bump it when the on-disk format changes."""

MANIFEST = "manifest.json"
"""Name of the per-entry manifest (the commit marker)."""

Kind = Literal["codes", "array", "arrays", "json"]
_KINDS = ("codes", "array", "arrays", "json")
_HASH_CHUNK = 1 << 22


class CacheMissError(KeyError):
    """The requested artefact is not in the store (missing, incomplete or corrupt)."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0]) if self.args else ""


class CacheCorruptionWarning(UserWarning):
    """An entry exists on disk but failed validation; it is ignored (rebuild it)."""


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(
        f"cache key field value {value!r} ({type(value).__name__}) is not JSON-serialisable; "
        "pass str, int, float, bool, None, lists or dicts of those (or a Path)."
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_temp(folder: Path, prefix: str, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a temporary file in ``folder`` (flushed and fsync'ed); return its path."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-{prefix}.")
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return tmp_path


class ArtefactStore:
    """A content-addressed artefact store rooted at ``root``.

    Parameters
    ----------
    root : str or Path
        Folder of the store (created on the first write).
    verify : bool, default True
        Check payload sha256 checksums before an entry counts as present. A
        file's checksum is computed once per (path, inode, size, mtime, ctime) and
        remembered, so :meth:`has` followed by a ``load_*`` reads it once.

    Examples
    --------
    >>> import tempfile, scipy.sparse as sp
    >>> store = ArtefactStore(tempfile.mkdtemp())
    >>> key = store.key(model="m", hook="layers.1", data_hash="abc", codes="sae")
    >>> store.has(key, "codes")
    False
    >>> store.save_codes(key, sp.eye(3, format="csr", dtype="float32"), {"hook": "layers.1"})
    >>> store.load_codes(key).toarray().trace()
    np.float32(3.0)
    """

    def __init__(self, root: str | os.PathLike, *, verify: bool = True):
        self.root = Path(root)
        self.verify = bool(verify)
        self._checked: dict[tuple, str] = {}

    def __repr__(self) -> str:
        return f"ArtefactStore({str(self.root)!r})"

    # ------------------------------------------------------------------ keys
    @staticmethod
    def key(**fields: Any) -> str:
        """sha256 (hex) of the sorted JSON of ``fields`` plus the schema version.

        Field order does not matter; any change of a value gives a new key.
        Values must be JSON-serialisable (Paths, tuples, sets and NumPy
        scalars are converted).
        """
        if not fields:
            raise ValueError(
                "`key` needs at least one field (e.g. model=..., hook=..., data_hash=...)."
            )
        payload = json.dumps(
            {"schema": KEY_SCHEMA, "fields": fields},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            default=_json_default,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def entry_dir(self, key: str, kind: Kind) -> Path:
        """Folder of the entry ``(key, kind)`` (it may not exist)."""
        _check_key(key)
        _check_kind(kind)
        return self.root / kind / key[:2] / key

    # ----------------------------------------------------------------- codes
    def save_codes(self, key: str, csr, meta: Mapping[str, Any] | None = None) -> None:
        """Store a sparse token-by-latent matrix as CSR (npz) under ``key``.

        ``meta`` is any JSON-serialisable mapping kept in the manifest (put
        the key's fields there to make entries self-describing).
        """
        if not sp.issparse(csr):
            raise TypeError(
                f"`csr` must be a scipy.sparse matrix; got {type(csr).__name__}. "
                "Encode with saesim.extract.saes.encode, which returns CSR."
            )
        matrix = sp.csr_matrix(csr)
        matrix.sort_indices()
        arrays = {
            "indptr": np.asarray(matrix.indptr),
            "indices": np.asarray(matrix.indices),
            "data": np.asarray(matrix.data),
            "shape": np.asarray(matrix.shape, dtype=np.int64),
        }

        def write(f):
            np.savez(f, **arrays)

        info = {
            "shape": [int(s) for s in matrix.shape],
            "dtype": str(matrix.dtype),
            "nnz": int(matrix.nnz),
        }
        self._save(key, "codes", {"codes.npz": write}, info, meta)

    def load_codes(self, key: str) -> sp.csr_matrix:
        """Load the CSR matrix stored under ``key``.

        Raises
        ------
        CacheMissError
            If the entry is missing, incomplete or fails validation.
        """
        manifest, files = self._valid_entry(key, "codes", strict=True)
        try:
            with np.load(files["codes.npz"], allow_pickle=False) as z:
                shape = tuple(int(s) for s in z["shape"])
                matrix = sp.csr_matrix(
                    (z["data"], z["indices"], z["indptr"]), shape=shape, copy=False
                )
        except Exception as exc:  # unreadable despite a matching checksum
            self._corrupt(key, "codes", f"payload could not be read ({exc})")
            raise CacheMissError(self._miss_message(key, "codes")) from exc
        if list(shape) != manifest["shape"] or matrix.nnz != manifest["nnz"]:
            self._corrupt(
                key, "codes", f"shape/nnz {shape}/{matrix.nnz} disagree with the manifest"
            )
            raise CacheMissError(self._miss_message(key, "codes"))
        return matrix

    # ---------------------------------------------------------------- arrays
    def save_array(self, key: str, array, meta: Mapping[str, Any] | None = None) -> None:
        """Store a dense NumPy array (``.npy``, no pickles) under ``key``."""
        arr = np.asarray(array)
        if arr.dtype == object:
            raise TypeError(
                "`array` has dtype object; only numeric/bool/fixed-width string arrays can be "
                "stored (use save_json for Python objects)."
            )

        def write(f):
            np.save(f, arr, allow_pickle=False)

        info = {"shape": [int(s) for s in arr.shape], "dtype": str(arr.dtype)}
        self._save(key, "array", {"array.npy": write}, info, meta)

    def load_array(self, key: str, *, mmap: bool = False) -> np.ndarray:
        """Load the array stored under ``key`` (memory-mapped read-only if ``mmap``)."""
        manifest, files = self._valid_entry(key, "array", strict=True)
        try:
            arr = np.load(files["array.npy"], allow_pickle=False, mmap_mode="r" if mmap else None)
        except Exception as exc:
            self._corrupt(key, "array", f"payload could not be read ({exc})")
            raise CacheMissError(self._miss_message(key, "array")) from exc
        if list(arr.shape) != manifest["shape"] or str(arr.dtype) != manifest["dtype"]:
            self._corrupt(
                key, "array", f"shape/dtype {arr.shape}/{arr.dtype} disagree with the manifest"
            )
            raise CacheMissError(self._miss_message(key, "array"))
        return arr

    def save_arrays(self, key: str, arrays: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> None:
        """Store several named dense arrays together (one ``.npz``, no pickles) under ``key``."""
        named = {name: np.asarray(value) for name, value in arrays.items()}
        bad = sorted(name for name, value in named.items() if value.dtype == object)
        if bad:
            raise TypeError(f"arrays {bad} have dtype object; only numeric/bool/string arrays can be stored.")

        def write(f):
            np.savez(f, **named)

        info = {"arrays": {name: {"shape": [int(s) for s in value.shape], "dtype": str(value.dtype)}
                           for name, value in named.items()}}
        self._save(key, "arrays", {"arrays.npz": write}, info, meta)

    def load_arrays(self, key: str) -> dict[str, np.ndarray]:
        """Load the named arrays stored under ``key`` by :meth:`save_arrays`."""
        manifest, files = self._valid_entry(key, "arrays", strict=True)
        try:
            with np.load(files["arrays.npz"], allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
        except Exception as exc:
            self._corrupt(key, "arrays", f"payload could not be read ({exc})")
            raise CacheMissError(self._miss_message(key, "arrays")) from exc
        expected = manifest["arrays"]
        if set(arrays) != set(expected) or any(
            list(arrays[n].shape) != expected[n]["shape"] or str(arrays[n].dtype) != expected[n]["dtype"]
            for n in arrays
        ):
            self._corrupt(key, "arrays", "names/shapes/dtypes disagree with the manifest")
            raise CacheMissError(self._miss_message(key, "arrays"))
        return arrays

    # ------------------------------------------------------------------ json
    def save_json(self, key: str, obj: Any, meta: Mapping[str, Any] | None = None) -> None:
        """Store a JSON-serialisable object under ``key``."""
        text = json.dumps(obj, sort_keys=True, default=_json_default, allow_nan=True)
        data = text.encode("utf-8")

        def write(f):
            f.write(data)

        self._save(key, "json", {"data.json": write}, {}, meta)

    def load_json(self, key: str) -> Any:
        """Load the JSON object stored under ``key``."""
        _, files = self._valid_entry(key, "json", strict=True)
        try:
            return json.loads(files["data.json"].read_text(encoding="utf-8"))
        except Exception as exc:
            self._corrupt(key, "json", f"payload could not be parsed ({exc})")
            raise CacheMissError(self._miss_message(key, "json")) from exc

    # --------------------------------------------------------------- queries
    def has(self, key: str, kind: Kind) -> bool:
        """Whether a complete, valid entry ``(key, kind)`` exists.

        Warns with :class:`CacheCorruptionWarning` when an entry exists but is
        incomplete or corrupt (it then counts as missing).
        """
        return self._valid_entry(key, kind, strict=False) is not None

    def manifest(self, key: str, kind: Kind) -> dict | None:
        """The manifest of a valid entry (with the caller's ``meta``), else None."""
        found = self._valid_entry(key, kind, strict=False)
        return None if found is None else found[0]

    def size_bytes(self, key: str, kind: Kind | None = None) -> int:
        """Bytes on disk of the valid entries under ``key`` (payloads + manifest).

        With ``kind=None`` the sizes of every kind stored under ``key`` are
        summed. Invalid entries count as 0.
        """
        kinds = _KINDS if kind is None else (kind,)
        total = 0
        for k in kinds:
            found = self._valid_entry(key, k, strict=False, warn=False)
            if found is None:
                continue
            manifest, files = found
            total += sum(int(f["bytes"]) for f in manifest["files"].values())
            total += (self.entry_dir(key, k) / MANIFEST).stat().st_size
        return total

    def delete(self, key: str, kind: Kind) -> None:
        """Remove the entry ``(key, kind)`` (manifest first, so it is never half-valid)."""
        folder = self.entry_dir(key, kind)
        if not folder.exists():
            return
        (folder / MANIFEST).unlink(missing_ok=True)
        for path in folder.iterdir():
            path.unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:  # a concurrent writer put something back
            pass

    # -------------------------------------------------------------- internals
    def _save(self, key, kind, writers: dict, info: dict, meta) -> None:
        folder = self.entry_dir(key, kind)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {} if meta is None else dict(meta)
        json.dumps(meta, default=_json_default)  # fail before writing anything
        files = {}
        for logical, write in writers.items():
            stem, ext = logical.rsplit(".", 1)
            tmp = _write_temp(folder, stem, write)
            try:
                digest = _sha256_file(tmp)
                size = tmp.stat().st_size
                name = f"{stem}-{digest[:16]}.{ext}"
                os.replace(tmp, folder / name)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            files[logical] = {"name": name, "sha256": digest, "bytes": size}
        manifest = {
            "format": KEY_SCHEMA,
            "kind": kind,
            "key": key,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": files,
            **info,
            "meta": meta,
        }
        text = json.dumps(manifest, indent=1, sort_keys=True, default=_json_default)
        _fsync_dir(folder)
        tmp = _write_temp(folder, "manifest", lambda f: f.write(text.encode("utf-8")))
        os.replace(tmp, folder / MANIFEST)  # the commit marker
        _fsync_dir(folder)
        keep = {f["name"] for f in files.values()} | {MANIFEST}
        for path in folder.iterdir():  # payloads of earlier writes of this key
            if path.name not in keep and not path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)
        total = sum(f["bytes"] for f in files.values())
        logger.info("cached %s %s (%.1f MiB) in %s", kind, key[:12], total / 2**20, folder)

    def _valid_entry(self, key, kind, *, strict: bool, warn: bool = True):
        """(manifest, {logical: path}) of a valid entry; None / CacheMissError otherwise."""
        folder = self.entry_dir(key, kind)
        manifest_path = folder / MANIFEST

        def invalid(reason):
            if warn:
                self._corrupt(key, kind, reason)
            if strict:
                raise CacheMissError(self._miss_message(key, kind))
            return None

        if not manifest_path.is_file():
            if strict:
                raise CacheMissError(self._miss_message(key, kind))
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            files_info = manifest["files"]
            if manifest.get("key") != key or manifest.get("kind") != kind:
                return invalid("manifest belongs to another key or kind")
            if manifest.get("format") != KEY_SCHEMA:
                return invalid(f"format {manifest.get('format')!r} is not {KEY_SCHEMA!r}")
        except Exception as exc:
            return invalid(f"manifest unreadable ({exc})")
        paths = {}
        for logical, entry in files_info.items():
            path = folder / entry["name"]
            try:
                stat = path.stat()
            except OSError:
                return invalid(f"payload {entry['name']} is missing")
            if stat.st_size != int(entry["bytes"]):
                return invalid(
                    f"payload {entry['name']} has {stat.st_size} bytes, manifest says "
                    f"{entry['bytes']} (truncated or overwritten)"
                )
            if self.verify:
                memo = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
                digest = self._checked.get(memo)
                if digest is None:
                    digest = _sha256_file(path)
                    self._checked[memo] = digest
                if digest != entry["sha256"]:
                    return invalid(f"payload {entry['name']} fails its sha256 checksum")
            paths[logical] = path
        return manifest, paths

    def _corrupt(self, key, kind, reason) -> None:
        message = (
            f"cache entry {kind}/{key[:12]} in {self.root} is invalid: {reason}; "
            "it is ignored and will be rebuilt."
        )
        logger.warning(message)
        warnings.warn(message, CacheCorruptionWarning, stacklevel=3)

    def _miss_message(self, key, kind) -> str:
        return (
            f"no valid {kind!r} entry for key {key[:12]}... in {self.root}; compute it and save it "
            f"(check `store.has(key, {kind!r})` first)."
        )


def _check_key(key) -> None:
    if not isinstance(key, str) or len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(
            f"`key` must be a 64-character lowercase hex sha256 from ArtefactStore.key(...); got {key!r}."
        )


def _check_kind(kind) -> None:
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}; got {kind!r}.")
