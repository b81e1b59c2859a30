"""Atomic file writes and JSON-safe values, shared by the grids, the robustness checks and the book.

A result that a rerun reads back (a grid cell's JSON, a grid's parquet, a figure) is written to a
temporary sibling and moved into place with :func:`os.replace`, so a reader never sees a
half-written file and an interrupted run leaves nothing that looks finished; on failure the
temporary file is removed. A folder (a tokenizer, an SAE, unpacked assets) is built the same way in a
temporary sibling folder by :func:`atomic_folder`. :func:`to_jsonable` turns numpy scalars and arrays into the plain Python
values :mod:`json` writes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePath

import numpy as np

__all__ = [
    "atomic_folder",
    "atomic_parquet",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_json_or_none",
    "to_jsonable",
]


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved onto ``path`` on success, removed on failure.

    The parent folder is created. The temporary name (``.<name>.<pid>.<random>.tmp``) is unique
    per process and call, so concurrent writers of one target never share a temporary file; the
    last to finish wins.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "figure.png"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_bytes(b"...")
    >>> target.read_bytes()
    b'...'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path) -> Iterator[Path]:
    """A fresh, empty temporary folder beside ``path`` to fill; it replaces ``path`` on success, is removed on failure.

    The parent folder is created. The temporary folder (``.<name>.<pid>.<random>.tmp``) is unique
    per process and call. On success an earlier folder at ``path`` is first moved aside (and then
    removed), so ``path`` holds either the old folder or the new one, never a mix.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "tokenizer"
    >>> with atomic_folder(target) as tmp:
    ...     _ = (tmp / "vocab.json").write_text("{}")
    >>> sorted(p.name for p in target.iterdir())
    ['vocab.json']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_parquet(frame, path) -> None:
    """Write a pandas DataFrame to ``path`` as parquet, without its index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_json_or_none(path):
    """The JSON value stored at ``path``; None when the file is missing, unreadable or not valid JSON.

    For results a rerun reuses: a damaged file reads as absent, so it is recomputed.
    """
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, OSError):
        return None


def to_jsonable(obj):
    """``obj`` with numpy values made plain Python, ready for :func:`json.dumps`.

    Numpy scalars become Python scalars (``.item()``; NaN stays a float), arrays and tuples become
    lists, mappings become dicts with their values converted (keys kept), and paths become
    strings; anything else is returned unchanged.

    Examples
    --------
    >>> json.dumps(to_jsonable({"n": np.int64(3), "r": (np.float32(0.5), 1)}))
    '{"n": 3, "r": [0.5, 1]}'
    """
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {key: to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value) for value in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    return obj
