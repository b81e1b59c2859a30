"""Steering-vector transfer, the arithmetic: maps between two residual spaces, vector recipes, efficiency.

A steering vector found in model A at layer l_A is carried into model B's residual space at l_B by
a linear map ``W`` (``v_B = v_A @ W``, shape ``d_A x d_B``), fitted on row pairs ``(x_i, y_i)``:

* :func:`procrustes_map` — the orthogonal Procrustes solution after centring both sides
  (``W = U V^T`` from the SVD of ``X^T Y``; semi-orthogonal when ``d_A != d_B``). It keeps norms and
  angles, so it cannot overfit the pairs by stretching; the book's headline map.
* :func:`lstsq_map` — ridge least squares after centring, ``W = (X^T X + λ I)^-1 X^T Y`` with
  ``λ = ridge * trace(X^T X) / d_A``; on the paired decoder rows (fewer pairs than dimensions can
  happen) and on aligned token activations (the activation-level map of the transfer literature,
  Chen et al. 2025; Bello et al. 2025).
* :func:`random_orthogonal_map` — a Haar-random (semi-)orthogonal map: the null of a map that keeps
  norms but knows nothing.

Vector recipes (both documented in the steering chapter):

* :func:`mean_diff_vector` — mean activation of the rows that carry the concept minus the mean of
  those that do not (or of a contrasting set);
* :func:`decoder_sum_vector` — the sum of the unit decoder rows of the latents assigned to the
  concept (minus those of the contrasting concept).

Transfer efficiency (:func:`matched_effect`, :func:`transfer_efficiency`): the mapped vector's effect
on B divided by B's native vector's effect, both read at the **same side effect** (the KL divergence
the native vector causes at the reference scale), interpolated along each vector's scale curve in
``sqrt(KL)`` (effect grows about linearly in ``sqrt(KL)`` for small pushes). A curve that never
reaches the target side effect is extrapolated from its last segment up to twice its largest
``sqrt(KL)``; beyond that the efficiency is undefined (NaN) rather than guessed.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "decoder_sum_vector",
    "lstsq_map",
    "matched_effect",
    "mean_diff_vector",
    "procrustes_map",
    "random_orthogonal_map",
    "transfer_efficiency",
    "unit",
]

DEFAULT_RIDGE = 1e-2
"""Ridge of :func:`lstsq_map`, relative to the mean eigenvalue of ``X^T X``."""

MAX_EXTRAPOLATION = 2.0
"""How far past its largest ``sqrt(KL)`` a curve is extrapolated (a multiple of it)."""


def _rows(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"`x` and `y` must be paired rows (n, d_a) and (n, d_b); got {x.shape} and {y.shape}.")
    if x.shape[0] < 2:
        raise ValueError(f"a map needs at least 2 row pairs; got {x.shape[0]}.")
    return x - x.mean(axis=0), y - y.mean(axis=0)


def procrustes_map(x, y) -> np.ndarray:
    """Orthogonal Procrustes map from ``x``'s space to ``y``'s, after centring: ``argmin ||X W - Y||``.

    Returns
    -------
    ndarray, shape (d_a, d_b)
        ``U V^T`` from the thin SVD ``X^T Y = U S V^T``: orthonormal rows when ``d_a <= d_b``,
        orthonormal columns otherwise.
    """
    x, y = _rows(x, y)
    u, _, vt = np.linalg.svd(x.T @ y, full_matrices=False)
    return u @ vt


def lstsq_map(x, y, *, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """Ridge least-squares map from ``x``'s space to ``y``'s, after centring (shape ``(d_a, d_b)``)."""
    if not ridge >= 0:
        raise ValueError(f"`ridge` must be >= 0; got {ridge!r}.")
    x, y = _rows(x, y)
    gram = x.T @ x
    lam = ridge * float(np.trace(gram)) / gram.shape[0]
    return np.linalg.solve(gram + lam * np.eye(gram.shape[0]), x.T @ y)


def random_orthogonal_map(d_a: int, d_b: int, rng) -> np.ndarray:
    """A Haar-random map with orthonormal rows (``d_a <= d_b``) or columns, shape ``(d_a, d_b)``."""
    rng = np.random.default_rng(rng)
    m = rng.standard_normal((max(d_a, d_b), min(d_a, d_b)))
    q, r = np.linalg.qr(m)
    q = q * np.sign(np.diag(r))  # Haar measure (Mezzadri 2007)
    return q.T if d_a <= d_b else q


def unit(v) -> np.ndarray:
    """``v / ||v||`` (rows, when 2-D); a zero vector raises."""
    v = np.asarray(v, dtype=np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError("cannot normalise a zero vector (no rows carried the concept?).")
    return v / norm


def mean_diff_vector(acts, plus, minus=None) -> np.ndarray:
    """Mean of ``acts[plus]`` minus the mean of ``acts[minus]`` (default: every other row).

    Raises
    ------
    ValueError
        A side selects no row.
    """
    acts = np.asarray(acts)
    plus = np.asarray(plus, dtype=bool)
    minus = ~plus if minus is None else np.asarray(minus, dtype=bool)
    if plus.shape != (acts.shape[0],) or minus.shape != (acts.shape[0],):
        raise ValueError(f"`plus`/`minus` must be boolean masks over the {acts.shape[0]} rows.")
    if not plus.any() or not minus.any():
        raise ValueError(f"a steering vector needs rows on both sides; got {int(plus.sum())} concept rows and "
                         f"{int(minus.sum())} contrast rows.")
    return acts[plus].astype(np.float64).mean(axis=0) - acts[minus].astype(np.float64).mean(axis=0)


def decoder_sum_vector(decoder, members, contrast=None) -> np.ndarray:
    """Sum of the unit decoder rows of ``members`` (minus that of ``contrast``)."""
    decoder = np.asarray(decoder, dtype=np.float64)
    members = np.asarray(members, dtype=np.int64)
    if members.size == 0:
        raise ValueError("the concept has no member latents; no decoder-sum vector.")
    v = unit(decoder[members]).sum(axis=0)
    if contrast is not None:
        contrast = np.asarray(contrast, dtype=np.int64)
        if contrast.size == 0:
            raise ValueError("the contrasting concept has no member latents; no decoder-sum vector.")
        v = v - unit(decoder[contrast]).sum(axis=0)
    return v


def matched_effect(effect, side_effect, target: float) -> float:
    """The effect a scale curve reaches at side effect ``target`` (see the module docstring).

    Parameters
    ----------
    effect, side_effect : array_like, shape (n_alphas,)
        One vector's mean effect and side effect at increasing scales (``alpha = 0`` may be left
        out: the point (0, 0) is added).
    target : float
        Side effect (KL, nats) at which to read the effect.

    Returns
    -------
    float
        NaN when the curve would need more than :data:`MAX_EXTRAPOLATION` times its reach.
    """
    effect = np.concatenate([[0.0], np.asarray(effect, dtype=np.float64)])
    root = np.sqrt(np.maximum(np.concatenate([[0.0], np.asarray(side_effect, dtype=np.float64)]), 0.0))
    root = np.maximum.accumulate(root)  # KL grows with the scale; flat stretches keep their first point
    t = float(np.sqrt(max(target, 0.0)))
    if not np.isfinite(t) or root[-1] <= 0:
        return float("nan")
    if t <= root[-1]:
        keep = np.concatenate([[True], np.diff(root) > 0])
        return float(np.interp(t, root[keep], effect[keep]))
    if t > MAX_EXTRAPOLATION * root[-1]:
        return float("nan")
    i = int(np.flatnonzero(root < root[-1])[-1]) if np.any(root < root[-1]) else 0
    slope = (effect[-1] - effect[i]) / (root[-1] - root[i])
    return float(effect[-1] + slope * (t - root[-1]))


def transfer_efficiency(mapped_effect, mapped_side, native_effect, native_side, target: float) -> float:
    """Effect of the mapped vector / effect of the native vector, both at side effect ``target``.

    NaN when either curve cannot be read at ``target`` or the native effect there is not positive.
    """
    native = matched_effect(native_effect, native_side, target)
    mapped = matched_effect(mapped_effect, mapped_side, target)
    if not np.isfinite(native) or not np.isfinite(mapped) or native <= 0:
        return float("nan")
    return mapped / native
