"""Layer × layer heatmaps in the paper's style: one panel, panels side by side, one panel per concept.

Private to :mod:`saesim.report`; import the public names from :mod:`saesim.report.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from saesim.report._plot_style import (
    check_ncols,
    check_values,
    draw_grid,
    new_figure,
    panel_grid,
    panel_style,
    panel_title,
)
from saesim.report.frames import check_frame, pivot_grid


PAGE_WIDTH_PX = 700
"""Width at which the book's article column shows a figure (a 1 280-px browser window)."""

MIN_TEXT_PX = 10
"""Smallest text height, in screen pixels at :data:`PAGE_WIDTH_PX`, of a figure drawn for the page."""

_PANEL_LETTERS = "abcdefghijklmnopqrstuvwxyz"


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
        ax = new_figure(*_heatmap_size(grid.shape)).subplots()
    draw_grid(ax, grid, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, cbar=cbar, counts=count_grid,
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
    ncols = check_ncols(ncols or min(2, len(panels)), len(panels))
    shape = max(((f["layer_b"].nunique(), f["layer_a"].nunique()) for _, f, _, _ in panels),
                key=lambda s: s[0] * s[1])
    fig, axes = panel_grid(len(panels), ncols, _heatmap_size(shape))
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
    values = check_values(values)
    if titles is not None and len(titles) != len(values):
        raise ValueError(f"`titles` has {len(titles)} entries but `values` has {len(values)}; give one per panel.")
    ncols = check_ncols(ncols, len(values))
    rows, cols = kw.get("rows", "layer_b"), kw.get("cols", "layer_a")
    check_frame(frame, "frame", [rows, cols, *values])
    shape = (frame[rows].nunique(), frame[cols].nunique())
    points, (width, height) = _page_panel_size(shape, ncols)
    with matplotlib.rc_context(_font_rc(points)):
        fig, axes = panel_grid(len(values), ncols, (width, max(height, _heatmap_size(shape)[1])))
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
    ncols = check_ncols(ncols, len(concepts))
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
        fig, axes = panel_grid(len(concepts), ncols, size)
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


def _heatmap_size(shape) -> tuple[float, float]:
    n_rows, n_cols = shape
    return 1.05 * max(n_cols, 1) + 2.4, 0.5 * max(n_rows, 1) + 1.6


def _per_panel(option, value: str, index: int, key: str):
    if key in ("fmt", "vmin", "vmax", "cmap"):
        if isinstance(option, Mapping):
            return option.get(value, panel_style(value).get(key))
        if isinstance(option, (list, tuple)):
            return option[index]
    return option
