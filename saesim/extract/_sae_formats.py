"""Convert between :class:`SaeWeights` and the sparsify and SAELens SAE objects and on-disk formats.

``weights_from_sparsify`` / ``weights_from_saelens`` read a loaded library
SAE into :class:`SaeWeights`; :func:`save_sparsify` / :func:`save_saelens`
write :class:`SaeWeights` back in the libraries' own on-disk formats (with a
saesim manifest, atomically), so everything loads back through
:func:`saesim.extract.saes.load_sae`. The public names are re-exported by
:mod:`saesim.extract.saes`.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from saesim.extract._integrity import write_manifest
from saesim.extract._sae_weights import SaeFormatError, SaeNormalisationWarning, SaeWeights
from saesim.io import atomic_folder

__all__ = [
    "import_sparsify",
    "save_saelens",
    "save_sparsify",
    "weights_from_saelens",
    "weights_from_sparsify",
]

_SAELENS_ARCH = {"topk": "topk", "jumprelu": "jumprelu", "standard": "relu"}


def import_sparsify():
    """Import ``sparsify`` without its Triton notice on stdout (keeps notebooks clean)."""
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

    sparsify = import_sparsify()
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
    with atomic_folder(directory) as tmp:
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
    with atomic_folder(directory) as tmp:
        sae.save_model(tmp)
        write_manifest(tmp, extra={"writer": "saesim.extract.saes.save_saelens"})
    return directory
