"""SAEs: load (sparsify, SAELens), encode to sparse codes, check, train, save.

An SAE is held as plain arrays in :class:`SaeWeights` (encoder, decoder,
biases, threshold or k, and exactly the input handling the library applies),
so encoding is one pure function over any SAE source:

* **sparsify** (EleutherAI, e.g. ``EleutherAI/sae-pythia-70m-32k``, and the
  SAEs saesim trains itself) — loaded with ``sparsify.Sae.load_from_disk`` /
  ``Sae.load_from_hub``; codes are ``TopK(ReLU(W_enc (x - b_dec) + b_enc))``,
  as ``sae.encode`` gives (``top_acts``, ``top_indices``).
* **SAELens** (e.g. ``gemma-scope-2b-pt-res-canonical``, ``gemma-2b-res-jb``)
  — loaded with ``sae_lens.SAE.load_from_disk`` / ``SAE.from_pretrained``
  (which already folds a release's ``norm_scaling_factor`` into the weights);
  TopK, JumpReLU and standard (ReLU) architectures, with the SAE's own
  ``apply_b_dec_to_input``, run-time input normalisation (``layer_norm``,
  ``constant_norm_rescale``; ``expected_average_only_in`` is a no-op at
  inference, as in SAELens) and ``rescale_acts_by_decoder_norm``. Codes equal
  ``sae.encode(x)``.

The default codes are the SAE's real sparse codes. ``codes="relu_preact"``
gives ``ReLU(W_enc (x - b_dec) + b_enc)`` before any TopK / threshold — dense
and non-negative — which is what the authors used for sparsify SAEs
(``pre_acts``; authors_pipeline.md finding 4); use it only to reproduce them.

Codes are built batch by batch straight into CSR (for TopK from the top-k
indices and values), so a dense token-by-latent matrix never exists for more
than one batch. :func:`fvu` decodes sparse codes back and measures the
fraction of variance unexplained; :func:`check_fvu` turns a bad reconstruction
(activations from the wrong hook — e.g. HF ``hidden_states[L]``, the *input*
of block L, fed to an SAE trained on its output — or wrong normalisation)
into an error.

:func:`train_topk_sae` trains a sparsify TopK SAE with a plain, seeded torch
loop over cached activations; :func:`save_sparsify` / :func:`save_saelens`
write the libraries' own on-disk formats so everything loads back through
:func:`load_sae`.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024).
Gao et al., "Scaling and evaluating sparse autoencoders", arXiv:2406.04093
(2024) — TopK SAEs, AuxK loss.
Rajamanoharan et al., "Jumping Ahead: Improving Reconstruction Fidelity with
JumpReLU Sparse Autoencoders", arXiv:2407.14435 (2024).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

from saesim.extract._integrity import (
    MANIFEST,
    is_safetensors_error,
    manifest_problem,
    safetensors_files_problem,
    write_manifest,
)
from saesim.validation import SeedLike, as_generator

__all__ = [
    "DEFAULT_MAX_FVU",
    "HookCheck",
    "HubUnavailableError",
    "SaeCorruptError",
    "SaeFormatError",
    "SaeMismatchError",
    "SaeNormalisationWarning",
    "SaeWeights",
    "TrainedSae",
    "check_d_in",
    "check_fvu",
    "check_hook",
    "default_lr",
    "code_stats",
    "encode",
    "fvu",
    "jumprelu_thresholds",
    "load_sae",
    "make_tiny_saes",
    "reconstruct",
    "sae_folder_ready",
    "saved_sae_problem",
    "save_saelens",
    "save_sparsify",
    "train_topk_sae",
    "weights_from_saelens",
    "weights_from_sparsify",
]

logger = logging.getLogger(__name__)

Activation = Literal["topk", "jumprelu", "relu"]
CodesMode = Literal["sae", "relu_preact"]

DEFAULT_MAX_FVU = 0.9
"""FVU above which the reconstruction guard fails (1.0 = no better than the mean)."""

DEFAULT_BATCH = 4096
"""Token rows per encode / training batch."""

MAX_DENSE_ELEMENTS = 1 << 25
"""Cap on rows x latents of one dense scratch batch during encoding (128 MiB fp32)."""

LAYER_NORM_EPS = 1e-5
"""SAELens's epsilon for ``normalize_activations="layer_norm"``."""

DEFAULT_AUXK_ALPHA = 1 / 32
"""Weight of the AuxK loss for dead latents (Gao et al. 2024)."""

_ACTIVATIONS = ("topk", "jumprelu", "relu")
_NORMALISATIONS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm", "covariance_whitening")
_TINY_FORMATS = ("sparsify", "saelens_topk", "saelens_jumprelu")
_SAELENS_ARCH = {"topk": "topk", "jumprelu": "jumprelu", "standard": "relu"}


class SaeMismatchError(ValueError):
    """The activations do not fit the SAE (width, or a failed reconstruction guard)."""


class SaeFormatError(ValueError):
    """The SAE on disk / in the library is of a kind saesim cannot encode with."""


class SaeCorruptError(SaeFormatError):
    """An SAE's files on disk are damaged (truncated, missing, bad header).

    Attributes
    ----------
    path : Path
        The SAE folder.
    saesim_made : bool
        Whether saesim wrote the folder (it is then removed, to be rebuilt).
    """

    def __init__(self, message: str, *, path: Path, saesim_made: bool):
        super().__init__(message)
        self.path = Path(path)
        self.saesim_made = saesim_made


class HubUnavailableError(RuntimeError):
    """An SAE had to come from the Hugging Face hub, which could not be reached."""


class SaeNormalisationWarning(UserWarning):
    """The SAE declares an input normalisation that its inference encode does not apply."""


