"""The explorer's decoder map: paired decoder directions in 2-D (PCA of A, B mapped by Procrustes), drawn with plotly.

:func:`decoder_map` computes the coordinates, :func:`map_figure` draws them
and :func:`map_html` embeds the figure with ``plotly.min.js`` loaded from the
book's ``_static`` folder (:func:`saesim.report.assets.ensure_plotly`), never
from a CDN.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saesim.report._explorer import DEFAULT_MAX_ROWS, ZERO_NORM, finite_2d, nanmean, unit_rows, validate_positive_int
from saesim.validation import SeedLike, as_generator

__all__ = ["DecoderMap", "decoder_map", "map_figure", "map_html", "plotly_bytes"]


@dataclass(frozen=True, eq=False)
class DecoderMap:
    """2-D coordinates of paired decoder directions (see :func:`decoder_map`).

    Attributes
    ----------
    a, b : ndarray of int64, shape (n_points,)
        The pairs drawn.
    xy_a : ndarray of float64, shape (n_points, 2)
        PCA coordinates of the unit A rows.
    xy_b : ndarray of float64, shape (n_points, 2)
        The unit B rows mapped into A's space by the Procrustes fit, in the
        same PCA coordinates.
    explained_variance : ndarray of float64, shape (2,)
        Fraction of the A rows' variance on each axis.
    mean_mapped_cosine : float
        Mean cosine between each A row and its mapped B row (1 = the fit
        superposes the pairs).
    n_pairs : int
        Pairs before subsampling.
    seed : int or None
    """

    a: np.ndarray
    b: np.ndarray
    xy_a: np.ndarray
    xy_b: np.ndarray
    explained_variance: np.ndarray
    mean_mapped_cosine: float
    n_pairs: int
    seed: int | None

    @property
    def n_points(self) -> int:
        return int(self.a.size)

    def to_frame(self):
        """One row per point: ``a``, ``b``, ``x_a``, ``y_a``, ``x_b``, ``y_b``."""
        import pandas as pd

        return pd.DataFrame({"a": self.a, "b": self.b, "x_a": self.xy_a[:, 0], "y_a": self.xy_a[:, 1],
                             "x_b": self.xy_b[:, 0], "y_b": self.xy_b[:, 1]})


def decoder_map(decoder_a, decoder_b, pairs, *, max_points: int | None = DEFAULT_MAX_ROWS,
                seed: SeedLike = 0) -> DecoderMap:
    """Project paired decoder directions to 2-D: PCA of the A rows, B rows mapped by orthogonal Procrustes.

    Parameters
    ----------
    decoder_a : array_like, shape (n_a, d_a)
    decoder_b : array_like, shape (n_b, d_b)
        Decoder rows of the two SAEs; the widths may differ.
    pairs : saesim.compare.match.Pairs or (a, b) tuple of int arrays
        The pairs to draw (row i of ``a`` with row i of ``b``).
    max_points : int or None, default 2000
        Pairs drawn at most; larger sets are subsampled (seeded). The fit
        uses all pairs.
    seed : int, numpy.random.Generator or None, default 0
        Seed of the subsample.

    Returns
    -------
    DecoderMap

    Raises
    ------
    ValueError
        Fewer than 2 pairs, indices outside the decoders, non-finite rows,
        a width below 2, or ``max_points`` not a positive integer.

    Notes
    -----
    Rows are scaled to unit norm (a latent is a direction). The map is
    ``R = U V^T`` from the thin SVD ``Y^T X = U S V^T`` of the paired rows,
    the (semi-)orthogonal ``R`` minimising ``||Y R - X||_F`` (when the widths
    differ, the narrower side is zero-padded; :func:`saesim.compare.geometry.procrustes`
    scores the same fit). The axes are the first two principal components
    of the A rows, signed so that each axis's largest loading is positive.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> wa = rng.standard_normal((30, 8))
    >>> q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> m = decoder_map(wa, wa @ q, (np.arange(30), np.arange(30)))
    >>> round(m.mean_mapped_cosine, 6), bool(np.allclose(m.xy_a, m.xy_b))
    (1.0, True)
    """
    wa = finite_2d(decoder_a, "decoder_a")
    wb = finite_2d(decoder_b, "decoder_b")
    if hasattr(pairs, "a") and hasattr(pairs, "b"):
        a, b = np.asarray(pairs.a, dtype=np.int64), np.asarray(pairs.b, dtype=np.int64)
    else:
        try:
            a, b = (np.asarray(x, dtype=np.int64).reshape(-1) for x in pairs)
        except (TypeError, ValueError):
            raise ValueError("`pairs` must be a saesim.compare.match.Pairs or an (a, b) tuple of latent index arrays; "
                             f"got {type(pairs).__name__}.") from None
    if a.shape != b.shape:
        raise ValueError(f"`pairs` has {a.size} A indices but {b.size} B indices; they must pair up.")
    if a.size < 2:
        raise ValueError(f"`pairs` holds {a.size} pairs; a map needs at least 2 (relax the filters or pick "
                         "another layer pair).")
    for name, idx, w in (("a", a, wa), ("b", b, wb)):
        if idx.min() < 0 or idx.max() >= w.shape[0]:
            raise ValueError(f"`pairs.{name}` holds indices outside [0, {w.shape[0]}) of `decoder_{name}`; pass the "
                             "decoders the pairs were computed for.")
    for name, w in (("decoder_a", wa), ("decoder_b", wb)):
        if w.shape[1] < 2:
            raise ValueError(f"`{name}` has width {w.shape[1]}; a 2-D map needs width >= 2.")
    if max_points is not None:
        validate_positive_int(max_points, "max_points")
    rng = as_generator(seed)
    x, _ = unit_rows(wa[a])
    y, _ = unit_rows(wb[b])
    u, _, vt = np.linalg.svd(y.T @ x, full_matrices=False)
    mapped = y @ (u @ vt)
    norms = np.linalg.norm(mapped, axis=1) * np.linalg.norm(x, axis=1)
    cos = np.sum(mapped * x, axis=1) / np.where(norms > ZERO_NORM, norms, np.nan)
    mean = x.mean(axis=0)
    _, s, comps = np.linalg.svd(x - mean, full_matrices=False)
    comps = comps[:2]
    signs = np.sign(comps[np.arange(comps.shape[0]), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    total = float(np.sum(s ** 2))
    explained = (s[:2] ** 2 / total) if total > 0 else np.full(2, np.nan)
    keep = np.arange(a.size)
    if max_points is not None and a.size > max_points:
        keep = np.sort(rng.choice(a.size, size=int(max_points), replace=False))
    xy_a = (x[keep] - mean) @ comps.T
    xy_b = (mapped[keep] - mean) @ comps.T
    return DecoderMap(a=a[keep], b=b[keep], xy_a=xy_a, xy_b=xy_b, explained_variance=np.asarray(explained),
                      mean_mapped_cosine=nanmean(cos), n_pairs=int(a.size),
                      seed=seed if isinstance(seed, numbers.Integral) else None)


def map_figure(dmap: DecoderMap, *, hover_a=None, hover_b=None, color=None, color_label: str = "r",
               title: str = ""):
    """A plotly figure of a :class:`DecoderMap`: A points, mapped B points, a segment per pair.

    Parameters
    ----------
    dmap : DecoderMap
    hover_a, hover_b : sequence of str, optional
        Hover text of each point (e.g. the latents' top tokens), in the order of ``dmap.a``.
    color : sequence of float, optional
        Colour of the A points (e.g. r); default one colour.
    color_label : str, default "r"
    title : str
    """
    import plotly.graph_objects as go

    n = dmap.n_points
    hover_a = [f"A {i}" for i in dmap.a] if hover_a is None else list(hover_a)
    hover_b = [f"B {j}" for j in dmap.b] if hover_b is None else list(hover_b)
    if len(hover_a) != n or len(hover_b) != n:
        raise ValueError(f"`hover_a` and `hover_b` need one text per point ({n}); got {len(hover_a)} and "
                         f"{len(hover_b)}.")
    seg_x = np.column_stack([dmap.xy_a[:, 0], dmap.xy_b[:, 0], np.full(n, np.nan)]).ravel()
    seg_y = np.column_stack([dmap.xy_a[:, 1], dmap.xy_b[:, 1], np.full(n, np.nan)]).ravel()
    marker = dict(size=7, line=dict(width=0.5, color="white"))
    if color is not None:
        marker.update(color=np.asarray(color, dtype=float), colorscale="Magma", showscale=True,
                      colorbar=dict(title=color_label))
    fig = go.Figure([
        go.Scatter(x=seg_x, y=seg_y, mode="lines", line=dict(color="rgba(120,120,120,0.35)", width=1),
                   hoverinfo="skip", name="pair"),
        go.Scatter(x=dmap.xy_b[:, 0], y=dmap.xy_b[:, 1], mode="markers", name="B (mapped)",
                   marker=dict(size=6, symbol="x", color="rgba(40,120,180,0.7)"), text=hover_b,
                   hovertemplate="%{text}<extra></extra>"),
        go.Scatter(x=dmap.xy_a[:, 0], y=dmap.xy_a[:, 1], mode="markers", name="A", marker=marker, text=hover_a,
                   hovertemplate="%{text}<extra></extra>"),
    ])
    ev = dmap.explained_variance
    fig.update_layout(title=title or None, template="plotly_white", height=560, hovermode="closest",
                      xaxis_title=f"PC 1 of the A rows ({ev[0]:.0%})", yaxis_title=f"PC 2 ({ev[1]:.0%})",
                      legend=dict(orientation="h", y=-0.15), margin=dict(l=40, r=20, t=40, b=40))
    return fig


def map_html(fig, *, static_prefix: str = "../../_static", div_id: str = "decoder-map") -> str:
    """The figure as an HTML fragment whose plotly.js comes from ``<static_prefix>/plotly.min.js``.

    ``static_prefix`` is the site's ``_static`` folder relative to the page
    (book pages live in ``book/generated/``); :func:`saesim.report.build.build_book`
    puts the file there (:func:`saesim.report.assets.ensure_plotly`).
    """
    from saesim.report.assets import PLOTLY_FILE

    return fig.to_html(full_html=False, include_plotlyjs=f"{static_prefix}/{PLOTLY_FILE}", div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def plotly_bytes() -> int:
    """Size of the installed ``plotly.min.js`` (what :func:`saesim.report.assets.ensure_plotly` copies)."""
    import plotly

    from saesim.report.assets import PLOTLY_FILE

    return (Path(plotly.__file__).parent / "package_data" / PLOTLY_FILE).stat().st_size
