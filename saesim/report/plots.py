"""The paper's figures drawn from the tidy experiment tables.

Every function takes a tidy :class:`pandas.DataFrame` (``full_space.parquet``,
``subspace.parquet``) or plain arrays and returns a matplotlib object; nothing
here computes an experiment or reads a file. Functions that draw a single panel
take ``ax=`` and return the :class:`~matplotlib.axes.Axes`; the others return
a :class:`~matplotlib.figure.Figure`.

Figures are built as :class:`matplotlib.figure.Figure` objects, not through
pyplot: no backend is selected, no window opens and no global figure list
grows, so the functions are safe in loops, workers and headless builds. In a
notebook, end the cell with the figure (``fig``) to display it;
:func:`save_figure` writes it to disk.

The heatmap style is the paper's (paper_figures.md §5.7): seaborn ``magma``,
``fmt=".3f"``, bold 14 pt annotations, model-B layers on the y axis with the
lowest layer at the bottom, vmax 0.6 for null-mean and p-value panels, vmin 0
for correlation panels (:func:`panel_style`).

=============================  =====================================================
Paper item                     Function
=============================  =====================================================
Fig. 1 (method)                :func:`method_diagram`
Fig. 2 (toy pairing)           :func:`toy_pairing_figure`
Figs. 3-4, A1-A7               :func:`heatmap_panels` / :func:`layer_heatmap`
A8 (bar plot)                  :func:`paired_vs_null_bars`
A9-A10 (concept heatmaps)      :func:`concept_heatmap_grid`
hubs, frequencies, p-values    :func:`hub_histogram`, :func:`frequency_histogram`,
                               :func:`pvalue_histogram`
baselines, sweeps              :func:`plot_baselines`, :func:`plot_sweep` (drawn in
                               :mod:`saesim.report.plots_robust`, re-exported here)
=============================  =====================================================

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024).

Holm, "A simple sequentially rejective multiple test procedure", Scand. J.
Stat. 6 (1979), 65-70.

Benjamini and Hochberg, "Controlling the false discovery rate", J. R. Stat.
Soc. B 57 (1995), 289-300.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from saesim.compare.multitest import n_rejected
from saesim.io import atomic_path
from saesim.report.frames import check_frame, check_unique, format_cell, pivot_grid
from saesim.report.plots_robust import plot_baselines, plot_sweep, policy_label
from saesim.report.tables import display_name

__all__ = [
    "dims_words",
    "ANNOT_KWS",
    "FIGURE_NAMES",
    "SAVE_FORMATS",
    "Cutoffs",
    "caption",
    "concept_heatmap_grid",
    "control_bars",
    "frequency_histogram",
    "comparison_heatmaps",
    "heatmap_panels",
    "hub_histogram",
    "layer_heatmap",
    "method_diagram",
    "multiple_testing_cutoffs",
    "paired_vs_null_bars",
    "panel_axes",
    "plot_baselines",
    "plot_sweep",
    "policy_label",
    "panel_style",
    "panel_title",
    "pvalue_histogram",
    "save_figure",
    "toy_pairing_figure",
]

ANNOT_KWS = {"weight": "bold", "size": 14}
"""Heatmap annotation style of the paper's notebooks."""

PAGE_WIDTH_PX = 700
"""Width at which the book's article column shows a figure (a 1 280-px browser window)."""

MIN_TEXT_PX = 10
"""Smallest text height, in screen pixels at :data:`PAGE_WIDTH_PX`, of a figure drawn for the page."""

NULL_P_VMAX = 0.6
"""Colour-scale maximum of the paper's null-mean and p-value panels."""

SAVE_FORMATS = ("pdf", "svg", "png")
"""Files written by :func:`save_figure`."""

SAVE_DPI = 150
"""Resolution of the PNG written by :func:`save_figure`."""

FIGURE_NAMES: dict[str, str] = {
    "fig1": "fig1_method_overview",
    "fig2": "fig2_toy_pairing",
    "fig3": "fig3_full_space_svcca_rsa",
    "fig4": "fig4_full_space_svcca_rsa_gemma",
    "a1": "figA1_svcca_null_and_p",
    "a2": "figA2_rsa_null_and_p",
    "a3": "figA3_correlation_before_after_filtering",
    "a4": "figA4_pairs_kept",
    "a6": "figA6_many_to_one_svcca_rsa",
    "a8": "figA8_paired_vs_null_bars",
    "a9_svcca": "figA9_concepts_svcca",
    "a9_svcca_p": "figA9_concepts_svcca_p",
    "a9_rsa": "figA9_concepts_rsa",
    "a9_rsa_p": "figA9_concepts_rsa_p",
    "hubs": "fig_hub_histogram",
    "frequency": "fig_activation_frequency",
    "pvalues": "fig_pvalue_histogram",
}
"""Stable file names (no suffix) for :func:`save_figure`, keyed by paper item."""

_CORRELATION_COLUMNS = ("mean_best_r", "mean_r_filtered", "mean_r")
_COUNT_TITLES = {
    "n_pairs": "Pairs Kept",
    "n_unique_a": "Unique A Latents Kept",
    "n_after_junk": "Pairs After Junk Filter",
    "n_after_1to1": "Pairs After 1-1",
    "n_choosers": "Choosing Latents",
    "n_with_partner": "Latents With a Partner",
    "n_unique_a_before": "Unique A Latents Before Filters",
    "n_members_a": "Concept Members in A",
    "n_members_b": "Concept Members in B",
}
_OTHER_TITLES = {
    "mean_best_r": "Mean Activation Correlation",
    "mean_r_filtered": "Correlation After Filtering",
    "mean_r": "Mean Correlation of Pairs",
}
_PANEL_LETTERS = "abcdefghijklmnopqrstuvwxyz"


# --- heatmaps ------------------------------------------------------------------------------------

def panel_title(value: str) -> str:
    """The paper's panel title for a tidy column (``"svcca"`` -> ``"Paired SVCCA Scores"``).

    Unknown columns are returned unchanged.
    """
    for suffix, template in (("_subset_null_mean", "Mean Random-Subset {} Scores"),
                             ("_subset_p", "{} P-Values (Random-Subset Null)"),
                             ("_null_mean", "Mean Null {} Scores"),
                             ("_null_std", "Null {} Std"),
                             ("_p_holm", "{} P-Values (Holm)"),
                             ("_p_bh", "{} P-Values (BH)"),
                             ("_p", "{} P-Values"),
                             ("_z", "{} z-Scores vs Null"),
                             ("_excess", "{} minus Null Mean")):
        if value.endswith(suffix):
            return template.format(display_name(value[: -len(suffix)]))
    if value in ("svcca", "rsa", "linear_cka"):
        return f"Paired {display_name(value)} Scores"
    return _COUNT_TITLES.get(value) or _OTHER_TITLES.get(value) or value


