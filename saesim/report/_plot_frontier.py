"""The SAE frontier's figure: seed stability and held-out FVU against training tokens, with the targets and the fit.

Private to :mod:`saesim.report`; use it through :mod:`saesim.report.plots`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from saesim import vocab
from saesim.report._plot_style import new_figure
from saesim.report.frames import check_frame

__all__ = ["FIT_REACH", "plot_sae_frontier", "plot_sae_recipe_axes", "tokens_short"]

FIT_REACH = 2**10
"""The fit is drawn at most this many times past the largest measured tokens; a target further out is
named in a note at the panel's edge instead of stretching the axis."""

_STYLE = {  # axis -> (colour, marker, marker size)
    "tokens": ("#2471a3", "o", 7),
    "profile": ("#222222", "*", 15),
    "epochs": ("#c0392b", "s", 7),
    "width": ("#1e8449", "^", 8),
    "k": ("#7d3c98", "D", 7),
    "optimizer": ("#d68910", "v", 8),
    "lr": ("#5d6d7e", "P", 8),
    "normalise": ("#117a65", "X", 8),
}
_FONT = 10.0
"""Axis labels and ticks (pt): at least 10 px high when the 7.2-inch figure is shown 700 px wide."""
_SMALL = 9.0
"""Legend, notes and point labels (pt)."""

_COLUMNS = ["axis", "train_tokens", "epochs", "num_latents", "pw_mcc", "shared_dec", "chance_pw_mcc",
            "chance_shared_dec", "fvu_heldout"]


