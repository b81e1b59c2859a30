"""Measure how well an SAE reconstructs its activations (FVU, dead fraction, L0) and guard against the wrong hook.

:func:`fvu` decodes sparse codes back and measures the fraction of variance
unexplained; :func:`check_fvu` turns a bad reconstruction (activations from
the wrong hook — e.g. HF ``hidden_states[L]``, the *input* of block L, fed to
an SAE trained on its output — or wrong normalisation) into an error, and
:func:`check_hook` compares the SAE's own hook with its neighbours. The public
names are re-exported by :mod:`saesim.extract.saes`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from saesim.extract._sae_encode import DEFAULT_BATCH, encode, validate_acts
from saesim.extract._sae_weights import SaeMismatchError, SaeWeights

__all__ = ["DEFAULT_MAX_FVU", "HookCheck", "check_fvu", "check_hook", "code_stats", "fvu", "reconstruct"]

DEFAULT_MAX_FVU = 0.9
"""FVU above which the reconstruction guard fails (1.0 = no better than the mean)."""


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
    acts = validate_acts(acts, sae)
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
    codes_csr = _validate_codes_for(sae, validate_acts(acts, sae), codes_csr)
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
    acts = validate_acts(acts, sae)
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
        acts = validate_acts(acts, sae, name=f"acts_by_hook[{hook!r}]")[:max_tokens]
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