# --------------------------------------------------------------------------- weights
@dataclass(frozen=True, eq=False)
class SaeWeights:
    """One SAE as float32 arrays plus exactly the input handling its library applies.

    Attributes
    ----------
    W_enc : ndarray of float32, shape (d_in, n_latents)
    b_enc : ndarray of float32, shape (n_latents,)
    W_dec : ndarray of float32, shape (n_latents, d_in)
        Decoder rows = latent directions (what the geometry compares).
    b_dec : ndarray of float32, shape (d_in,)
    threshold : ndarray of float32, shape (n_latents,), or None
        JumpReLU thresholds (``activation="jumprelu"`` only).
    k : int or None
        Active latents per token (``activation="topk"`` only).
    activation : {"topk", "jumprelu", "relu"}
    hook : str
        Where the activations must be captured (the profile's hook, else the
        SAE's declared hook).
    sae_id : str
        The SAE's id within its source (hookpoint folder, SAELens id).
    source : str
        ``"sparsify"``, ``"saelens"`` or ``"train"``.
    apply_b_dec_to_input : bool, default True
        Subtract ``b_dec`` before the encoder (sparsify always does).
    normalize_activations : str, default "none"
        SAELens run-time input normalisation: ``"layer_norm"`` and
        ``"constant_norm_rescale"`` act per token and are undone on decode;
        ``"expected_average_only_in"`` and ``"covariance_whitening"`` are
        no-ops at inference (SAELens folds them into the weights when it can).
    rescale_acts_by_decoder_norm : bool, default False
        SAELens TopK option: pre-activations are multiplied by the decoder
        row norms before the TopK, and divided back on decode.
    declared_hook : str or None
        The hook the SAE itself declares (SAELens ``cfg.metadata.hook_name``,
        sparsify hookpoint), for provenance.
    """

    W_enc: np.ndarray
    b_enc: np.ndarray
    W_dec: np.ndarray
    b_dec: np.ndarray
    threshold: np.ndarray | None
    k: int | None
    activation: Activation
    hook: str
    sae_id: str
    source: str
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"
    rescale_acts_by_decoder_norm: bool = False
    declared_hook: str | None = None

    def __post_init__(self):
        def arr(name, ndim):
            value = np.ascontiguousarray(np.asarray(getattr(self, name), dtype=np.float32))
            if value.ndim != ndim:
                raise ValueError(f"`{name}` must be {ndim}-D; got shape {value.shape}.")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"`{name}` contains NaN or infinite values; the SAE file is corrupt.")
            object.__setattr__(self, name, value)
            return value

        w_enc = arr("W_enc", 2)
        d_in, n = w_enc.shape
        for name, shape in (("b_enc", (n,)), ("W_dec", (n, d_in)), ("b_dec", (d_in,))):
            value = arr(name, len(shape))
            if value.shape != shape:
                raise ValueError(
                    f"`{name}` has shape {value.shape}; expected {shape} for W_enc of shape {w_enc.shape} "
                    "(W_enc is d_in x n_latents, W_dec n_latents x d_in)."
                )
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {_ACTIVATIONS}; got {self.activation!r}.")
        if self.activation == "jumprelu":
            if self.threshold is None:
                raise ValueError("`threshold` is required for activation='jumprelu'.")
            thr = np.ascontiguousarray(np.asarray(self.threshold, dtype=np.float32))
            if thr.shape != (n,):
                raise ValueError(f"`threshold` has shape {thr.shape}; expected ({n},).")
            object.__setattr__(self, "threshold", thr)
        elif self.threshold is not None:
            raise ValueError(f"`threshold` is only used by activation='jumprelu'; got activation={self.activation!r}.")
        if self.activation == "topk":
            if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or not 1 <= self.k <= n:
                raise ValueError(f"`k` must be an integer in [1, {n}] for activation='topk'; got {self.k!r}.")
            object.__setattr__(self, "k", int(self.k))
        elif self.k is not None:
            raise ValueError(f"`k` is only used by activation='topk'; got k={self.k!r} with {self.activation!r}.")
        if self.normalize_activations not in _NORMALISATIONS:
            raise SaeFormatError(
                f"`normalize_activations` must be one of {_NORMALISATIONS}; got {self.normalize_activations!r}."
            )
        if self.rescale_acts_by_decoder_norm and self.activation != "topk":
            raise ValueError("`rescale_acts_by_decoder_norm` is a TopK option (SAELens TopKSAE).")

    @property
    def d_in(self) -> int:
        """Width of the activations the SAE reads."""
        return int(self.W_enc.shape[0])

    @property
    def n_latents(self) -> int:
        """Number of latents (dictionary size)."""
        return int(self.W_enc.shape[1])

    def describe(self) -> dict:
        """Settings (no arrays) for manifests and tidy tables."""
        return {
            "source": self.source,
            "sae_id": self.sae_id,
            "hook": self.hook,
            "declared_hook": self.declared_hook,
            "d_in": self.d_in,
            "n_latents": self.n_latents,
            "activation": self.activation,
            "k": self.k,
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": self.normalize_activations,
            "rescale_acts_by_decoder_norm": self.rescale_acts_by_decoder_norm,
        }


def _import_sparsify():
    # ``import sparsify`` prints a Triton notice to stdout; keep notebooks clean.
    with contextlib.redirect_stdout(io.StringIO()):
        import sparsify
    return sparsify


def _to_numpy(tensor) -> np.ndarray:
    return tensor.detach().to("cpu").float().numpy()


def weights_from_sparsify(sae, *, hook: str | None = None, sae_id: str = "", source: str = "sparsify") -> SaeWeights:
    """Convert a loaded ``sparsify.Sae`` (SparseCoder) to :class:`SaeWeights`.

    Raises
    ------
    SaeFormatError
        For transcoders, skip connections, a missing decoder or a
        non-TopK activation.
    """
    cfg = sae.cfg
    if getattr(cfg, "transcode", False) or getattr(sae, "W_skip", None) is not None:
        raise SaeFormatError(
            f"sparsify coder `{sae_id}` is a transcoder or has a skip connection; saesim compares "
            "autoencoders only (pick an SAE, not a transcoder)."
        )
    if getattr(cfg, "activation", "topk") != "topk":
        raise SaeFormatError(f"sparsify coder `{sae_id}` uses activation {cfg.activation!r}; only 'topk' is supported.")
    if sae.W_dec is None:
        raise SaeFormatError(f"sparsify coder `{sae_id}` was loaded without its decoder; load it with decoder=True.")
    return SaeWeights(
        W_enc=_to_numpy(sae.encoder.weight).T,
        b_enc=_to_numpy(sae.encoder.bias),
        W_dec=_to_numpy(sae.W_dec),
        b_dec=_to_numpy(sae.b_dec),
        threshold=None,
        k=int(cfg.k),
        activation="topk",
        hook=hook or sae_id,
        sae_id=sae_id,
        source=source,
        apply_b_dec_to_input=True,
        declared_hook=sae_id or None,
    )


def weights_from_saelens(sae, *, hook: str | None = None, sae_id: str = "", source: str = "saelens") -> SaeWeights:
    """Convert a loaded SAELens ``SAE`` (TopK, JumpReLU or standard) to :class:`SaeWeights`.

    Raises
    ------
    SaeFormatError
        For other architectures or ``hook_z`` reshaping.
    Warns
    -----
    SaeNormalisationWarning
        If the SAE declares ``expected_average_only_in`` or
        ``covariance_whitening`` without having folded it into its weights:
        SAELens's inference encode then applies nothing, and neither does
        saesim (watch the FVU).
    """
    cfg = sae.cfg
    arch = cfg.architecture()
    if arch not in _SAELENS_ARCH:
        raise SaeFormatError(
            f"SAELens SAE `{sae_id}` has architecture {arch!r}; saesim encodes {sorted(_SAELENS_ARCH)}."
        )
    if getattr(cfg, "reshape_activations", "none") != "none":
        raise SaeFormatError(
            f"SAELens SAE `{sae_id}` reads attention heads (reshape_activations="
            f"{cfg.reshape_activations!r}); saesim compares residual-stream / MLP SAEs."
        )
    norm = getattr(cfg, "normalize_activations", "none") or "none"
    declared = getattr(cfg.metadata, "hook_name", None) if getattr(cfg, "metadata", None) is not None else None
    if norm in ("expected_average_only_in", "covariance_whitening"):
        warnings.warn(
            f"SAELens SAE `{sae_id}` declares normalize_activations={norm!r} but the factor was not folded "
            "into its weights; SAELens's encode applies no scaling at inference and saesim does the same. "
            "Load it with SAE.from_pretrained (which folds a release's norm_scaling_factor) if the FVU is high.",
            SaeNormalisationWarning,
            stacklevel=2,
        )
    activation = _SAELENS_ARCH[arch]
    return SaeWeights(
        W_enc=_to_numpy(sae.W_enc),
        b_enc=_to_numpy(sae.b_enc),
        W_dec=_to_numpy(sae.W_dec),
        b_dec=_to_numpy(sae.b_dec),
        threshold=_to_numpy(sae.threshold) if activation == "jumprelu" else None,
        k=int(cfg.k) if activation == "topk" else None,
        activation=activation,
        hook=hook or declared or sae_id,
        sae_id=sae_id,
        source=source,
        apply_b_dec_to_input=bool(cfg.apply_b_dec_to_input),
        normalize_activations=norm,
        rescale_acts_by_decoder_norm=bool(getattr(cfg, "rescale_acts_by_decoder_norm", False)) and activation == "topk",
        declared_hook=declared,
    )


# --------------------------------------------------------------------------- loading
def _fill(template, layer) -> str:
    return "" if template is None else str(template).replace("{layer}", str(int(layer)))


def _local_dir(location: str, root: Path) -> Path | None:
    """The local folder ``location`` names (absolute, or relative to ``root``), if it exists."""
    if not location:
        return None
    path = Path(os.path.expanduser(str(location)))
    candidates = [path] if path.is_absolute() else [Path(root) / path, path]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def _looks_local(location: str) -> bool:
    text = str(location)
    return text.startswith(("/", ".", "~")) or os.sep + os.sep in text


def _is_hub_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)):
        return True
    module = type(exc).__module__ or ""
    return module.startswith(("huggingface_hub", "httpx", "requests", "urllib3"))