def panel_style(value: str) -> dict:
    """Default heatmap options for a tidy column, following the paper.

    Returns
    -------
    dict
        ``{"vmin": 0, "vmax": 0.6}`` for p-value columns (``*_p``,
        ``*_p_holm``, ``*_p_bh``), ``{"vmax": 0.6}`` for null means,
        ``{"vmin": 0}`` for correlation columns, ``{"fmt": "d"}`` for counts
        (``n_*``, ``dead_*``) and ``{}`` otherwise.
    """
    if re.search(r"_p(_holm|_bh)?$", value):
        return {"vmin": 0.0, "vmax": NULL_P_VMAX}
    if value.endswith("_null_mean"):
        return {"vmax": NULL_P_VMAX}
    if value in _CORRELATION_COLUMNS:
        return {"vmin": 0.0}
    if value.startswith("n_") or value.startswith("dead_"):
        return {"fmt": "d"}
    return {}


def layer_heatmap(frame: pd.DataFrame, value: str, *, rows: str = "layer_b", cols: str = "layer_a",
                  ax: Axes | None = None, title: str | None = None, fmt: str = ".3f", cmap: str = "magma",
                  vmin: float | None = None, vmax: float | None = None, label_a: str = "model A",
                  label_b: str = "model B", cbar: bool = True, counts: str | None = None,
                  annot_max: float | None = None) -> Axes:
    """One annotated layer × layer heatmap in the paper's style.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy table with one row per (``rows``, ``cols``) cell, e.g.
        ``full_space.parquet`` restricted to one rule and direction.
    value : str
        Column to show.
    rows, cols : str, default ``"layer_b"``, ``"layer_a"``
        Columns giving the y axis (model B, lowest layer at the bottom) and the
        x axis (model A, ascending).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure sized to the grid when omitted.
    title : str, optional
        Panel title; :func:`panel_title` of ``value`` by default.
    fmt : str, default ``".3f"``
        Annotation format; ``"d"`` shows counts as integers.
    cmap : str, default ``"magma"``
    vmin, vmax : float, optional
        Colour limits (the paper uses ``vmax=0.6`` for null and p panels,
        ``vmin=0`` for correlations; see :func:`panel_style`).
    label_a, label_b : str, default ``"model A"``, ``"model B"``
        Model names for the axis labels (``"<label> layer"``).
    cbar : bool, default True
        Draw a colour bar.
    counts : str, optional
        A count column (e.g. ``"n_pairs"``) written under each cell's value
        as ``n=<count>``: how many pairs the score rests on.
    annot_max : float, optional
        Largest annotation size in pt (default the paper's 14 pt).

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If a column is missing or several rows share a cell (filter the frame
        to one rule and direction first).

    Notes
    -----
    Cells with no value (NaN, or no row) are left blank and unannotated.
    Annotations are bold, 14 pt where the cells are wide enough, smaller
    where they are not, so that neighbouring numbers never overprint.
    """
    grid = pivot_grid(frame, value, rows=rows, cols=cols)
    count_grid = None
    if counts is not None and counts in frame:
        count_grid = pivot_grid(frame, counts, rows=rows, cols=cols).reindex(index=grid.index, columns=grid.columns)
    if ax is None:
        ax = _new_figure(*_heatmap_size(grid.shape)).subplots()
    _draw_grid(ax, grid, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, cbar=cbar, counts=count_grid,
               annot_max=annot_max)
    ax.set_title(panel_title(value) if title is None else title)
    ax.set_xlabel(f"{label_a} layer")
    ax.set_ylabel(f"{label_b} layer")
    return ax


def comparison_heatmaps(panels: Sequence[tuple[str, pd.DataFrame, str, str]], value: str, *,
                        ncols: int | None = None, fmt: str = ".3f", cmap: str = "RdBu_r",
                        symmetric: bool = True) -> Figure:
    """One layer × layer heatmap of ``value`` per comparison, all on one colour scale.

    The main comparison and its controls (two SAEs of one model, the
    re-randomised models) side by side: the same column, the same colour
    limits, so a cell of a control reads against the same cell of the main
    grid.

    Parameters
    ----------
    panels : sequence of (title, frame, label of the x model, label of the y model)
        One tidy table per comparison (one rule and direction; columns
        ``layer_a``, ``layer_b`` and ``value``). The x axis is the partner
        side (``layer_a``), the y axis the side that picks (``layer_b``).
    value : str
        Column to show, e.g. ``"rsa_excess"`` (score minus its null mean) or
        ``"rsa_z"``.
    ncols : int, optional
        Panels per row (default: all in one row, at most 2).
    fmt : str, default ".3f"
    cmap : str, default "RdBu_r"
        Diverging: 0 (the null) is white when ``symmetric``.
    symmetric : bool, default True
        Colour limits ±max|value| over every panel; else [min, max].

    Returns
    -------
    matplotlib.figure.Figure
    """
    panels = list(panels)
    if not panels:
        raise ValueError("`panels` is empty; give at least one (title, frame, label_x, label_y).")
    for title, frame, _, _ in panels:
        check_frame(frame, f"frame of {title!r}", ["layer_a", "layer_b", value])
    values = np.concatenate([np.asarray(frame[value], dtype=float) for _, frame, _, _ in panels])
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        vmin, vmax = -1.0, 1.0
    elif symmetric:
        vmax = float(np.max(np.abs(finite))) or 1.0
        vmin = -vmax
    else:
        vmin, vmax = float(finite.min()), float(finite.max())
    ncols = _check_ncols(ncols or min(2, len(panels)), len(panels))
    shape = max(((f["layer_b"].nunique(), f["layer_a"].nunique()) for _, f, _, _ in panels),
                key=lambda s: s[0] * s[1])
    fig, axes = _panel_grid(len(panels), ncols, _heatmap_size(shape))
    for i, (ax, (title, frame, label_x, label_y)) in enumerate(zip(axes, panels)):
        layer_heatmap(frame, value, ax=ax, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, label_a=label_x,
                      label_b=label_y, title=f"({chr(97 + i)}) {title}" if len(panels) > 1 else title)
    return fig


