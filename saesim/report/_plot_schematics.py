"""The paper's two schematic figures: the method as boxes and arrows (Fig. 1) and the toy pairing (Fig. 2).

Private to :mod:`saesim.report`; import the public names from :mod:`saesim.report.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from saesim.report._plot_style import draw_grid, panel_grid


def toy_pairing_figure(m1, m2, m2_rearranged, scores: Mapping, *, fmt: str = ".2f",
                       cmap: str = "magma") -> Figure:
    """Fig. 2: two toy weight matrices and B's rows rearranged to pair with A's.

    Parameters
    ----------
    m1, m2, m2_rearranged : array_like, shape (n_features, n_dims)
        Model A's matrix, model B's, and B's rows reordered by their best
        partner in A (the paper uses 4 × 3 matrices).
    scores : mapping
        ``{"unpaired": {"SVCCA": s, ...}, "paired": {"SVCCA": s, ...}}``: the
        scores of ``m1`` vs ``m2`` and of ``m1`` vs ``m2_rearranged``,
        computed elsewhere; either key may be left out.
    fmt : str, default ``".2f"``
        Annotation format.
    cmap : str, default ``"magma"``

    Returns
    -------
    matplotlib.figure.Figure
        Three panels with one colour scale; the scores are in the titles of
        the B panels, and the rearranged panel's row labels say which row of
        ``m2`` each one came from.
    """
    matrices = []
    for name, matrix in (("m1", m1), ("m2", m2), ("m2_rearranged", m2_rearranged)):
        array = np.asarray(matrix, dtype=float)
        if array.ndim != 2:
            raise ValueError(f"`{name}` must be a 2-D matrix (features × dims); got shape {array.shape}.")
        matrices.append(array)
    if len({a.shape for a in matrices}) != 1:
        raise ValueError("`m1`, `m2` and `m2_rearranged` must have the same shape; got "
                         f"{[a.shape for a in matrices]}.")
    if not isinstance(scores, Mapping) or not set(scores) <= {"unpaired", "paired"} or \
            not all(isinstance(v, Mapping) for v in scores.values()):
        raise ValueError("`scores` must look like {'unpaired': {'SVCCA': 0.1}, 'paired': {'SVCCA': 0.9}}; "
                         f"got {scores!r}.")
    n_rows, n_cols = matrices[0].shape
    source = []
    for row in matrices[2]:
        match = np.nonzero(np.all(np.isclose(matrices[1], row), axis=1))[0]
        source.append(int(match[0]) if match.size else None)
    labels = [[f"A feature {i + 1}" for i in range(n_rows)], [f"B feature {i + 1}" for i in range(n_rows)]] + [
        [f"B feature {j + 1}" if j is not None else f"row {i + 1}" for i, j in enumerate(source)]]
    titles = ["Model A (m1)",
              "Model B, unpaired (m2)" + _score_line(scores.get("unpaired", {})),
              "Model B, rows paired (m2 rearranged)" + _score_line(scores.get("paired", {}))]
    vmin = float(min(np.nanmin(a) for a in matrices))
    vmax = float(max(np.nanmax(a) for a in matrices))
    fig, axes = panel_grid(3, 3, (0.95 * n_cols + 2.4, 0.6 * n_rows + 1.8))
    for ax, matrix, title, row_labels in zip(axes, matrices, titles, labels):
        grid = pd.DataFrame(matrix, index=row_labels, columns=[f"dim {j + 1}" for j in range(n_cols)])
        draw_grid(ax, grid, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, cbar=False)
        ax.set_title(title, fontsize="medium")
        ax.tick_params(axis="y", rotation=0)
    return fig


def method_diagram() -> Figure:
    """Fig. 1: the method as boxes and arrows (no data).

    Same tokens through both LLMs → SAE codes → pairing by activation
    correlation (with the paper's filters) → decoder rows reordered so paired
    latents line up → SVCCA / RSA, compared with a shuffled-pairing null.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(14.0, 4.4))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, 14)
    ax.set_ylim(0, 4.4)
    ax.axis("off")
    width, height = 1.65, 1.1
    colours = {"data": "#fcfdbf", "model": "#fec287", "sae": "#fb8761", "pair": "#de4968",
               "geom": "#8c2981", "null": "#51127c"}

    def box(x, y, text, kind):
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                    boxstyle="round,pad=0.04,rounding_size=0.12",
                                    facecolor=colours[kind], edgecolor="black", linewidth=1.0))
        dark = kind in ("pair", "geom", "null")
        ax.text(x, y, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
        return x, y

    def arrow(start, end, text=None):
        (x0, y0), (x1, y1) = start, end
        gap = 0.08
        if abs(x1 - x0) > 1e-9:
            p0, p1 = (x0 + width / 2 + gap, y0), (x1 - width / 2 - gap, y1)
        else:
            sign = 1 if y1 > y0 else -1
            p0, p1 = (x0, y0 + sign * (height / 2 + gap)), (x1, y1 - sign * (height / 2 + gap))
        ax.add_patch(FancyArrowPatch(p0, p1, arrowstyle="-|>", mutation_scale=14, linewidth=1.2,
                                     color="black"))
        if text:
            ax.text((p0[0] + p1[0]) / 2, max(p0[1], p1[1]) + 0.08, text, ha="center", va="bottom",
                    fontsize=8, style="italic")

    top, mid, low = 3.15, 2.05, 0.95
    xs = [1.0, 3.4, 5.8, 8.2, 10.6, 13.0]
    tokens = box(xs[0], mid, "Same text,\nsame tokens\n(shared tokenizer)", "data")
    llm_a = box(xs[1], top, "LLM A\nlayer i\n(residual stream)", "model")
    llm_b = box(xs[1], low, "LLM B\nlayer j\n(residual stream)", "model")
    sae_a = box(xs[2], top, "SAE A codes\n(tokens × $m_A$)", "sae")
    sae_b = box(xs[2], low, "SAE B codes\n(tokens × $m_B$)", "sae")
    pairing = box(xs[3], mid, "Pair latents by\nactivation correlation\n(B latent → best A;\n"
                              "junk filter, 1-1, r > 0.1)", "pair")
    reorder = box(xs[4], mid, "Reorder SAE\ndecoder rows\n$W^A_{dec}[a_k]$, $W^B_{dec}[b_k]$\n"
                              "(pair k on row k)", "pair")
    geometry = box(xs[5], top, "SVCCA / RSA\nof the paired\ndecoder rows", "geom")
    null = box(xs[5], low, "Shuffled pairings\n(null) → p-value,\nz-score", "null")
    arrow(tokens, llm_a)
    arrow(tokens, llm_b)
    arrow(llm_a, sae_a, "encode")
    arrow(llm_b, sae_b, "encode")
    arrow(sae_a, pairing)
    arrow(sae_b, pairing)
    arrow(pairing, reorder, "pairs")
    arrow(reorder, geometry)
    arrow(reorder, null)
    ax.add_patch(FancyArrowPatch((xs[5], low + height / 2 + 0.08), (xs[5], top - height / 2 - 0.08),
                                 arrowstyle="<|-|>", mutation_scale=12, linewidth=1.0, linestyle="--",
                                 color="black"))
    ax.text(xs[5] + 0.12, mid, "compare", fontsize=8, style="italic", va="center")
    ax.text(7.0, 4.25, "Comparing SAE feature spaces across LLMs (Lan et al., arXiv:2410.06981)",
            ha="center", va="top", fontsize=11, weight="bold")
    return fig


def _score_line(scores: Mapping) -> str:
    if not scores:
        return ""
    return "\n" + ", ".join(f"{name} = {float(v):.3f}" for name, v in scores.items())