def tokens_short(value: float) -> str:
    """A token count as a tick label: ``8000`` -> ``"8k"``, ``1.5e6`` -> ``"1.5M"``, ``3e9`` -> ``"3G"``.

    Examples
    --------
    >>> [tokens_short(v) for v in (512, 8000, 192000, 1.5e6, 3e9)]
    ['512', '8k', '192k', '1.5M', '3G']
    """
    value = float(value)
    for size, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def plot_sae_frontier(frame: pd.DataFrame, proj: dict, *, targets: dict | None = None) -> Figure:
    """Seed stability (PW-MCC, share of latents shared) and held-out FVU against training tokens.

    Three panels over one log2 axis of training tokens: PW-MCC (top), the percentage of latents
    shared at decoder cosine >= 0.7 (middle) and held-out FVU (bottom). The tokens axis of the design
    is a line of circles ending in the profile's recipe (a star); the points with more epochs
    (squares) and the narrower SAEs (triangles) sit at their tokens, labelled with what they change.
    Dotted: the chance level of random directions at the profile's width; dashed: the targets;
    thin dash-dot: the log-linear fit of :func:`saesim.experiments.sae_frontier.projection`,
    extended towards its target (at most :data:`FIT_REACH` times past the data; a target further
    out is named in a note).

    Parameters
    ----------
    frame : pandas.DataFrame
        A :func:`saesim.experiments.sae_frontier.sae_frontier` table.
    proj : dict
        :func:`saesim.experiments.sae_frontier.projection` of ``frame``.
    targets : dict, optional
        ``{"pw_mcc": ..., "shared_dec": ..., "fvu_heldout": ...}``; default: the projection's
        targets and :data:`saesim.experiments.sae_frontier.TARGET_FVU`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from saesim.experiments.sae_frontier import RECIPE_AXES, TARGET_FVU

    check_frame(frame, "frame", _COLUMNS)
    if frame.empty:
        raise ValueError("`frame` has no rows; run the frontier first.")
    frame = frame[~frame["axis"].isin(RECIPE_AXES)]  # drawn by plot_sae_recipe_axes
    targets = {"pw_mcc": proj["pw_mcc"]["target"], "shared_dec": proj["shared_dec"]["target"],
               "fvu_heldout": TARGET_FVU, **(targets or {})}
    profile = frame[frame["axis"] == "profile"]
    ref = profile.iloc[0] if len(profile) else frame.iloc[0]
    fig = new_figure(7.2, 9.6)
    axes = fig.subplots(3, 1, sharex=True)
    panels = [("pw_mcc", 1.0, "PW-MCC of two seeds", "chance_pw_mcc"),
              ("shared_dec", 100.0, "latents shared at\ndecoder cosine ≥ 0.7 (%)", "chance_shared_dec"),
              ("fvu_heldout", 1.0, "held-out FVU", None)]
    largest = float(frame["train_tokens"].max())
    measured = proj.get("measured_tokens") or (frame["train_tokens"].min(), largest)
    fit_range = (float(measured[0]), float(measured[1]))
    for ax, (column, scale, ylabel, chance) in zip(axes, panels):
        _draw_points(ax, frame, column, scale)
        target = targets[column] * scale
        ax.axhline(target, color="0.25", ls="--", lw=1.1, label=f"target ({_fmt(targets[column], scale)})")
        if chance is not None and np.isfinite(ref[chance]):
            ax.axhline(float(ref[chance]) * scale, color="0.45", ls=":", lw=1.4,
                       label=f"chance, {int(ref['num_latents']):,} latents")
        if column in proj:
            _draw_fit(ax, proj[column], scale, fit_range)
        ax.set_ylabel(ylabel, fontsize=_FONT)
        ax.tick_params(labelsize=_FONT)
        ax.grid(True, which="major", color="0.9", lw=0.6)
        ax.legend(fontsize=_SMALL, loc="best", frameon=False)
    axes[0].set_title("SAE seed stability and reconstruction against training tokens", fontsize=_FONT + 1)
    bottom = axes[-1]
    bottom.set_xscale("log", base=2)
    _token_ticks(bottom, frame)
    bottom.set_xlabel("training tokens (log scale)", fontsize=_FONT)
    _label_points(axes[0], frame, "pw_mcc")
    handles = [_legend_handle(axis) for axis in _STYLE if (frame["axis"] == axis).any()]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=_SMALL, frameon=False)
    return fig


def _draw_points(ax, frame: pd.DataFrame, column: str, scale: float) -> None:
    curve = frame[frame["axis"].isin(["tokens", "profile"])].sort_values("train_tokens")
    if len(curve):
        ax.plot(curve["train_tokens"], curve[column] * scale, "-", color=_STYLE["tokens"][0], lw=1.6, zorder=2)
    for axis, (colour, marker, size) in _STYLE.items():
        rows = frame[frame["axis"] == axis]
        if len(rows):
            ax.plot(rows["train_tokens"], rows[column] * scale, marker, color=colour, ms=size, ls="none", zorder=3)


def _label_points(ax, frame: pd.DataFrame, column: str) -> None:
    """Name what the epochs and width points change, beside them, never one label on another."""
    rows = frame[frame["axis"].isin(["epochs", "width"])]
    rows = rows[np.isfinite(rows[column].to_numpy(dtype=float))]
    if rows.empty:
        return
    to_points = 72.0 / ax.figure.dpi
    placed: dict[float, list[float]] = {}
    for r in sorted(rows.to_dict("records"), key=lambda r: (r["train_tokens"], r[column])):
        x, y = float(r["train_tokens"]), float(r[column])
        y_pt = ax.transData.transform((x, y))[1] * to_points
        taken = placed.setdefault(x, [])
        at = max([y_pt] + [t + 1.2 * _SMALL for t in taken])
        taken.append(at)
        colour = _STYLE[r["axis"]][0]
        text = f"{int(r['epochs'])} epochs" if r["axis"] == "epochs" else f"{int(r['num_latents']):,} latents"
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(8, at - y_pt - 3), fontsize=_SMALL,
                    color=colour)


def _draw_fit(ax, fit: dict, scale: float, measured: tuple[float, float]) -> None:
    from saesim.report.frontier import tokens_words

    slope, intercept, tokens = fit["slope"], fit["intercept"], fit["tokens"]
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        return
    smallest, largest = measured
    lo, hi = smallest, largest
    label = "log-linear fit (tokens axis)"
    if np.isfinite(tokens) and tokens > largest:
        hi = min(tokens, largest * FIT_REACH)
        if tokens > hi:
            label += f";\nreaches the target at ~{tokens_words(tokens)} tokens"
    elif np.isfinite(tokens) and tokens < smallest:
        lo = max(tokens, smallest / FIT_REACH)
    elif not np.isfinite(tokens):
        label += ";\ndoes not reach the target"
    xs = np.geomspace(lo, hi, 50)
    ax.plot(xs, (intercept + slope * np.log2(xs)) * scale, "-.", color="0.35", lw=1.0, zorder=1, label=label)
    if np.isfinite(tokens) and lo <= tokens <= hi:
        ax.plot([tokens], [fit["target"] * scale], "x", color="0.2", ms=8, zorder=3)


def _token_ticks(ax, frame: pd.DataFrame) -> None:
    """Ticks at the measured token counts, every factor of 2 below the smallest and of 4 past the largest
    where a fit reaches."""
    measured = sorted({float(t) for t in frame["train_tokens"]})
    right = ax.get_xlim()[1]
    extra = [measured[-1] * 4.0**i for i in range(1, 40) if measured[-1] * 4.0**i <= right]
    left = ax.get_xlim()[0]
    below = [measured[0] / 2.0**i for i in range(1, 40) if measured[0] / 2.0**i >= left]
    ticks = below[::-1] + measured + extra
    if len(ticks) > 9:  # keep the measured ones, thin the extension
        step = math.ceil(len(extra) / max(9 - len(measured), 1)) if extra else 1
        ticks = below[::-1][::step] + measured + extra[step - 1::step]
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: tokens_short(v)))
    ax.xaxis.set_minor_locator(NullLocator())


def _legend_handle(axis: str):
    from matplotlib.lines import Line2D

    colour, marker, size = _STYLE[axis]
    return Line2D([], [], color=colour, marker=marker, ms=size, ls="-" if axis == "tokens" else "none",
                  label=vocab.label("frontier_axis", axis))


def _fmt(value: float, scale: float) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value * scale:g} %" if scale == 100.0 else f"{value:g}"


def plot_sae_recipe_axes(frame: pd.DataFrame) -> Figure:
    """The recipe axes beside their baseline: one row per recipe change, PW-MCC, shared and held-out FVU.

    Three panels side by side share the rows (:func:`saesim.report.frontier.recipe_axes_view`: the
    baseline on top, then k, the optimizer, the learning rate and the input scaling); a grey line
    carries the baseline's value down each panel, a dotted one the chance level of random directions.

    Parameters
    ----------
    frame : pandas.DataFrame
        A :func:`saesim.experiments.sae_frontier.sae_frontier` table with recipe-axis points.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        The table has no recipe-axis point.
    """
    from saesim.report.frontier import recipe_axes_view

    check_frame(frame, "frame", _COLUMNS)
    view = recipe_axes_view(frame)
    if view.empty:
        raise ValueError("`frame` has no recipe-axis point (k, optimizer, learning rate, input scaling); run the "
                         "frontier with default_points(..., recipe_axes=True).")
    n = len(view)
    fig = new_figure(7.2, 1.2 + 0.42 * n)
    axes = fig.subplots(1, 3, sharey=True)
    ys = np.arange(n)[::-1]
    panels = [("pw_mcc", 1.0, "PW-MCC\n(two seeds)", "chance_pw_mcc"),
              ("shared_dec", 100.0, "shared at\ncosine ≥ 0.7 (%)", "chance_shared_dec"),
              ("fvu_heldout", 1.0, "held-out\nFVU", None)]
    base = view.iloc[0]
    for ax, (column, scale, xlabel, chance) in zip(axes, panels):
        ax.axvline(float(base[column]) * scale, color="0.6", lw=1.2, zorder=1)
        if chance is not None and np.isfinite(float(base[chance])):
            ax.axvline(float(base[chance]) * scale, color="0.45", ls=":", lw=1.4, zorder=1)
        for y, (_, row) in zip(ys, view.iterrows()):
            axis = "tokens" if row["is_baseline"] else row["axis"]
            colour, marker, size = _STYLE[axis]
            ax.plot([float(row[column]) * scale], [y], marker, color=colour, ms=size, zorder=3)
        ax.set_xlabel(xlabel, fontsize=_FONT)
        ax.tick_params(labelsize=_FONT)
        ax.grid(True, axis="x", color="0.9", lw=0.6)
        lo, hi = ax.get_xlim()
        pad = 0.08 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(view["change"].tolist(), fontsize=_SMALL)
    axes[0].set_ylim(-0.6, n - 0.4)
    fig.suptitle("Recipe changes at a quarter of the profile's tokens", fontsize=_FONT + 1)
    return fig