def heatmap_panels(frame: pd.DataFrame, values: Sequence[str], *, titles: Sequence[str] | None = None,
                   ncols: int = 2, panel_labels: bool = True, suptitle: str | None = None, **kw) -> Figure:
    """Several :func:`layer_heatmap` panels side by side (Figs. 3-4 and the appendix).

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy table, one row per layer pair (one rule and direction).
    values : sequence of str
        One column per panel, e.g. ``["svcca", "rsa"]`` (Fig. 3),
        ``["svcca_null_mean", "svcca_p"]`` (A1), ``["mean_best_r",
        "mean_r_filtered"]`` (A3), ``["n_pairs", "n_unique_a"]`` (A4).
    titles : sequence of str, optional
        Panel titles; :func:`panel_title` of each value by default.
    ncols : int, default 2
        Panels per row.
    panel_labels : bool, default True
        Prefix titles with ``(a)``, ``(b)``, ... when there are several panels.
    suptitle : str, optional
        Title of the whole figure.
    **kw
        Passed to :func:`layer_heatmap` (``rows``, ``cols``, ``label_a``,
        ``label_b``, ``cmap``, ``fmt``, ``vmin``, ``vmax``). ``fmt``, ``vmin``,
        ``vmax`` and ``cmap`` may also be a dict keyed by value or a list with
        one entry per panel. Options not given come from :func:`panel_style`
        (vmax 0.6 for null/p panels, vmin 0 for correlations, ``"d"`` for
        counts), then from :func:`layer_heatmap`'s defaults.

    Returns
    -------
    matplotlib.figure.Figure
        Panel axes in order are :func:`panel_axes` of the figure.
    """
    values = _check_values(values)
    if titles is not None and len(titles) != len(values):
        raise ValueError(f"`titles` has {len(titles)} entries but `values` has {len(values)}; give one per panel.")
    ncols = _check_ncols(ncols, len(values))
    rows, cols = kw.get("rows", "layer_b"), kw.get("cols", "layer_a")
    check_frame(frame, "frame", [rows, cols, *values])
    shape = (frame[rows].nunique(), frame[cols].nunique())
    points, (width, height) = _page_panel_size(shape, ncols)
    with matplotlib.rc_context(_font_rc(points)):
        fig, axes = _panel_grid(len(values), ncols, (width, max(height, _heatmap_size(shape)[1])))
        for i, (ax, value) in enumerate(zip(axes, values)):
            options = {**panel_style(value), **{k: _per_panel(v, value, i, k) for k, v in kw.items()}}
            title = panel_title(value) if titles is None else titles[i]
            if panel_labels and len(values) > 1:
                title = f"({_PANEL_LETTERS[i % 26]}) {title}"
            layer_heatmap(frame, value, ax=ax, title=title, annot_max=points, **options)
        if suptitle:
            fig.suptitle(suptitle)
    return fig


def concept_heatmap_grid(subspace_frame: pd.DataFrame, value: str, *, ncols: int = 2,
                         concepts: Sequence[str] | None = None, title: str | None = None,
                         shared_scale: bool = True, counts: str | None = "n_pairs", **kw) -> Figure:
    """One heatmap panel per concept (appendix A9/A10): 2 columns × 4 rows for 8 concepts.

    Parameters
    ----------
    subspace_frame : pandas.DataFrame
        ``subspace.parquet`` (one row per layer pair × concept, one rule).
    value : str
        Column to show (``"svcca"``, ``"svcca_p"``, ``"rsa"``, ...).
    ncols : int, default 2
        Panels per row.
    concepts : sequence of str, optional
        Concepts and their order; the frame's order by default.
    title : str, optional
        Title stem; panels are titled ``"<title>: <concept>"``
        (default stem: :func:`panel_title` of ``value``).
    shared_scale : bool, default True
        One colour scale for all panels (the limits of :func:`panel_style`, or
        else the value's range over the whole frame), so concepts compare.
    counts : str or None, default "n_pairs"
        Count column written under each cell's value (``n=<pairs>``), when
        the frame has it; None leaves it out.
    **kw
        Passed to :func:`layer_heatmap` (``label_a``, ``label_b``, ``fmt``,
        ``cmap``, ``vmin``, ``vmax``, ``rows``, ``cols``).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per concept (:func:`panel_axes`); each panel's ``get_label()``
        is ``"concept:<name>"``. Cells of skipped concept × layer pairs (NaN,
        or a non-empty ``skipped``) are blank.
    """
    check_frame(subspace_frame, "subspace_frame", ["concept", value])
    frame = subspace_frame
    if "skipped" in frame:
        skipped = frame["skipped"].fillna("").astype(str) != ""
        if skipped.any():
            frame = frame.copy()
            frame[value] = frame[value].astype(float).where(~skipped)
    present = list(dict.fromkeys(frame["concept"]))
    if concepts is None:
        concepts = present
    else:
        concepts = [concepts] if isinstance(concepts, str) else list(concepts)
        unknown = [c for c in concepts if c not in present]
        if unknown:
            raise ValueError(f"`concepts` {unknown} are not in `subspace_frame`; concepts present: {present}.")
    if not concepts:
        raise ValueError("`subspace_frame` has no rows; nothing to draw.")
    ncols = _check_ncols(ncols, len(concepts))
    options = {**panel_style(value), **kw}
    if shared_scale:
        data = pd.to_numeric(frame[value], errors="coerce").to_numpy(dtype=float)
        finite = data[np.isfinite(data)]
        if finite.size:
            options.setdefault("vmin", float(finite.min()))
            options.setdefault("vmax", float(finite.max()))
    rows, cols = options.get("rows", "layer_b"), options.get("cols", "layer_a")
    check_frame(frame, "subspace_frame", [rows, cols])
    shape = (frame[rows].nunique(), frame[cols].nunique())
    points, size = _page_panel_size(shape, ncols, lines=2 if counts in frame else 1)
    stem = panel_title(value) if title is None else title
    with matplotlib.rc_context(_font_rc(points)):
        fig, axes = _panel_grid(len(concepts), ncols, size)
        for ax, concept in zip(axes, concepts):
            layer_heatmap(frame[frame["concept"] == concept], value, ax=ax, title=f"{stem}: {concept}",
                          counts=counts if counts in frame else None, annot_max=points, **options)
            ax.set_label(f"concept:{concept}")
    return fig


