"""Encode activations with an SAE into sparse (CSR) codes, exactly as the SAE's library does.

:func:`encode` builds the codes batch by batch straight into CSR (for TopK
from the top-k indices and values), so a dense token-by-latent matrix never
exists for more than one batch; :func:`jumprelu_thresholds` reads JumpReLU
thresholds off a TopK SAE's codes. The public names are re-exported by
:mod:`saesim.extract.saes`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import scipy.sparse as sp

from saesim.extract._sae_weights import SaeMismatchError, SaeWeights
from saesim.validation import check_positive_int

__all__ = [
    "DEFAULT_BATCH",
    "LAYER_NORM_EPS",
    "MAX_DENSE_ELEMENTS",
    "CodesMode",
    "check_d_in",
    "encode",
    "jumprelu_thresholds",
    "progress_bar",
    "validate_acts",
]

CodesMode = Literal["sae", "relu_preact"]

DEFAULT_BATCH = 4096
"""Token rows per encode / training batch."""

MAX_DENSE_ELEMENTS = 1 << 25
"""Cap on rows x latents of one dense scratch batch during encoding (128 MiB fp32)."""

LAYER_NORM_EPS = 1e-5
"""SAELens's epsilon for ``normalize_activations="layer_norm"``."""


def validate_acts(acts, sae: SaeWeights | None, *, name: str = "acts") -> np.ndarray:
    """``acts`` as an array, checked: 2-D, floating point, and ``sae.d_in`` wide when ``sae`` is given."""
    array = np.asarray(acts)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (tokens x d_in); got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"`{name}` must be floating point; got dtype {array.dtype}.")
    if sae is not None:
        check_d_in(sae, array, what=name)
    return array


def check_d_in(sae: SaeWeights, acts, *, what: str) -> None:
    """Raise :class:`SaeMismatchError` if ``acts`` is not ``sae.d_in`` wide."""
    width = np.shape(acts)[-1] if np.ndim(acts) else None
    if width != sae.d_in:
        raise SaeMismatchError(
            f"`{what}` has width {width} (shape {np.shape(acts)}) but SAE `{sae.sae_id}` expects d_in = "
            f"{sae.d_in} at hook `{sae.hook}`. The activations come from another model or hook than the SAE "
            "was trained on: check the profile's model and the SAE's hook."
        )


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


def progress_bar(total: int, desc: str, enabled: bool):
    """A ``tqdm.auto`` bar counting tokens (disabled unless ``enabled``)."""
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
    check_positive_int(batch_size, "batch_size")
    acts = validate_acts(acts, sae)
    n_tokens = acts.shape[0]
    rows = _rows_per_batch(sae, batch_size)
    params = _torch_params(sae)
    data_parts, index_parts, count_parts = [], [], []
    bar = progress_bar(n_tokens, f"encode {sae.hook}", progress and n_tokens > rows)
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
    acts = validate_acts(acts, sae)
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