def _hub_error(what: str, exc: BaseException) -> HubUnavailableError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    hint = (
        "HF_HUB_OFFLINE is set, so nothing is downloaded: unset it on a machine with network access, "
        if offline
        else "check the network / proxy and your Hugging Face token, "
    )
    return HubUnavailableError(
        f"Could not load {what} from the Hugging Face hub ({type(exc).__name__}: {exc}). This profile needs "
        f"the hub: {hint}or download the SAE once into the HF cache, or use the `offline` / `tiny` profile, "
        "which need no network."
    )


def load_sae(spec, layer: int, *, root: str | os.PathLike = ".") -> SaeWeights:
    """Load the SAE that ``spec`` names for ``layer``, through the real library loaders.

    Parameters
    ----------
    spec : saesim.config.SaeSpec (duck-typed)
        Needs ``source`` ("sparsify", "saelens" or "train"), ``location``
        (hub repo / SAELens release / local folder), ``sae_id`` and ``hook``
        (templates with ``{layer}``); ``num_latents`` / ``k`` are checked
        when set.
    layer : int
        Substituted for ``{layer}``.
    root : path, default "."
        Folder that relative local locations are resolved against (the
        profile's output / cache folder, where trained SAEs are saved).

    Returns
    -------
    SaeWeights

    Raises
    ------
    FileNotFoundError
        A local SAE folder (or a not yet trained ``source="train"`` SAE) is missing.
    SaeCorruptError
        A local SAE's files are damaged (see :func:`saved_sae_problem`). A
        folder saesim wrote itself is removed first (logged warning), so the
        next run rebuilds it; for other folders the message names the file
        and the fix.
    HubUnavailableError
        The SAE must come from the hub and the hub cannot be reached.
    SaeFormatError
        The SAE is of an unsupported kind.
    SaeMismatchError
        ``spec.num_latents`` / ``spec.k`` are set and differ from the SAE's.

    Notes
    -----
    * ``sparsify`` / ``train``: ``<location>/<sae_id>`` on disk via
      ``sparsify.Sae.load_from_disk``, else ``Sae.load_from_hub(location,
      hookpoint=sae_id)``.
    * ``saelens``: ``<location>/<sae_id>`` on disk via ``SAE.load_from_disk``,
      else ``SAE.from_pretrained(release=location, sae_id=sae_id)``.
    """
    source = getattr(spec, "source", None)
    location = str(getattr(spec, "location", "") or "")
    sae_id = _fill(getattr(spec, "sae_id", ""), layer)
    hook = _fill(getattr(spec, "hook", None), layer) or None
    root = Path(root)
    if source not in ("sparsify", "saelens", "train"):
        raise ValueError(f"`spec.source` must be 'sparsify', 'saelens' or 'train'; got {source!r}.")
    local = _local_dir(location, root)
    if local is None and (source == "train" or _looks_local(location)):
        hint = (
            " It is trained by saesim: run `saesim extract --profile ...` (or train_topk_sae + save_sparsify) first."
            if source == "train"
            else ""
        )
        raise FileNotFoundError(
            f"SAE folder `{location}` (for `{sae_id}`) does not exist (looked in {root / location} and "
            f"{Path(location).resolve()}).{hint}"
        )
    if source in ("sparsify", "train"):
        sparsify = _import_sparsify()
        if local is not None:
            folder = _sae_folder(local, sae_id, "cfg.json", "sae.safetensors")
            _verify_local_sae(folder)
            with _damaged_files_are_errors(folder):
                sae = sparsify.Sae.load_from_disk(folder, device="cpu")
        else:
            try:
                sae = sparsify.Sae.load_from_hub(location, hookpoint=sae_id or None, device="cpu")
            except Exception as exc:
                if is_safetensors_error(exc):
                    raise _hub_cache_error(f"sparsify SAE `{location}` hookpoint `{sae_id}`", exc) from exc
                if _is_hub_error(exc):
                    raise _hub_error(f"sparsify SAE `{location}` hookpoint `{sae_id}`", exc) from exc
                raise
        weights = weights_from_sparsify(sae, hook=hook, sae_id=sae_id, source=source)
    else:
        from sae_lens import SAE

        if local is not None:
            folder = _sae_folder(local, sae_id, "cfg.json", "sae_weights.safetensors")
            _verify_local_sae(folder)
            with _damaged_files_are_errors(folder):
                sae = SAE.load_from_disk(folder, device="cpu")
        else:
            try:
                sae = SAE.from_pretrained(location, sae_id, device="cpu")
            except Exception as exc:
                if is_safetensors_error(exc):
                    raise _hub_cache_error(f"SAELens release `{location}` id `{sae_id}`", exc) from exc
                if _is_hub_error(exc):
                    raise _hub_error(f"SAELens release `{location}` id `{sae_id}`", exc) from exc
                raise
            if isinstance(sae, tuple):  # sae_lens < 6 returned (sae, cfg, sparsity)
                sae = sae[0]
        weights = weights_from_saelens(sae, hook=hook, sae_id=sae_id, source=source)
    _check_spec_sizes(spec, weights)
    logger.info(
        "loaded %s SAE %s (%d -> %d, %s) for hook %s",
        source, sae_id or location, weights.d_in, weights.n_latents, weights.activation, weights.hook,
    )
    return weights


def _saesim_made(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or (folder / "saesim_train.json").is_file()


def saved_sae_problem(folder: str | os.PathLike) -> str | None:
    """What is wrong with the SAE files in ``folder``, or None when they check out.

    A folder saesim wrote (:func:`save_sparsify`, :func:`save_saelens`) carries
    a manifest: each file must exist with its recorded size, and a file whose
    mtime changed must still match its recorded sha256. Every
    ``*.safetensors`` file must have a well-formed header whose tensors end
    exactly at the end of the file (catches truncation). Cheap: the weights
    are not read unless an mtime changed.

    Parameters
    ----------
    folder : path
        One SAE's folder (``cfg.json`` + ``sae.safetensors`` or
        ``sae_weights.safetensors``).

    Returns
    -------
    str or None
        A description naming the damaged file, or None.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return f"`{folder}` does not exist"
    if (folder / MANIFEST).is_file():
        return manifest_problem(folder)
    if not any(folder.glob("*.safetensors")):
        return f"`{folder}` holds no .safetensors file"
    return safetensors_files_problem(folder)


def sae_folder_ready(folder: str | os.PathLike) -> bool:
    """Whether a saesim-made SAE folder is complete and intact; a damaged one is removed.

    For code that builds SAEs on demand (trained or tiny SAEs): call this
    instead of checking that the files exist, and rebuild when it returns
    False.

    Returns
    -------
    bool
        True: the folder checks out (:func:`saved_sae_problem`). False: it is
        missing, or it was damaged and has been removed (a warning is logged).

    Raises
    ------
    SaeCorruptError
        The folder is damaged and was not written by saesim (it is left alone).
    """
    folder = Path(folder)
    if not folder.exists():
        return False
    problem = saved_sae_problem(folder)
    if problem is None:
        return True
    _discard_or_raise(folder, problem)
    return False


def _discard_or_raise(folder: Path, problem: str, *, rebuild_now: bool = True) -> None:
    if _saesim_made(folder):
        logger.warning("SAE folder %s written by saesim is damaged (%s); removed it to rebuild it.", folder, problem)
        shutil.rmtree(folder, ignore_errors=True)
        if rebuild_now:
            return
        raise SaeCorruptError(
            f"The SAE in `{folder}` was written by saesim and is damaged: {problem}. It has been removed; run the "
            "same command again (e.g. `saesim run` / `saesim extract`) to rebuild it.",
            path=folder, saesim_made=True,
        )
    raise SaeCorruptError(
        f"The SAE in `{folder}` is damaged: {problem}. saesim did not write it, so it is left alone: download or "
        "save it again (sparsify `save_to_disk`, SAELens `save_model`, or `saesim.extract.saes.save_sparsify`), or point "
        "the profile's `sae.location` at an intact copy.",
        path=folder, saesim_made=False,
    )


def _verify_local_sae(folder: Path) -> None:
    problem = saved_sae_problem(folder)
    if problem is not None:
        _discard_or_raise(folder, problem, rebuild_now=False)


@contextlib.contextmanager
def _damaged_files_are_errors(folder: Path):
    """Turn the library's SafetensorError (a damaged file the checks missed) into SaeCorruptError."""
    try:
        yield
    except Exception as exc:
        if is_safetensors_error(exc):
            _discard_or_raise(folder, f"the library could not read it ({type(exc).__name__}: {exc})",
                              rebuild_now=False)
        raise


def _hub_cache_error(what: str, exc: BaseException) -> SaeCorruptError:
    return SaeCorruptError(
        f"{what} is damaged in the local Hugging Face cache ({type(exc).__name__}: {exc}). Delete its cached "
        "copy (`huggingface-cli delete-cache`, or remove the repo's folder under ~/.cache/huggingface/hub) and "
        "run again with network access to download it anew.",
        path=Path(os.environ.get("HF_HUB_CACHE", "~/.cache/huggingface/hub")).expanduser(), saesim_made=False,
    )


def _check_spec_sizes(spec, weights: SaeWeights) -> None:
    """The profile's num_latents / k, when given, must match the loaded SAE."""
    expected_n = getattr(spec, "num_latents", None)
    if expected_n is not None and int(expected_n) != weights.n_latents:
        raise SaeMismatchError(
            f"SAE `{weights.sae_id}` has {weights.n_latents} latents but the profile says num_latents = "
            f"{expected_n}; fix the profile (or set num_latents to null to accept any width)."
        )
    expected_k = getattr(spec, "k", None)
    if expected_k is not None and weights.activation == "topk" and int(expected_k) != weights.k:
        raise SaeMismatchError(
            f"SAE `{weights.sae_id}` is TopK with k = {weights.k} but the profile says k = {expected_k}; "
            "fix the profile (or set k to null)."
        )


def _sae_folder(local: Path, sae_id: str, *needed: str) -> Path:
    for folder in ([local / sae_id] if sae_id else []) + [local]:
        if all((folder / name).is_file() for name in needed):
            return folder
    raise FileNotFoundError(
        f"No SAE files {list(needed)} in {local / sae_id if sae_id else local}; the folder must hold an SAE "
        "saved by the library (sparsify save_to_disk / SAELens save_model), one sub-folder per id."
    )


# --------------------------------------------------------------------------- encoding
def _validate_acts(acts, sae: SaeWeights | None, *, name: str = "acts") -> np.ndarray:
    array = np.asarray(acts)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (tokens x d_in); got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"`{name}` must be floating point; got dtype {array.dtype}.")
    if sae is not None:
        check_d_in(sae, array, what=name)
    return array