def _page_panel_size(shape, ncols: int, lines: int = 1) -> tuple[float, tuple[float, float]]:
    """``(points, (width, height))`` of one heatmap panel drawn for the page.

    Every text, cell numbers included, is at least MIN_TEXT_PX high when ``ncols`` panels side by
    side are shown PAGE_WIDTH_PX wide; the rows are tall enough for ``lines`` lines per cell.
    """
    width = _heatmap_size(shape)[0]
    points = _page_points(width * ncols)
    return points, (width, shape[0] * (1.35 * lines * points / 72 + 0.12) + 5.0 * points / 72)


def _page_points(figure_width_in: float) -> float:
    """Font size (pt) that is MIN_TEXT_PX high on screen when the figure is PAGE_WIDTH_PX wide."""
    return max(10.0, MIN_TEXT_PX * 72.0 * figure_width_in / PAGE_WIDTH_PX)


def _font_rc(points: float) -> dict:
    return {"font.size": points, "axes.titlesize": points, "axes.labelsize": points,
            "xtick.labelsize": points, "ytick.labelsize": points, "legend.fontsize": points}


def panel_axes(fig: Figure) -> list[Axes]:
    """The visible data panels of a figure, colour bars left out, in drawing order."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


# --- bars and histograms -------------------------------------------------------------------------

def paired_vs_null_bars(frame: pd.DataFrame, metric: str, *, layer_a=None, ax: Axes | None = None,
                        label_a: str = "model A", label_b: str = "model B") -> Axes:
    """Paired score vs shuffled-null mean for one A layer, one bar pair per B layer (A8).

    Parameters
    ----------
    frame : pandas.DataFrame
        ``full_space.parquet`` restricted to one rule and direction.
    metric : str
        ``"svcca"``, ``"rsa"`` or ``"linear_cka"``; needs ``<metric>`` and
        ``<metric>_null_mean`` columns. The null bar's error bar is
        ``<metric>_null_std`` when that column exists.
    layer_a : optional
        The A layer; by default the one holding the highest paired score.
    ax : matplotlib.axes.Axes, optional
    label_a, label_b : str
        Model names used in the title and axis label.

    Returns
    -------
    matplotlib.axes.Axes
    """
    null_column = f"{metric}_null_mean"
    check_frame(frame, "frame", ["layer_a", "layer_b", metric, null_column])
    check_unique(frame, ["layer_a", "layer_b"], "frame")
    if layer_a is None:
        scores = pd.to_numeric(frame[metric], errors="coerce")
        if not scores.notna().any():
            raise ValueError(f"Column `{metric}` has no finite value; pass `layer_a` explicitly.")
        layer_a = frame.loc[scores.idxmax(), "layer_a"]
    rows = frame[frame["layer_a"] == layer_a]
    if rows.empty:
        raise ValueError(f"`frame` has no rows for layer_a={layer_a!r}; layers present: "
                         f"{sorted(frame['layer_a'].unique().tolist())}.")
    rows = rows.sort_values("layer_b")
    if ax is None:
        ax = _new_figure(max(4.0, 0.55 * len(rows) + 2.0), 3.6).subplots()
    x = np.arange(len(rows))
    width = 0.4
    std_column = f"{metric}_null_std"
    yerr = rows[std_column].to_numpy(dtype=float) if std_column in rows else None
    ax.bar(x - width / 2, rows[metric].to_numpy(dtype=float), width, label="paired", color="#3b0f70")
    ax.bar(x + width / 2, rows[null_column].to_numpy(dtype=float), width, yerr=yerr, capsize=3,
           label="shuffled null (mean ± sd)" if yerr is not None else "shuffled null (mean)", color="#fc8961")
    ax.set_xticks(x, [str(v) for v in rows["layer_b"]])
    ax.set_xlabel(f"{label_b} layer")
    ax.set_ylabel(display_name(metric))
    ax.set_title(_wrap(f"{display_name(metric)}: {label_a} layer {layer_a} vs {label_b} layers", ax),
                 fontsize="medium")
    ax.axhline(0.0, color="black", linewidth=0.6)
    # below the axes, never over the bars
    ax.legend(frameon=False, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    return ax


def control_bars(trained: pd.DataFrame, control: pd.DataFrame, metric: str, *, ax: Axes | None = None,
                 label_b: str = "model B", label_control: str = "control") -> Axes:
    """Same-layer scores of A against B and against the random-model control, each beside its null.

    Parameters
    ----------
    trained, control : pandas.DataFrame
        Grid rows of one rule and direction (A vs B, A vs control); only
        same-layer rows (``layer_a == layer_b``) present in both are drawn.
    metric : str
        Needs ``<metric>`` and ``<metric>_null_mean`` (and uses
        ``<metric>_null_std`` for error bars when present).
    ax : matplotlib.axes.Axes, optional
    label_b, label_control : str
        Legend names of the two comparisons.

    Returns
    -------
    matplotlib.axes.Axes
    """
    null_column = f"{metric}_null_mean"
    columns = ["layer_a", "layer_b", metric, null_column]
    check_frame(trained, "trained", columns)
    check_frame(control, "control", columns)
    same = [f[f["layer_a"] == f["layer_b"]].set_index("layer_a") for f in (trained, control)]
    layers = sorted(set(same[0].index) & set(same[1].index))
    if not layers:
        raise ValueError("`trained` and `control` share no same-layer row (layer_a == layer_b); "
                         "pass the same-layer cells of both grids.")
    if ax is None:
        ax = _new_figure(max(4.5, 1.1 * len(layers) + 2.0), 3.6).subplots()
    x = np.arange(len(layers))
    width = 0.2
    bars = [
        (same[0], metric, f"A vs {label_b}", "#3b0f70"),
        (same[0], null_column, f"A vs {label_b}: null", "#8c8c8c"),
        (same[1], metric, f"A vs {label_control}", "#de4968"),
        (same[1], null_column, f"A vs {label_control}: null", "#fcc5b8"),
    ]
    std_column = f"{metric}_null_std"
    for i, (rows, column, label, color) in enumerate(bars):
        rows = rows.loc[layers]
        yerr = rows[std_column].to_numpy(dtype=float) if column == null_column and std_column in rows else None
        ax.bar(x + (i - 1.5) * width, rows[column].to_numpy(dtype=float), width, yerr=yerr, capsize=2,
               label=label, color=color)
    ax.set_xticks(x, [str(v) for v in layers])
    ax.set_xlabel("layer (same layer on both sides)")
    ax.set_ylabel(display_name(metric))
    ax.set_title(_wrap(f"{display_name(metric)}: trained vs random-model control", ax), fontsize="medium")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.legend(frameon=False, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    return ax


def hub_histogram(counts, *, ax: Axes | None = None, log: bool = True, bins: int = 40,
                  label: str | None = None) -> Axes:
    """How many latents chose each target latent (hub features), as a histogram.

    Parameters
    ----------
    counts : array_like of int, shape (n_targets,)
        For each A latent, how many B latents picked it as their best partner
        (:func:`saesim.compare.match.hub_counts`). Latents chosen by nobody (0) are
        counted in the legend, not drawn.
    ax : matplotlib.axes.Axes, optional
    log : bool, default True
        Log-spaced bins and log axes (the counts are heavy-tailed: one hub can
        take thousands of partners).
    bins : int, default 40
    label : str, optional
        Legend label of the bars.

    Returns
    -------
    matplotlib.axes.Axes
    """
    counts = _check_1d(counts, "counts")
    if (counts < 0).any():
        raise ValueError("`counts` must be non-negative chooser counts; got a minimum of "
                         f"{counts.min():g}.")
    chosen = counts[counts > 0]
    if ax is None:
        ax = _new_figure(5.0, 3.6).subplots()
    if chosen.size:
        edges = (np.unique(np.geomspace(1, chosen.max() + 1, bins + 1).round())
                 if log and chosen.max() > 1 else bins)
        text = label or "A latents"
        ax.hist(chosen, bins=edges, color="#3b0f70",
                label=f"{text}: {chosen.size} chosen, {int((counts == 0).sum())} never chosen;\n"
                      f"largest hub: {int(chosen.max())}")
        # below the axes: inside, a long label covers the bars or squeezes the plot
        ax.legend(frameon=False, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2))
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("latents choosing it (many-to-1 partners)")
    ax.set_ylabel("number of latents")
    ax.set_title("Hub features: partners per chosen latent")
    return ax


def frequency_histogram(freq, *, ax: Axes | None = None, log: bool = True, bins: int = 50,
                        label: str | None = None) -> Axes:
    """Activation frequency per latent (fraction of tokens where it fires), log x axis.

    Parameters
    ----------
    freq : array_like, shape (n_latents,), or mapping of label -> array
        Firing frequencies in [0, 1]; a mapping overlays several SAEs
        (``{"model A": fa, "model B": fb}``). Dead latents (frequency 0) cannot
        sit on a log axis: they are counted in the legend.
    ax : matplotlib.axes.Axes, optional
    log : bool, default True
        Log-spaced bins and log x axis.
    bins : int, default 50
    label : str, optional
        Legend label when ``freq`` is a single array.

    Returns
    -------
    matplotlib.axes.Axes
    """
    series = dict(freq) if isinstance(freq, Mapping) else {label or "latents": freq}
    series = {name: _check_1d(values, "freq") for name, values in series.items()}
    for values in series.values():
        if values.size and (np.nanmin(values) < 0 or np.nanmax(values) > 1):
            raise ValueError("`freq` must hold fractions of tokens in [0, 1]; got values in "
                             f"[{np.nanmin(values):g}, {np.nanmax(values):g}] (divide counts by n_tokens).")
    live = np.concatenate([v[v > 0] for v in series.values()]) if series else np.array([])
    if ax is None:
        ax = _new_figure(5.0, 3.6).subplots()
    if live.size:
        low, high = live.min(), live.max()
        edges = np.geomspace(low, high * (1 + 1e-9), bins + 1) if log and high > low else bins
        for name, values in series.items():
            alive = values[values > 0]
            ax.hist(alive, bins=edges, histtype="step", linewidth=1.5,
                    label=f"{name} ({int((values == 0).sum())} dead not shown)")
        ax.legend(frameon=False, fontsize="small")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("activation frequency (fraction of tokens)")
    ax.set_ylabel("number of latents")
    ax.set_title("Latent activation frequency")
    return ax


@dataclass(frozen=True)
class Cutoffs:
    """Where Holm and Benjamini-Hochberg stop rejecting, on the raw p-value scale.

    Attributes
    ----------
    m : int
        Number of (finite) p-values in the family.
    alpha : float
        Family-wise error rate (Holm) and false-discovery rate (BH).
    holm, bh : float
        Largest raw p-value rejected by each procedure (every p at or below it
        is rejected); NaN when nothing is rejected.
    n_holm, n_bh : int
        Number of rejections.
    """

    m: int
    alpha: float
    holm: float
    bh: float
    n_holm: int
    n_bh: int


def multiple_testing_cutoffs(p, *, alpha: float = 0.05) -> Cutoffs:
    """Holm and BH rejection cut-offs of a family of raw p-values.

    Parameters
    ----------
    p : array_like
        Raw p-values; NaN entries are left out of the family.
    alpha : float, default 0.05

    Returns
    -------
    Cutoffs

    Notes
    -----
    With the sorted p-values :math:`p_{(1)} \\le \\dots \\le p_{(m)}`:

    * Holm rejects :math:`p_{(1)}, \\dots, p_{(k)}` where k is the largest index
      with :math:`p_{(j)} \\le \\alpha / (m - j + 1)` for every :math:`j \\le k`;
    * BH rejects :math:`p_{(1)}, \\dots, p_{(k)}` where k is the largest index
      with :math:`p_{(k)} \\le k \\alpha / m` (the BH critical line).

    The cut-off is :math:`p_{(k)}` (k from :func:`saesim.compare.multitest.n_rejected`). It rejects
    exactly the rows whose ``<metric>_p_holm`` / ``<metric>_p_bh`` columns
    (:func:`saesim.compare.multitest.adjust_columns`) are at most ``alpha``.

    Examples
    --------
    >>> multiple_testing_cutoffs([0.001, 0.01, 0.03, 0.2], alpha=0.05).n_bh
    3
    """
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1); got {alpha!r}.")
    values = np.asarray(p, dtype=float).ravel()
    values = np.sort(values[np.isfinite(values)])
    m = values.size
    if m == 0:
        return Cutoffs(0, float(alpha), math.nan, math.nan, 0, 0)
    n_holm, n_bh = n_rejected(values, alpha, "holm"), n_rejected(values, alpha, "bh")
    return Cutoffs(m, float(alpha), float(values[n_holm - 1]) if n_holm else math.nan,
                   float(values[n_bh - 1]) if n_bh else math.nan, n_holm, n_bh)


def pvalue_histogram(frame: pd.DataFrame, columns: Sequence[str] | str, *, alpha: float = 0.05,
                     bins: int = 20, ncols: int = 3) -> Figure:
    """Histograms of raw p-values over a grid, with the Holm and BH cut-offs drawn.

    Parameters
    ----------
    frame : pandas.DataFrame
        A grid table (``full_space.parquet``, ``subspace.parquet``).
    columns : str or sequence of str
        Raw p-value columns, one panel each (``["svcca_p", "rsa_p"]``).
    alpha : float, default 0.05
        Level of both procedures; an uncorrected line at ``alpha`` is drawn too.
    bins : int, default 20
        Bins on [0, 1].
    ncols : int, default 3

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    The p-values drawn are the raw ones. Each procedure is drawn as a vertical
    line at its cut-off (:func:`multiple_testing_cutoffs`): the largest raw
    p-value it rejects, so the bars left of the line are the rejected tests.
    For BH this is where the sorted p-values last fall under the critical line
    :math:`i\\alpha/m`; for Holm, where the step-down sequence
    :math:`\\alpha/(m-i+1)` first fails. When a procedure rejects nothing the
    line is drawn dotted at :math:`\\alpha/m`, the smallest threshold either
    procedure uses (no p-value lies below it). The legend gives each cut-off
    and its number of rejections out of m. Under the null, permutation
    p-values are uniform; a spike at the left edge is the signal.
    """
    columns = _check_values(columns, name="columns")
    check_frame(frame, "frame", columns)
    ncols = _check_ncols(ncols, len(columns))
    fig, axes = _panel_grid(len(columns), ncols, (4.6, 3.4))
    for ax, column in zip(axes, columns):
        p = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        p = p[np.isfinite(p)]
        if p.size and (p.min() < 0 or p.max() > 1):
            raise ValueError(f"Column `{column}` must hold p-values in [0, 1]; got [{p.min():g}, {p.max():g}].")
        cut = multiple_testing_cutoffs(p, alpha=alpha)
        ax.hist(p, bins=np.linspace(0, 1, bins + 1), color="#3b0f70", alpha=0.85)
        ax.axvline(alpha, color="grey", linestyle="--", label=f"α = {alpha:g} (uncorrected, "
                                                               f"{int((p <= alpha).sum())}/{cut.m})")
        for name, value, n, colour in (("BH", cut.bh, cut.n_bh, "#fc8961"),
                                       ("Holm", cut.holm, cut.n_holm, "#b73779")):
            if n:
                ax.axvline(value, color=colour, label=f"{name} cut-off p ≤ {value:.3g} ({n}/{cut.m} rejected)")
            else:
                ax.axvline(alpha / max(cut.m, 1), color=colour, linestyle=":",
                           label=f"{name}: none rejected (α/m = {alpha / max(cut.m, 1):.3g})")
        ax.set_xlim(0, 1)
        ax.set_xlabel("raw p-value")
        ax.set_ylabel("number of tests")
        ax.set_title(panel_title(column))
        ax.legend(frameon=False, fontsize="x-small")
    return fig


# --- the two schematic figures ------------------------------------------------------------------

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
    fig, axes = _panel_grid(3, 3, (0.95 * n_cols + 2.4, 0.6 * n_rows + 1.8))
    for ax, matrix, title, row_labels in zip(axes, matrices, titles, labels):
        grid = pd.DataFrame(matrix, index=row_labels, columns=[f"dim {j + 1}" for j in range(n_cols)])
        _draw_grid(ax, grid, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, cbar=False)
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


# --- saving and captions ------------------------------------------------------------------------

def save_figure(fig: Figure, name: str, out_dir, *, formats: Sequence[str] = SAVE_FORMATS,
                dpi: int = SAVE_DPI, metadata: Mapping | None = None,
                min_width_px: int | None = None) -> dict[str, Path]:
    """Write a figure as ``<name>.pdf``, ``<name>.svg`` and ``<name>.png``, atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    name : str
        Stable file stem without suffix, e.g. ``"fig3_full_space_svcca_rsa"``
        (see :data:`FIGURE_NAMES`); letters, digits, ``_``, ``-`` and ``.``.
    out_dir : str or Path
        Created if missing.
    formats : sequence of str, default ("pdf", "svg", "png")
    dpi : int, default 150
        Resolution of raster output.
    metadata : mapping, optional
        ``Title``, ``Description`` and ``Software`` of the figure (e.g. the
        caption and saesim's version, commit and build date); written as the
        PNG's text chunks, the PDF's Title / Subject / Creator and the SVG's
        Title / Description / Creator.
    min_width_px : int, optional
        Smallest width of the PNG: a figure that would come out narrower at
        ``dpi`` is rendered at the resolution that reaches it.

    Returns
    -------
    dict of str -> Path
        Format -> written file.

    Notes
    -----
    Each file is written to a temporary name in ``out_dir`` and moved into
    place with :func:`os.replace`, so a reader never sees a half-written file.
    Creation dates are left out of the PDF and SVG metadata and SVG ids are
    salted with ``name``, so saving the same figure twice gives the same bytes.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"`fig` must be a matplotlib Figure; got {type(fig).__name__}.")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        raise ValueError(f"`name` must be a plain file stem of letters, digits, '_', '-', '.' "
                         f"(e.g. 'fig3_full_space_svcca_rsa'); got {name!r}.")
    formats = [formats] if isinstance(formats, str) else list(formats)
    if any(name.lower().endswith(f".{ext}") for ext in formats):
        raise ValueError(f"`name` {name!r} must not carry a suffix; one file per format is written.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {k: str(v) for k, v in (metadata or {}).items() if v is not None}
    unknown = sorted(set(info) - {"Title", "Description", "Software"})
    if unknown:
        raise ValueError(f"`metadata` keys {unknown} are not supported; use Title, Description and Software.")
    per_format = {
        "pdf": {"CreationDate": None, **{pdf: info[key] for key, pdf in (("Title", "Title"), ("Description", "Subject"),
                                                                          ("Software", "Creator")) if key in info}},
        "svg": {"Date": None, **{svg: info[key] for key, svg in (("Title", "Title"), ("Description", "Description"),
                                                                  ("Software", "Creator")) if key in info}},
        "png": dict(info) or None,
    }
    written = {}
    with matplotlib.rc_context({"svg.hashsalt": name}):
        for ext in formats:
            target = out_dir / f"{name}.{ext}"
            _save_one(fig, target, ext, dpi, per_format.get(ext))
            if ext == "png" and min_width_px:
                width = _png_width(target)
                if width < min_width_px:
                    _save_one(fig, target, ext, int(math.ceil(dpi * min_width_px / max(width, 1))) + 1,
                              per_format.get(ext))
            written[ext] = target
    return written


def _save_one(fig: Figure, target: Path, ext: str, dpi: int, metadata) -> None:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight", metadata=metadata)


def _png_width(path: Path) -> int:
    """Pixel width from a PNG's IHDR chunk."""
    with open(path, "rb") as handle:
        header = handle.read(24)
    return int.from_bytes(header[16:20], "big")


_RULE_WORDS = {
    "many_to_one": "many-to-1 (each chooser keeps its best partner)",
    "first_index": "1-1 by first occurrence (the paper's)",
    "max_corr": "1-1 keeping the best-correlated chooser",
    "mutual": "mutual nearest neighbours",
    "hungarian": "1-1 optimal assignment (Hungarian)",
}
_DIRECTION_WORDS = {
    "b_to_a": "each B latent picks its best A latent",
    "a_to_b": "each A latent picks its best B latent",
}
_NULL_WORDS = {"shuffle": "shuffled pairings", "group": "hub partners permuted among their many-to-1 groups",
               "random_subset": "random unpaired subsets"}


def caption(frame_or_meta, what: str, *, meta: Mapping | None = None) -> str:
    """A caption naming every setting behind a figure or table.

    Parameters
    ----------
    frame_or_meta : mapping or pandas.DataFrame
        Settings, with any of the keys ``profile``, ``rule``, ``direction``,
        ``junk_filter``, ``junk_list`` (a name from
        :data:`saesim.compare.filters.JUNK_LISTS` or the tokens), ``require_overlap``,
        ``top_k``, ``r_min``, ``null_kind``, ``n_perm``, ``seed``, ``compat``,
        ``layers_a``, ``layers_b``, ``label_a``, ``label_b``. A tidy table
        gives the settings it records (single-valued ``rule``, ``direction``,
        ``compat``, ``null_kind``, ``n_perm``, ``seed``, ``profile`` columns;
        the layers from ``layer_a`` / ``layer_b``).
    what : str
        What is shown, e.g. ``"Paired SVCCA (a) and RSA (b) per layer pair"``.
    meta : mapping, optional
        Settings added to (and overriding) those of a table.

    Returns
    -------
    str
        ``what`` followed by sentences for the data, the pairing, the filters,
        the null and the mode; settings not given are left out.

    Examples
    --------
    >>> print(caption({"profile": "pythia", "rule": "many_to_one", "r_min": 0.1, "n_perm": 100, "seed": 0},
    ...               "Paired SVCCA"))  # doctest: +NORMALIZE_WHITESPACE
    Paired SVCCA. Profile pythia. Pairing: many-to-1 (each chooser keeps its best partner).
    Filters: r > 0.1. Null: shuffled pairings, 100 draws, seed 0.
    """
    settings = dict(_meta_from_frame(frame_or_meta) if isinstance(frame_or_meta, pd.DataFrame)
                    else _check_mapping(frame_or_meta, "frame_or_meta"))
    settings.update(_check_mapping(meta or {}, "meta"))
    parts = [what.rstrip(". ")]
    if settings.get("fvu_flags"):
        parts.append(str(settings["fvu_flags"]).rstrip(". "))
    data = []
    if settings.get("profile") is not None:
        data.append(f"Profile {settings['profile']}")
    label_a, label_b = settings.get("label_a", "A"), settings.get("label_b", "B")
    if settings.get("layers_a") is not None or settings.get("layers_b") is not None:
        data.append(f"layers {label_a} {_layers(settings.get('layers_a'))} × {label_b} "
                    f"{_layers(settings.get('layers_b'))}")
    if data:
        parts.append("; ".join(data))
    pairing = []
    if settings.get("rule") is not None:
        pairing.append(_words(settings["rule"], _RULE_WORDS))
    if settings.get("direction") is not None:
        pairing.append(_words(settings["direction"], _DIRECTION_WORDS))
    if pairing:
        parts.append("Pairing: " + ", ".join(pairing))
    filters = []
    if settings.get("junk_filter") is False:
        filters.append("no junk filter")
    elif settings.get("junk_filter") or settings.get("junk_list") is not None:
        top_k = settings.get("top_k")
        junk = "junk filter on the top-" + (f"{top_k}" if top_k is not None else "k") + " tokens"
        if settings.get("junk_list") is not None:
            junk += f" (list {_junk(settings['junk_list'])})"
        filters.append(junk)
    elif settings.get("top_k") is not None:
        filters.append(f"top-{settings['top_k']} tokens per latent")
    if settings.get("require_overlap") is not None:
        filters.append("shared top token required" if settings["require_overlap"] else "no shared-token rule")
    if settings.get("r_min") is not None:
        filters.append(f"r > {settings['r_min']:g}" if _is_number(settings["r_min"])
                       else f"r > {settings['r_min']}")
    if filters:
        parts.append("Filters: " + "; ".join(filters))
    null = []
    if settings.get("null_kind") is not None or settings.get("n_perm") is not None:
        kind = _words(settings.get("null_kind", "shuffle"), _NULL_WORDS)
        null.append(kind + (f", {settings['n_perm']} draws" if settings.get("n_perm") is not None else ""))
    if settings.get("seed") is not None:
        null.append(f"seed {settings['seed']}")
    if null:
        parts.append("Null: " + ", ".join(null))
    if settings.get("compat") is not None:
        parts.append("Mode: authors-compatible (compat=True: SVCCA with k = 1, p = #(null ≥ score)/R)"
                     if _truthy(settings["compat"]) else
                     f"Mode: corrected (compat=False: SVCCA keeping {dims_words(settings.get('svcca_dims', 'ratio:10'))}, "
                     "p = (1 + #(null ≥ score))/(1 + R))")
    return ". ".join(parts) + "."


# --- internals ----------------------------------------------------------------------------------


def dims_words(policy) -> str:
    """An SVCCA dimension policy in words, for captions ("at most one dimension per 10 distinct rows a side")."""
    text = str(policy)
    if text.startswith("ratio:"):
        return f"at most one dimension per {text[6:]} distinct rows a side"
    if isinstance(policy, int) or text.isdigit():
        return f"{int(float(text))} dimensions"
    return f"{100 * float(text):g}% of the variance"

def _wrap(text: str, ax: Axes, *, points: float = 10.0) -> str:
    """``text`` broken into lines that fit the width of ``ax`` (a title that never runs into its neighbour's)."""
    import textwrap

    width_in = ax.get_position().width * ax.figure.get_figwidth()
    chars = max(16, int(72 * width_in / (0.55 * points)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _heatmap_size(shape) -> tuple[float, float]:
    n_rows, n_cols = shape
    return 1.05 * max(n_cols, 1) + 2.4, 0.5 * max(n_rows, 1) + 1.6


def _panel_grid(n: int, ncols: int, panel_size) -> tuple[Figure, list[Axes]]:
    nrows = math.ceil(n / ncols)
    fig = _new_figure(panel_size[0] * ncols, panel_size[1] * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel().tolist()
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]


def _draw_grid(ax: Axes, grid: pd.DataFrame, *, fmt, cmap, vmin, vmax, cbar, counts=None, annot_max=None) -> None:
    import seaborn as sns

    values = grid.to_numpy(dtype=float)
    if not np.isfinite(values).any():
        # nothing to colour: keep the axes and ticks so the panel still reads as "all blank"
        vmin = 0.0 if vmin is None else vmin
        vmax = 1.0 if vmax is None else vmax
    labels = np.array([[format_cell(v, fmt) for v in row] for row in values], dtype=object)
    if counts is not None:
        n = counts.to_numpy(dtype=float)
        labels = np.array([[lab if not lab or not np.isfinite(c) else f"{lab}\nn={int(c)}"
                            for lab, c in zip(row, crow)] for row, crow in zip(labels, n)], dtype=object)
    sns.heatmap(grid, ax=ax, annot=labels, fmt="", cmap=cmap, vmin=vmin, vmax=vmax, cbar=cbar,
                annot_kws={**ANNOT_KWS, "size": _annotation_size(ax, grid.shape, labels, cbar, annot_max)},
                mask=~np.isfinite(values))
    ax.tick_params(axis="y", rotation=0)
    ax.tick_params(axis="x", rotation=0)


def _annotation_size(ax: Axes, shape, labels, cbar: bool, largest: float | None = None) -> float:
    """Font size (pt) at which the widest cell label fits its cell: at most ``largest`` (the paper's
    14 pt by default), at least 5."""
    n_rows, n_cols = max(shape[0], 1), max(shape[1], 1)
    fig = ax.figure
    box = ax.get_position()
    width_in = box.width * fig.get_figwidth() * (0.8 if cbar else 0.95)
    height_in = box.height * fig.get_figheight() * 0.9
    lines = [str(lab).split("\n") for lab in np.ravel(labels) if lab]
    chars = max((len(line) for parts in lines for line in parts), default=4)
    n_lines = max((len(parts) for parts in lines), default=1)
    by_width = 72 * width_in / n_cols / (0.62 * max(chars, 1) + 0.8)
    by_height = 72 * height_in / n_rows / (1.25 * n_lines + 0.3)
    return float(np.clip(min(by_width, by_height), 5.0, largest or ANNOT_KWS["size"]))


def _per_panel(option, value: str, index: int, key: str):
    if key in ("fmt", "vmin", "vmax", "cmap"):
        if isinstance(option, Mapping):
            return option.get(value, panel_style(value).get(key))
        if isinstance(option, (list, tuple)):
            return option[index]
    return option


def _check_values(values, *, name: str = "values") -> list[str]:
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        raise ValueError(f"`{name}` is empty; give at least one column.")
    return values


def _check_ncols(ncols, n: int) -> int:
    if not isinstance(ncols, (int, np.integer)) or isinstance(ncols, bool) or ncols < 1:
        raise ValueError(f"`ncols` must be a positive integer; got {ncols!r}.")
    return int(min(ncols, n))


def _check_1d(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D (one value per latent); got shape {array.shape}.")
    return array


def _check_mapping(value, name: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise TypeError(f"`{name}` must be a dict of settings or a tidy DataFrame; got {type(value).__name__}.")
    return value


def _meta_from_frame(frame: pd.DataFrame) -> dict:
    meta = {}
    for column in ("profile", "rule", "direction", "compat", "null_kind", "n_perm", "seed", "junk_list",
                   "top_k", "r_min"):
        if column in frame:
            values = list(dict.fromkeys(frame[column].dropna().tolist()))
            if len(values) == 1:
                meta[column] = values[0]
            elif values:
                meta[column] = " / ".join(str(v) for v in values)
    for column, key in (("layer_a", "layers_a"), ("layer_b", "layers_b")):
        if column in frame:
            meta[key] = sorted(frame[column].dropna().unique().tolist())
    return meta


def _layers(layers) -> str:
    if layers is None:
        return "?"
    if isinstance(layers, (str, int, np.integer)):
        return str(layers)
    layers = list(layers)
    if len(layers) > 2 and all(isinstance(v, (int, np.integer)) for v in layers) \
            and list(layers) == list(range(layers[0], layers[0] + len(layers))):
        return f"{layers[0]}–{layers[-1]}"
    return ", ".join(str(v) for v in layers)  # plain text: never a Python set in a caption


def _junk(junk_list) -> str:
    """The junk list by name and size: a caption never spells out tokens (they may be another tokenizer's)."""
    from saesim.compare.filters import JUNK_LISTS

    if isinstance(junk_list, str):
        tokens = JUNK_LISTS.get(junk_list)
        return junk_list if tokens is None else f"{junk_list}, {len(tokens)} tokens"
    return f"{len(tuple(junk_list))} custom tokens"


def _words(value, table: Mapping) -> str:
    return table.get(value, str(value)) if isinstance(value, str) else str(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _score_line(scores: Mapping) -> str:
    if not scores:
        return ""
    return "\n" + ", ".join(f"{name} = {float(v):.3f}" for name, v in scores.items())
