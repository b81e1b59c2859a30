"""One SAE as plain float32 arrays (:class:`SaeWeights`), and the errors the SAE modules raise.

:class:`SaeWeights` holds an SAE's encoder, decoder, biases, threshold or k,
and exactly the input handling its library applies, so that encoding
(:mod:`saesim.extract._sae_encode`) is one pure function over any SAE source.
The public names are re-exported by :mod:`saesim.extract.saes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from saesim.errors import HubUnavailableError  # noqa: F401 - re-exported by saesim.extract.saes (one class for all layers)

__all__ = [
    "Activation",
    "HubUnavailableError",
    "SaeCorruptError",
    "SaeFormatError",
    "SaeMismatchError",
    "SaeNormalisationWarning",
    "SaeWeights",
]

Activation = Literal["topk", "jumprelu", "relu"]

_ACTIVATIONS = ("topk", "jumprelu", "relu")
_NORMALISATIONS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm", "covariance_whitening")


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



class SaeNormalisationWarning(UserWarning):
    """The SAE declares an input normalisation that its inference encode does not apply."""


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
