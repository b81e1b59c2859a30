"""Figures of the steering-transfer chapter, drawn from ``steering_transfer.parquet``.

Private to :mod:`saesim.report`; use them through :mod:`saesim.report.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from saesim import vocab
from saesim.report._plot_style import new_figure
from saesim.report.frames import check_frame

_KEYS = ["comparison", "layer_a", "layer_b", "concept"]
_MAP_STYLE = {  # map -> (colour, marker, line style)
    "native": ("#222222", "o", "-"),
    "procrustes": ("#c0392b", "s", "-"),
    "activation": ("#2471a3", "^", "--"),
    "lstsq": ("#7d3c98", "v", ":"),
}


def steering_depth(cells: pd.DataFrame, similarity: pd.Series | None = None, *, measure: str = "rsa") -> Figure:
    """Transfer efficiency along depth (left) beside the similarity of the same layer pairs (right).

    Parameters
    ----------
    cells : pandas.DataFrame
        :func:`saesim.experiments.steering.headline_cells`: one row per (comparison, layer pair,
        concept) with ``efficiency``, ``ci_low``, ``ci_high`` and ``null_low``/``null_high`` (the
        shuffled-pairing draws' 5th and 95th percentiles).
    similarity : pandas.Series, optional
        Indexed by (layer_a, layer_b): the main comparison's effect over null of ``measure`` at
        those pairs.
    """
    check_frame(cells, "cells", [*_KEYS, "efficiency", "ci_low", "ci_high", "null_low", "null_high"])
    concepts = list(dict.fromkeys(cells["concept"]))
    nrows = 2 if similarity is not None else 1
    fig = new_figure(7.0, 4.2 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, 1, height_ratios=[1.6, 1] if nrows == 2 else None))
    ax = axes[0]
    main = cells[cells["comparison"] == vocab.MAIN_COMPARISON]
    pairs = list(dict.fromkeys(zip(main["layer_a"], main["layer_b"])))
    x = {p: i for i, p in enumerate(pairs)}
    width = 0.8 / max(len(concepts), 1)
    for j, concept in enumerate(concepts):
        sub = main[main["concept"] == concept]
        pos = np.array([x[(a, b)] for a, b in zip(sub["layer_a"], sub["layer_b"])]) + (j - (len(concepts) - 1) / 2) * width
        ax.fill_between(pos, sub["null_low"], sub["null_high"], step=None, color=f"C{j}", alpha=0.15, lw=0)
        err = np.vstack([sub["efficiency"] - sub["ci_low"], sub["ci_high"] - sub["efficiency"]])
        ax.errorbar(pos, sub["efficiency"], yerr=np.where(np.isfinite(err), np.maximum(err, 0), 0), fmt="o-",
                    color=f"C{j}", capsize=3, label=f"{concept}: A → B")
        ctrl = cells[(cells["comparison"] != vocab.MAIN_COMPARISON) & (cells["concept"] == concept)]
        for marker, (comparison, group) in zip("xP+", ctrl.groupby("comparison", sort=False)):
            cpos = [x.get((a, b)) for a, b in zip(group["layer_a"], group["layer_b"])]
            keep = [i for i, p in enumerate(cpos) if p is not None]
            if keep:
                ax.plot(np.array([cpos[i] for i in keep]) + (j - (len(concepts) - 1) / 2) * width,
                        group["efficiency"].to_numpy()[keep], marker, color=f"C{j}", ms=8, ls="none",
                        label=f"{concept}: {vocab.label('comparison', comparison)}")
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    ax.axhline(0.0, color="0.3", lw=0.8)
    # the window holds every estimate, the null band and 0..1; an interval running past it is cut
    # there (a native vector that barely steers makes the ratio's interval very wide)
    values = pd.concat([cells["efficiency"], cells["null_low"], cells["null_high"]]).to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size:
        lo, hi = min(values.min(), 0.0), max(values.max(), 1.0)
        pad = 0.15 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(range(len(pairs)), [vocab.layer_pair(a, b) for a, b in pairs])
    ax.set_xlabel("layer pair (same relative depth)")
    ax.set_ylabel("transfer efficiency\n(1 = as B's own vector)")
    ax.set_title("Steering transfer along depth", fontsize=11)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    if similarity is not None:
        ax2 = axes[1]
        values = [float(similarity.get(p, np.nan)) for p in pairs]
        ax2.bar(range(len(pairs)), values, color="0.55")
        ax2.set_xticks(range(len(pairs)), [vocab.layer_pair(a, b) for a, b in pairs])
        ax2.axhline(0.0, color="0.3", lw=0.8)
        ax2.set_xlabel("layer pair (same relative depth)")
        ax2.set_ylabel(f"{vocab.label('measure', measure)} effect over null")
        ax2.set_title(f"Similarity of the same pairs ({vocab.label('measure', measure)})", fontsize=11)
    return fig


def steering_curves(table: pd.DataFrame, panels: Sequence[tuple], *, label_b: str = "model B") -> Figure:
    """Effect against side effect as the scale grows, one panel per (comparison, layer_a, layer_b, concept).

    Lines: B's own vector, the Procrustes-mapped vector, the activation-level map and the
    least-squares decoder map; grey band: the range of the shuffled-pairing draws at each scale.
    """
    check_frame(table, "table", [*_KEYS, "recipe", "map", "draw", "alpha", "effect", "side_effect"])
    panels = list(panels)
    fig = new_figure(5.2 * max(len(panels), 1), 3.9)
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1)))
    for ax, key in zip(axes, panels):
        sel = (table[_KEYS] == pd.Series(dict(zip(_KEYS, key)))).all(axis=1) & (table["recipe"] == "mean_diff")
        sub = table[sel]
        null = sub[sub["map"] == "shuffled"].groupby("alpha").agg(
            lo=("effect", lambda e: np.quantile(e, 0.05)), hi=("effect", lambda e: np.quantile(e, 0.95)),
            kl=("side_effect", "median"))
        if len(null):
            ax.fill_between(np.r_[0, null["kl"]], np.r_[0, null["lo"]], np.r_[0, null["hi"]], color="0.6",
                            alpha=0.3, lw=0, label=vocab.label("steering_map", "shuffled") + " (5–95 %)")
        for name, (colour, marker, style) in _MAP_STYLE.items():
            line = sub[(sub["map"] == name) & (sub["draw"] == 0)].sort_values("alpha")
            if len(line):
                ax.plot(np.r_[0, line["side_effect"]], np.r_[0, line["effect"]], ls=style, marker=marker,
                        color=colour, label=vocab.label("steering_map", name))
        ax.axhline(0.0, color="0.3", lw=0.8)
        comparison, la, lb, concept = key
        ax.set_title(f"{concept}, A{la} → B{lb}", fontsize=11)
        ax.set_xlabel("side effect: KL to unsteered (nats)")
        ax.set_ylabel("effect on B: Δ log P(keywords) (nats)")
        ax.legend(fontsize=7.5, loc="best")
    return fig


def steering_method_diagram() -> Figure:
    """The experiment in one picture: A's vector, the map, B's own vector, and the matched readout."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig = new_figure(7.2, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlim(0, 7.2)
    ax.set_ylim(0, 4.6)
    ax.axis("off")
    w, h = 2.2, 1.05
    boxes = {  # name -> (x, y, text)
        "va": (0.05, 3.4, "A's residual stream\nat l_A: steering\nvector v_A"),
        "map": (2.5, 3.4, "map W, A → B:\nProcrustes on the\npaired decoder rows"),
        "vb": (4.95, 3.4, "add α · v_A W at l_B\nwhile B reads\nneutral prompts"),
        "null": (2.5, 1.75, "nulls: W on shuffled\npairings, random W,\nrandom vector"),
        "native": (0.05, 0.1, "B's own vector\n(same recipe in B):\nthe upper bound"),
        "read": (4.95, 0.1, "effect Δ log P(keywords)\nat the same side effect\n(KL): mapped ÷ own"),
    }
    for x, y, text in boxes.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04", fc="#f4f4f4", ec="#555555", lw=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9.5)

    def arrow(a, b):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, color="#333333", lw=1.1))

    arrow((2.25, 3.92), (2.5, 3.92))
    arrow((4.7, 3.92), (4.95, 3.92))
    arrow((6.05, 3.4), (6.05, 1.15))  # the steered B is read out
    arrow((4.7, 2.27), (5.2, 3.4))  # a null map takes W's place
    arrow((2.25, 0.62), (4.95, 0.62))  # B's own vector is read out the same way
    return fig