def _torch_params(sae: SaeWeights):
    import torch

    params = {
        "W_enc": torch.from_numpy(sae.W_enc),
        "b_enc": torch.from_numpy(sae.b_enc),
        "b_dec": torch.from_numpy(sae.b_dec),
    }
    if sae.threshold is not None:
        params["threshold"] = torch.from_numpy(sae.threshold)
    if sae.rescale_acts_by_decoder_norm:
        params["dec_norm"] = torch.from_numpy(np.linalg.norm(sae.W_dec, axis=1).astype(np.float32))
    return params


def _normalise_in(sae: SaeWeights, x):
    """SAELens's run-time input normalisation (torch, per token)."""
    if sae.normalize_activations == "constant_norm_rescale":
        return x * ((sae.d_in**0.5) / x.norm(dim=-1, keepdim=True))
    if sae.normalize_activations == "layer_norm":
        x = x - x.mean(dim=-1, keepdim=True)
        return x / (x.std(dim=-1, keepdim=True) + LAYER_NORM_EPS)
    return x


def _hidden_pre(sae: SaeWeights, x, params):
    x = _normalise_in(sae, x)
    if sae.apply_b_dec_to_input:
        x = x - params["b_dec"]
    return x @ params["W_enc"] + params["b_enc"]


def _rows_per_batch(sae: SaeWeights, batch_size: int) -> int:
    return max(1, min(int(batch_size), MAX_DENSE_ELEMENTS // max(1, sae.n_latents)))


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="tok", unit_scale=True, disable=not enabled or None, leave=False)


def encode(
    sae: SaeWeights,
    acts,
    *,
    codes: CodesMode = "sae",
    batch_size: int = DEFAULT_BATCH,
    progress: bool = True,
) -> sp.csr_matrix:
    """Encode activations into sparse codes (CSR), exactly as the SAE's library does.

    Parameters
    ----------
    sae : SaeWeights
    acts : ndarray, shape (n_tokens, d_in)
        Activations captured at ``sae.hook`` (any float dtype; computed in fp32).
    codes : {"sae", "relu_preact"}, default "sae"
        ``"sae"``: the SAE's real codes (TopK / JumpReLU / ReLU).
        ``"relu_preact"``: ReLU of the encoder pre-activations, before any TopK
        or threshold (dense; the authors' sparsify ``pre_acts``, compat only).
    batch_size : int, default 4096
        Token rows per batch (capped so one dense batch has at most
        ``MAX_DENSE_ELEMENTS`` entries).
    progress : bool, default True
        Show a ``tqdm`` bar when there is more than one batch.

    Returns
    -------
    scipy.sparse.csr_matrix of float32, shape (n_tokens, n_latents)
        Sorted indices, no explicit zeros.

    Raises
    ------
    SaeMismatchError
        If ``acts`` does not have ``sae.d_in`` columns.

    Notes
    -----
    With ``h = norm(x) - b_dec * apply_b_dec_to_input`` and
    ``z = h W_enc + b_enc``: TopK keeps the k largest ``z`` (times the decoder
    norms under ``rescale_acts_by_decoder_norm``) and applies ReLU; JumpReLU
    gives ``ReLU(z) * (z > threshold)``; standard SAEs ``ReLU(z)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> w = SaeWeights(rng.normal(size=(4, 8)), np.zeros(8), rng.normal(size=(8, 4)), np.zeros(4),
    ...                None, 2, "topk", "h", "s", "test")
    >>> codes = encode(w, rng.normal(size=(3, 4)))
    >>> codes.shape, int(codes.getnnz(axis=1).max()) <= 2
    ((3, 8), True)
    """
    import torch

    if codes not in ("sae", "relu_preact"):
        raise ValueError(f"`codes` must be 'sae' or 'relu_preact'; got {codes!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    acts = _validate_acts(acts, sae)
    n_tokens = acts.shape[0]
    rows = _rows_per_batch(sae, batch_size)
    params = _torch_params(sae)
    data_parts, index_parts, count_parts = [], [], []
    bar = _progress(n_tokens, f"encode {sae.hook}", progress and n_tokens > rows)
    with torch.inference_mode(), bar:
        for start in range(0, n_tokens, rows):
            x = torch.from_numpy(np.ascontiguousarray(acts[start : start + rows], dtype=np.float32))
            z = _hidden_pre(sae, x, params)
            if codes == "relu_preact" or sae.activation in ("jumprelu", "relu"):
                if codes == "sae" and sae.activation == "jumprelu":
                    mask = (z > 0) & (z > params["threshold"])
                else:
                    mask = z > 0
                nz = torch.nonzero(mask)  # row-major, so already CSR-ordered
                data_parts.append(z[mask].numpy())
                index_parts.append(nz[:, 1].numpy().astype(np.int32))
                count_parts.append(mask.sum(dim=1).numpy())
            else:
                if sae.rescale_acts_by_decoder_norm:
                    z = z * params["dec_norm"]
                values, indices = torch.topk(z, sae.k, dim=-1, sorted=False)
                values = values.relu()
                indices = indices.numpy().astype(np.int32)
                values = values.numpy()
                order = np.argsort(indices, axis=1, kind="stable")
                indices = np.take_along_axis(indices, order, axis=1)
                values = np.take_along_axis(values, order, axis=1)
                keep = values > 0
                data_parts.append(values[keep])
                index_parts.append(indices[keep])
                count_parts.append(keep.sum(axis=1))
            bar.update(x.shape[0])
    counts = np.concatenate(count_parts) if count_parts else np.zeros(0, dtype=np.int64)
    indptr = np.zeros(n_tokens + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    data = np.concatenate(data_parts).astype(np.float32, copy=False) if data_parts else np.zeros(0, np.float32)
    indices = np.concatenate(index_parts) if index_parts else np.zeros(0, np.int32)
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_tokens, sae.n_latents))


def _decode_batch(sae: SaeWeights, codes_batch: sp.csr_matrix, x: np.ndarray, w_dec: np.ndarray) -> np.ndarray:
    recon = np.asarray(codes_batch @ w_dec, dtype=np.float64) + sae.b_dec
    if sae.normalize_activations == "constant_norm_rescale":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        recon = recon * (norm / (sae.d_in**0.5))
    elif sae.normalize_activations == "layer_norm":
        mu = x.mean(axis=1, keepdims=True)
        std = (x - mu).std(axis=1, ddof=1, keepdims=True)
        recon = recon * std + mu
    return recon


def reconstruct(sae: SaeWeights, acts, codes_csr, *, batch_size: int = DEFAULT_BATCH * 4) -> np.ndarray:
    """Decode codes back to activation space (``codes @ W_dec + b_dec``, normalisation undone).

    Returns float32 (n_tokens, d_in). Meant for checks on small inputs; use
    :func:`fvu` for a streaming error measure.
    """
    acts = _validate_acts(acts, sae)
    codes_csr = _validate_codes_for(sae, acts, codes_csr)
    w_dec = _effective_w_dec(sae)
    out = np.empty(acts.shape, dtype=np.float32)
    for start in range(0, acts.shape[0], batch_size):
        stop = start + batch_size
        x = np.asarray(acts[start:stop], dtype=np.float64)
        out[start:stop] = _decode_batch(sae, codes_csr[start:stop], x, w_dec)
    return out


def _effective_w_dec(sae: SaeWeights) -> np.ndarray:
    if sae.rescale_acts_by_decoder_norm:
        norms = np.linalg.norm(sae.W_dec, axis=1, keepdims=True)
        return (sae.W_dec / norms).astype(np.float32)
    return sae.W_dec


def _validate_codes_for(sae: SaeWeights, acts: np.ndarray, codes_csr) -> sp.csr_matrix:
    if not sp.issparse(codes_csr):
        codes_csr = sp.csr_matrix(np.asarray(codes_csr))
    codes_csr = sp.csr_matrix(codes_csr)
    if codes_csr.shape != (acts.shape[0], sae.n_latents):
        raise ValueError(
            f"`codes_csr` has shape {codes_csr.shape}; expected ({acts.shape[0]}, {sae.n_latents}) "
            "(one row per activation row, one column per latent). Encode these activations with this SAE."
        )
    return codes_csr


def code_stats(sae: SaeWeights, acts, codes_csr) -> dict[str, float]:
    """FVU, dead fraction (latents that never fire) and mean L0 of ``codes_csr``, the codes of ``acts``."""
    codes_csr = _validate_codes_for(sae, _validate_acts(acts, sae), codes_csr)
    fires = np.bincount(codes_csr.indices, minlength=sae.n_latents) > 0
    return {"fvu": float(fvu(sae, acts, codes_csr)), "dead_fraction": float(np.mean(~fires)),
            "mean_l0": float(codes_csr.nnz / max(codes_csr.shape[0], 1))}


def fvu(sae: SaeWeights, acts, codes_csr, *, batch_size: int = DEFAULT_BATCH * 4) -> float:
    """Fraction of variance unexplained by the SAE's reconstruction from ``codes_csr``.

    Parameters
    ----------
    sae : SaeWeights
    acts : ndarray, shape (n_tokens, d_in)
    codes_csr : scipy.sparse matrix, shape (n_tokens, n_latents)
        Codes of ``acts`` (from :func:`encode`).
    batch_size : int, default 16384

    Returns
    -------
    float
        ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over the given rows
        (fp64 accumulation), with ``x_hat = codes @ W_dec + b_dec`` and the
        SAE's input normalisation undone. 0 is perfect; 1 is no better than
        predicting the mean. nan if the activations have no variance.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> w = SaeWeights(np.eye(3), np.zeros(3), np.eye(3), np.zeros(3), None, None, "relu", "h", "s", "t")
    >>> x = np.abs(rng.normal(size=(5, 3)))
    >>> round(fvu(w, x, encode(w, x)), 6)
    0.0
    """
    acts = _validate_acts(acts, sae)
    codes_csr = _validate_codes_for(sae, acts, codes_csr)
    n_tokens = acts.shape[0]
    if n_tokens == 0:
        raise ValueError("`acts` has no rows; FVU needs at least one token.")
    w_dec = _effective_w_dec(sae)
    mean = np.zeros(sae.d_in, dtype=np.float64)
    for start in range(0, n_tokens, batch_size):
        mean += np.asarray(acts[start : start + batch_size], dtype=np.float64).sum(axis=0)
    mean /= n_tokens
    err = 0.0
    total = 0.0
    for start in range(0, n_tokens, batch_size):
        x = np.asarray(acts[start : start + batch_size], dtype=np.float64)
        recon = _decode_batch(sae, codes_csr[start : start + batch_size], x, w_dec)
        err += float(np.square(x - recon).sum())
        total += float(np.square(x - mean).sum())
    if total == 0.0:
        return float("nan")
    return err / total


def check_fvu(value: float, *, what: str, max_fvu: float = DEFAULT_MAX_FVU) -> None:
    """Raise :class:`SaeMismatchError` if a reconstruction FVU is too high (or not finite).

    Parameters
    ----------
    value : float
        From :func:`fvu`.
    what : str
        Names the SAE and hook in the message, e.g. ``"SAE layers.3 on hook gpt_neox.layers.3"``.
    max_fvu : float, default 0.9
        Largest acceptable FVU.
    """
    value = float(value)
    if math.isfinite(value) and value <= max_fvu:
        return
    raise SaeMismatchError(
        f"{what}: reconstruction FVU is {value:.3f}, above the limit {max_fvu} (1.0 = no better than the mean). "
        "The activations are probably not the ones this SAE was trained on. Check (1) the layer: an off-by-one "
        "hook (HF hidden_states[L] is the *input* of block L, while sparsify `layers.L` and SAELens "
        "`blocks.L.hook_resid_post` read its *output*) — compare the FVU at the neighbouring layer; (2) the "
        "input normalisation (SAELens normalize_activations / norm_scaling_factor, a model's embedding scale); "
        "(3) the model and revision the SAE was trained on. Raise `max_fvu` only for an SAE known to be poor."
    )


@dataclass(frozen=True)
class HookCheck:
    """FVU of one SAE on the activations of several candidate hooks.

    Attributes
    ----------
    hook : str
        The SAE's own hook (where its activations are supposed to come from).
    fvu_by_hook : dict str -> float
        FVU on each candidate's activations (the first ``n_tokens`` rows).
    best_hook : str
        The candidate with the lowest FVU.
    n_tokens : int
    """

    hook: str
    fvu_by_hook: dict
    best_hook: str
    n_tokens: int

    @property
    def ok(self) -> bool:
        """True when the SAE reconstructs its own hook best."""
        return self.best_hook == self.hook

    @property
    def fvu(self) -> float:
        """FVU at the SAE's own hook."""
        return self.fvu_by_hook[self.hook]


def check_hook(
    sae: SaeWeights,
    acts_by_hook: Mapping[str, np.ndarray],
    *,
    max_tokens: int = 8192,
    max_fvu: float = DEFAULT_MAX_FVU,
    raise_error: bool = True,
) -> HookCheck:
    """Check that the SAE reconstructs its own hook's activations best (off-by-one guard).

    The absolute guard :func:`check_fvu` catches gross mismatches, but
    adjacent residual-stream layers are similar: a MiniLM layer-3 SAE
    (FVU 0.17 on its own layer) still reaches FVU 0.34 on the output of layer 2,
    the exact off-by-one of the authors' ``hidden_states[L]``. Comparing with
    the neighbouring hooks catches it: the SAE reconstructs the mislabelled
    neighbour better than the activations captured under its own name.

    It is a heuristic: it assumes neighbouring hooks are about equally hard
    to reconstruct (true of residual streams of similar norm). Use it as a
    sanity check when the neighbours are captured anyway.

    Parameters
    ----------
    sae : SaeWeights
    acts_by_hook : mapping hook -> ndarray (n_tokens, d_in)
        Activations captured under each hook name; must include ``sae.hook``
        (typically the hooks of layers L-1, L and L+1 of one forward pass).
    max_tokens : int, default 8192
        Rows used per hook (the first ones; all hooks share the token grid).
    max_fvu : float, default 0.9
        The absolute guard applied at ``sae.hook``.
    raise_error : bool, default True
        Raise :class:`SaeMismatchError` on failure; otherwise only return.

    Returns
    -------
    HookCheck
    """
    if sae.hook not in acts_by_hook:
        raise ValueError(
            f"`acts_by_hook` has no activations for the SAE's hook `{sae.hook}` (got {sorted(acts_by_hook)}); "
            "capture it together with its neighbours."
        )
    result = {}
    n_used = 0
    for hook, acts in acts_by_hook.items():
        acts = _validate_acts(acts, sae, name=f"acts_by_hook[{hook!r}]")[:max_tokens]
        n_used = acts.shape[0]
        result[hook] = fvu(sae, acts, encode(sae, acts, progress=False))
    finite = {h: v for h, v in result.items() if math.isfinite(v)}
    best = min(finite, key=finite.get) if finite else sae.hook
    check = HookCheck(hook=sae.hook, fvu_by_hook=result, best_hook=best, n_tokens=n_used)
    if raise_error:
        check_fvu(check.fvu, what=f"SAE `{sae.sae_id}` at hook `{sae.hook}`", max_fvu=max_fvu)
        if not check.ok:
            raise SaeMismatchError(
                f"SAE `{sae.sae_id}` reconstructs the activations captured as `{best}` better (FVU "
                f"{result[best]:.3f}) than those captured as its own hook `{sae.hook}` (FVU {check.fvu:.3f}). "
                "The capture is probably off by one layer (HF hidden_states[L] is the input of block L; "
                "sparsify `layers.L` / SAELens `blocks.L.hook_resid_post` are its output): check how the hook "
                "names map to modules."
            )
    return check


def check_d_in(sae: SaeWeights, acts, *, what: str) -> None:
    """Raise :class:`SaeMismatchError` if ``acts`` is not ``sae.d_in`` wide."""
    width = np.shape(acts)[-1] if np.ndim(acts) else None
    if width != sae.d_in:
        raise SaeMismatchError(
            f"`{what}` has width {width} (shape {np.shape(acts)}) but SAE `{sae.sae_id}` expects d_in = "
            f"{sae.d_in} at hook `{sae.hook}`. The activations come from another model or hook than the SAE "
            "was trained on: check the profile's model and the SAE's hook."
        )


# --------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainedSae:
    """A TopK SAE trained by :func:`train_topk_sae`, with its quality on the training activations.

    Attributes
    ----------
    weights : SaeWeights
    fvu : float
        FVU of the final SAE on all training activations.
    dead_fraction : float
        Fraction of latents that never fire on the training activations.
    mean_l0 : float
        Mean active latents per token (k, less where fewer than k are positive).
    seconds : float
        Wall-clock training time (final evaluation included).
    n_tokens : int
    epochs, seed : int
    lr : float
    optimizer : str
    history : tuple of float
        Mean training FVU of each epoch.
    """

    weights: SaeWeights
    fvu: float
    dead_fraction: float
    mean_l0: float
    seconds: float
    n_tokens: int
    epochs: int
    seed: int
    lr: float
    optimizer: str = "signum"
    history: tuple[float, ...] = ()

    def summary(self) -> dict:
        """One tidy-table row."""
        return {
            "hook": self.weights.hook,
            "n_latents": self.weights.n_latents,
            "k": self.weights.k,
            "n_tokens": self.n_tokens,
            "epochs": self.epochs,
            "seed": self.seed,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "fvu": self.fvu,
            "dead_fraction": self.dead_fraction,
            "mean_l0": self.mean_l0,
            "seconds": self.seconds,
        }


def _int_seed(seed: SeedLike) -> int:
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    return int(as_generator(seed).integers(0, 2**63 - 1))


def default_lr(num_latents: int, optimizer: Literal["signum", "adam"] = "signum") -> float:
    """sparsify's learning-rate rule for ``num_latents`` latents.

    ``"signum"``: ``5e-3 / sqrt(n / 2**14)`` (sparsify's default optimizer);
    ``"adam"``: ``2e-4 / sqrt(n / 2**14)``, doubled for short runs.
    """
    base = 5e-3 if optimizer == "signum" else 2 * 2e-4
    return base / math.sqrt(num_latents / 2**14)


def train_topk_sae(
    acts,
    *,
    num_latents: int,
    k: int,
    seed: SeedLike,
    epochs: int,
    batch_size: int = DEFAULT_BATCH,
    optimizer: Literal["signum", "adam"] = "signum",
    lr: float | None = None,
    auxk_alpha: float = DEFAULT_AUXK_ALPHA,
    dead_tokens: int | None = None,
    hook: str = "",
    sae_id: str = "",
    num_threads: int | None = None,
    progress: bool = True,
    evaluate: bool = True,
) -> TrainedSae:
    """Train a sparsify TopK SAE on cached activations with a plain, seeded torch loop.

    Parameters
    ----------
    acts : ndarray, shape (n_tokens, d_in)
        Training activations (copied once to fp32).
    num_latents, k : int
        Dictionary size and active latents per token.
    seed : int, numpy Generator or None
        Seeds the initialisation and the batch order (torch RNG forked, so the
        global torch state is untouched). Same seed, same data, same thread
        count -> identical weights on CPU.
    epochs : int
        Passes over ``acts``.
    batch_size : int, default 4096
        Tokens per step (capped at ``n_tokens``).
    optimizer : {"signum", "adam"}, default "signum"
        ``"signum"``: sparsify's default, schedule-free SignSGD with momentum
        0.95 (best in few steps: one epoch of 168k MiniLM tokens reaches the
        FVU that Adam needs three epochs for). ``"adam"``: Adam with a linear
        decay to 0 over the last 20 % of steps.
    lr : float, optional
        Default :func:`default_lr`.
    auxk_alpha : float, default 1/32
        Weight of sparsify's AuxK loss, which lets latents that have not fired
        for ``dead_tokens`` tokens predict the residual. 0 disables it.
    dead_tokens : int, optional
        Default ``min(n_tokens // 4, 10_000_000)`` (at least one batch).
    hook, sae_id : str
        Recorded in the returned weights.
    num_threads : int, optional
        torch CPU threads during training (restored afterwards); default: leave
        torch's setting. Use 1 for tiny SAEs: their steps are too small to
        split, and on a busy machine OpenMP's spinning threads can make them
        tens of times slower.
    progress : bool, default True
    evaluate : bool, default True
        Encode ``acts`` once more with the final weights for the returned FVU,
        dead fraction and mean L0. A caller that encodes these rows anyway
        (extraction encodes every token) passes False and fills them in with
        :func:`code_stats`; they are NaN until then.

    Returns
    -------
    TrainedSae

    Notes
    -----
    sparsify's recipe: ``b_dec`` starts at the mean activation; each step
    computes ``fvu + auxk_alpha * auxk_loss`` from ``Sae.forward(x,
    dead_mask=...)``, back-propagates, removes the gradient component parallel
    to each decoder row, steps the optimizer and renormalises the decoder rows
    to unit norm. With the schedule-free optimizer the averaged weights are
    taken at the end (``optimizer.eval()``, as sparsify's Trainer saves them)
    and the decoder row norms are folded into the encoder, so the saved
    decoder rows have unit norm and reconstructions are unchanged.
    """
    import torch

    sparsify = _import_sparsify()
    acts = _validate_acts(acts, None)
    n_tokens, d_in = acts.shape
    for name, value in (("num_latents", num_latents), ("k", k), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    if k > num_latents:
        raise ValueError(f"`k` ({k}) cannot exceed `num_latents` ({num_latents}).")
    if n_tokens < 2:
        raise ValueError(f"`acts` has {n_tokens} rows; training needs at least 2 tokens.")
    if not np.all(np.isfinite(acts)):
        raise ValueError("`acts` contains NaN or infinite values; check the captured activations.")
    seed_int = _int_seed(seed)
    batch = min(int(batch_size), n_tokens)
    steps_per_epoch = math.ceil(n_tokens / batch)
    total_steps = steps_per_epoch * int(epochs)
    if optimizer not in ("signum", "adam"):
        raise ValueError(f"`optimizer` must be 'signum' or 'adam'; got {optimizer!r}.")
    lr = default_lr(num_latents, optimizer) if lr is None else float(lr)
    dead_tokens = min(max(n_tokens // 4, batch), 10_000_000) if dead_tokens is None else int(dead_tokens)

    started = time.perf_counter()
    with _torch_threads(num_threads):
        return _train_loop(
            acts, sparsify, num_latents=int(num_latents), k=int(k), seed_int=seed_int, epochs=int(epochs),
            batch=batch, optimizer=optimizer, lr=lr, auxk_alpha=float(auxk_alpha), dead_tokens=dead_tokens,
            total_steps=total_steps, hook=hook, sae_id=sae_id, progress=progress, started=started,
            evaluate=bool(evaluate),
        )


@contextlib.contextmanager
def _torch_threads(num_threads: int | None):
    import torch

    if num_threads is None:
        yield
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"`num_threads` must be a positive integer or None; got {num_threads!r}.")
    before = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_loop(
    acts, sparsify, *, num_latents, k, seed_int, epochs, batch, optimizer, lr, auxk_alpha, dead_tokens,
    total_steps, hook, sae_id, progress, started, evaluate,
) -> TrainedSae:
    import torch

    n_tokens, d_in = acts.shape
    decay_from = 0.8
    x_all = torch.from_numpy(np.ascontiguousarray(acts, dtype=np.float32))
    history = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_int)
        generator = torch.Generator().manual_seed(seed_int)
        sae = sparsify.Sae(d_in, sparsify.SaeConfig(num_latents=int(num_latents), k=int(k)), device="cpu")
        with torch.no_grad():
            sae.b_dec.copy_(x_all.mean(dim=0))
        if optimizer == "signum":
            from schedulefree import ScheduleFreeWrapper
            from sparsify.sign_sgd import SignSGD

            opt = ScheduleFreeWrapper(SignSGD(sae.parameters(), lr=lr), momentum=0.95)
            opt.train()
        else:
            opt = torch.optim.Adam(sae.parameters(), lr=lr)
        since_fired = torch.zeros(int(num_latents), dtype=torch.long)
        step = 0
        bar = _progress(total_steps * batch, f"train SAE {hook or sae_id}", progress)
        with bar:
            for _ in range(int(epochs)):
                order = torch.randperm(n_tokens, generator=generator)
                fvu_sum = 0.0
                for start in range(0, n_tokens, batch):
                    x = x_all[order[start : start + batch]]
                    dead = since_fired > dead_tokens if auxk_alpha > 0 else None
                    out = sae(x, dead_mask=dead)
                    loss = out.fvu + auxk_alpha * out.auxk_loss if auxk_alpha > 0 else out.fvu
                    loss.backward()
                    sae.remove_gradient_parallel_to_decoder_directions()
                    if optimizer == "adam":
                        frac = step / total_steps
                        scale = 1.0 if frac < decay_from else max(0.0, (1.0 - frac) / (1.0 - decay_from))
                        for group in opt.param_groups:
                            group["lr"] = lr * scale
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    sae.set_decoder_norm_to_unit_norm()
                    with torch.no_grad():
                        fired = torch.zeros(int(num_latents), dtype=torch.bool)
                        fired[out.latent_indices.flatten()] = True
                        since_fired += x.shape[0]
                        since_fired[fired] = 0
                    fvu_sum += float(out.fvu.detach()) * x.shape[0]
                    step += 1
                    bar.update(x.shape[0])
                history.append(fvu_sum / n_tokens)
        if optimizer == "signum":
            opt.eval()  # the schedule-free average
        with torch.no_grad():  # unit-norm decoder rows, same reconstructions
            norms = sae.W_dec.norm(dim=1).clamp_min(torch.finfo(sae.W_dec.dtype).tiny)
            sae.W_dec.div_(norms[:, None])
            sae.encoder.weight.mul_(norms[:, None])
            sae.encoder.bias.mul_(norms)
    weights = weights_from_sparsify(sae, hook=hook or sae_id, sae_id=sae_id, source="train")
    nan = float("nan")
    stats = code_stats(weights, acts, encode(weights, acts, progress=False)) if evaluate else \
        {"fvu": nan, "dead_fraction": nan, "mean_l0": nan}
    seconds = time.perf_counter() - started
    result = TrainedSae(
        weights=weights,
        **stats,
        seconds=float(seconds),
        n_tokens=int(n_tokens),
        epochs=int(epochs),
        seed=seed_int,
        lr=lr,
        optimizer=optimizer,
        history=tuple(float(h) for h in history),
    )
    logger.info(
        "trained TopK SAE %s: %d tokens, %d latents, k=%d, FVU %.3f, dead %.1f%%, %.1fs",
        hook or sae_id, n_tokens, num_latents, k, result.fvu, 100 * result.dead_fraction, seconds,
    )
    return result


# --------------------------------------------------------------------------- saving
@contextlib.contextmanager
def _atomic_dir(target: Path):
    """Yield a temporary sibling folder; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}."))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".old-{target.name}.{os.getpid()}.{time.monotonic_ns()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_sparsify(weights_or_sae, directory: str | os.PathLike) -> Path:
    """Write an SAE in sparsify's on-disk format (``cfg.json`` + ``sae.safetensors``).

    Parameters
    ----------
    weights_or_sae : SaeWeights or sparsify.Sae
        A TopK SAE with plain input handling (what sparsify can express).
    directory : path
        The SAE's folder (replaced atomically if it exists).

    Returns
    -------
    Path
        ``directory``. It loads with ``sparsify.Sae.load_from_disk`` and
        :func:`load_sae`.
    """
    import torch

    sparsify = _import_sparsify()
    if isinstance(weights_or_sae, SaeWeights):
        w = weights_or_sae
        if (
            w.activation != "topk"
            or not w.apply_b_dec_to_input
            or w.normalize_activations != "none"
            or w.rescale_acts_by_decoder_norm
        ):
            raise SaeFormatError(
                f"SAE `{w.sae_id}` ({w.activation}, normalize={w.normalize_activations!r}, apply_b_dec_to_input="
                f"{w.apply_b_dec_to_input}) cannot be expressed in sparsify's format, which is TopK with b_dec "
                "subtracted and no normalisation; save it with save_saelens instead."
            )
        sae = sparsify.Sae(w.d_in, sparsify.SaeConfig(num_latents=w.n_latents, k=w.k), device="cpu")
        sae.load_state_dict(
            {
                "encoder.weight": torch.from_numpy(np.ascontiguousarray(w.W_enc.T)),
                "encoder.bias": torch.from_numpy(w.b_enc),
                "W_dec": torch.from_numpy(w.W_dec),
                "b_dec": torch.from_numpy(w.b_dec),
            }
        )
    else:
        sae = weights_or_sae
        if not hasattr(sae, "save_to_disk"):
            raise TypeError(f"`weights_or_sae` must be SaeWeights or a sparsify.Sae; got {type(sae).__name__}.")
    directory = Path(directory)
    with _atomic_dir(directory) as tmp:
        sae.save_to_disk(tmp)
        write_manifest(tmp, extra={"writer": "saesim.extract.saes.save_sparsify"})
    return directory


def save_saelens(
    weights: SaeWeights,
    directory: str | os.PathLike,
    *,
    architecture: Literal["topk", "jumprelu", "standard"] = "topk",
    model_name: str | None = None,
) -> Path:
    """Write an SAE in SAELens's on-disk format (``cfg.json`` + ``sae_weights.safetensors``).

    Parameters
    ----------
    weights : SaeWeights
        For ``"jumprelu"`` it must carry thresholds (``activation="jumprelu"``);
        for ``"topk"`` a k; ``"standard"`` is a plain ReLU SAE.
    directory : path
        The SAE's folder (replaced atomically if it exists).
    architecture : {"topk", "jumprelu", "standard"}, default "topk"
    model_name : str, optional
        Recorded in the SAE's metadata.

    Returns
    -------
    Path
        ``directory``; it loads with ``sae_lens.SAE.load_from_disk`` and :func:`load_sae`.

    Notes
    -----
    The conversion from a sparsify SAE is exact (toolchain.md §4):
    ``W_enc = encoder.weight.T``, ``apply_b_dec_to_input=True``. SAELens's own
    ``sparsify_disk_loader`` is not used: it fails on eai-sparsify 1.3.3 files.
    """
    import torch
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    wanted = {"topk": "topk", "jumprelu": "jumprelu", "standard": "relu"}
    if architecture not in wanted:
        raise ValueError(f"`architecture` must be one of {sorted(wanted)}; got {architecture!r}.")
    if weights.activation != wanted[architecture]:
        raise SaeFormatError(
            f"SAE `{weights.sae_id}` has activation {weights.activation!r}, which does not match architecture "
            f"{architecture!r}; build the weights for that architecture first (e.g. jumprelu_thresholds)."
        )
    metadata = SAEMetadata(hook_name=weights.hook, model_name=model_name, sae_id=weights.sae_id)
    common = dict(
        d_in=weights.d_in,
        d_sae=weights.n_latents,
        dtype="float32",
        device="cpu",
        apply_b_dec_to_input=weights.apply_b_dec_to_input,
        normalize_activations=weights.normalize_activations,
        metadata=metadata,
    )
    state = {
        "W_enc": torch.from_numpy(weights.W_enc),
        "b_enc": torch.from_numpy(weights.b_enc),
        "W_dec": torch.from_numpy(weights.W_dec),
        "b_dec": torch.from_numpy(weights.b_dec),
    }
    if architecture == "topk":
        sae = TopKSAE(
            TopKSAEConfig(k=weights.k, rescale_acts_by_decoder_norm=weights.rescale_acts_by_decoder_norm, **common)
        )
    elif architecture == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(**common))
        state["threshold"] = torch.from_numpy(weights.threshold)
    else:
        sae = StandardSAE(StandardSAEConfig(**common))
    sae.load_state_dict(state)
    directory = Path(directory)
    with _atomic_dir(directory) as tmp:
        sae.save_model(tmp)
        write_manifest(tmp, extra={"writer": "saesim.extract.saes.save_saelens"})
    return directory


def jumprelu_thresholds(sae: SaeWeights, acts, *, quantile: float = 0.0, batch_size: int = DEFAULT_BATCH) -> SaeWeights:
    """Turn a TopK SAE into a JumpReLU SAE with thresholds read off its TopK codes.

    Each latent's threshold is the ``quantile`` of its positive TopK
    activations on ``acts`` (0.0 = just below its smallest one, so the
    JumpReLU codes contain every TopK code). A latent that never enters the
    TopK gets its largest pre-activation on ``acts``, so it stays silent there.

    Returns
    -------
    SaeWeights
        ``activation="jumprelu"``, same encoder/decoder, ``k=None``.
    """
    import torch

    if sae.activation != "topk":
        raise ValueError(f"`sae` must be a TopK SAE; got activation {sae.activation!r}.")
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f"`quantile` must be in [0, 1); got {quantile!r}.")
    acts = _validate_acts(acts, sae)
    codes = encode(sae, acts, batch_size=batch_size, progress=False).tocsc()
    n = sae.n_latents
    thr = np.empty(n, dtype=np.float32)
    max_pre = np.full(n, -np.inf, dtype=np.float32)
    params = _torch_params(sae)
    with torch.inference_mode():
        for start in range(0, acts.shape[0], _rows_per_batch(sae, batch_size)):
            stop = start + _rows_per_batch(sae, batch_size)
            z = _hidden_pre(sae, torch.from_numpy(np.ascontiguousarray(acts[start:stop], dtype=np.float32)), params)
            max_pre = np.maximum(max_pre, z.max(dim=0).values.numpy())
    live = np.diff(codes.indptr) > 0
    thr[~live] = np.maximum(max_pre[~live], 0.0)
    if quantile == 0.0:
        starts = codes.indptr[:-1][live]
        lowest = np.minimum.reduceat(codes.data, starts) if starts.size else np.zeros(0, np.float32)
    else:
        lowest = np.array(
            [np.quantile(codes.data[codes.indptr[j] : codes.indptr[j + 1]], quantile) for j in np.flatnonzero(live)],
            dtype=np.float32,
        )
    thr[live] = np.nextafter(lowest.astype(np.float32), np.float32(-np.inf))
    return dataclasses.replace(sae, activation="jumprelu", threshold=thr, k=None)


def _hook_seed(seed: int, hook: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(hook.encode("utf-8"))) % (2**31 - 1)


def make_tiny_saes(
    acts_by_hook: Mapping[str, np.ndarray],
    out_dir: str | os.PathLike,
    *,
    formats: Mapping[str, str],
    num_latents: int,
    k: int,
    seed: int,
    epochs: int = 30,
    batch_size: int | None = None,
) -> dict[str, Path]:
    """Train small TopK SAEs on tiny-model activations and save them in library formats.

    Parameters
    ----------
    acts_by_hook : mapping hook -> ndarray (n_tokens, d_in)
        Activations captured at each hook.
    out_dir : path
        SAEs go to ``out_dir/<hook>/`` (load with ``location=out_dir``,
        ``sae_id=<hook>``).
    formats : mapping hook -> {"sparsify", "saelens_topk", "saelens_jumprelu"}
        On-disk format per hook (every hook needs one).
    num_latents, k, seed, epochs : int
        Training settings (per hook the seed is derived from ``seed`` and the hook).
    batch_size : int, optional
        Default ``max(64, n_tokens // 16)`` (tiny data needs many steps).

    Returns
    -------
    dict hook -> Path
        Each SAE's folder. A ``saesim_train.json`` beside the library files
        records FVU, dead fraction and settings.
    """
    out_dir = Path(out_dir)
    missing = [h for h in acts_by_hook if h not in formats]
    if missing:
        raise ValueError(f"`formats` has no entry for hooks {missing}; give one of {_TINY_FORMATS} per hook.")
    paths = {}
    for hook, acts in acts_by_hook.items():
        fmt = formats[hook]
        if fmt not in _TINY_FORMATS:
            raise ValueError(f"`formats[{hook!r}]` must be one of {_TINY_FORMATS}; got {fmt!r}.")
        if not hook or "/" in hook or hook.startswith("."):
            raise ValueError(f"hook name {hook!r} cannot be used as a folder name.")
        acts = _validate_acts(acts, None, name=f"acts_by_hook[{hook!r}]")
        bs = batch_size or max(64, acts.shape[0] // 16)
        trained = train_topk_sae(
            acts, num_latents=num_latents, k=k, seed=_hook_seed(seed, hook), epochs=epochs,
            batch_size=bs, hook=hook, sae_id=hook, num_threads=1, progress=False,
        )
        weights = dataclasses.replace(trained.weights, source="sparsify" if fmt == "sparsify" else "saelens")
        target = out_dir / hook
        if fmt == "sparsify":
            save_sparsify(weights, target)
        elif fmt == "saelens_topk":
            save_saelens(weights, target, architecture="topk")
        else:
            weights = jumprelu_thresholds(weights, acts)
            save_saelens(weights, target, architecture="jumprelu")
        report = dict(trained.summary(), format=fmt)
        if fmt == "saelens_jumprelu":
            report["fvu_jumprelu"] = fvu(weights, acts, encode(weights, acts, progress=False))
        (target / "saesim_train.json").write_text(json.dumps(report, indent=1, default=float))
        paths[hook] = target
    return paths
