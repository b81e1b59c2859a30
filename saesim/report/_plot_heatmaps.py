"""Layer × layer heatmaps in the paper's style: one panel, panels side by side, one panel per rule or concept.

Private to :mod:`saesim.report`; import the public names from :mod:`saesim.report.plots`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from saesim import vocab
from saesim.report._plot_scale import (
    ColourScale,
    HeatmapStyle,
    colour_scale,
    constant_of,
    constant_value,
    finite_values,
    pooled,
    range_note,
    small_spread,
)
from saesim.report._plot_style import (
    check_ncols,
    check_values,
    draw_grid,
    new_figure,
    panel_grid,
    panel_style,
    panel_title,
    wrap,
)
from saesim.report.frames import check_frame, fmt_number, pivot_grid


PAGE_WIDTH_PX = 700
"""Width at which the book's article column shows a figure (a 1 280-px browser window)."""

MIN_TEXT_PX = 10
"""Smallest text height, in screen pixels at :data:`PAGE_WIDTH_PX`, of a figure drawn for the page."""

DEFAULT_FMT = ".3f"
"""Annotation format of a heatmap cell unless the style or the column says otherwise."""

CONSTANT_LABEL = "constant"
"""``get_label()`` of a panel drawn as a sentence because its column holds one value (:func:`constant_text`)."""

_PANEL_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_P_COLUMN = re.compile(r"_p(_holm|_bh)?$")


def layer_heatmap(frame: pd.DataFrame, value: str, *, rows: str = "layer_b", cols: str = "layer_a",
                  ax: Axes | None = None, title: str | None = None, label_a: str = "model A",
                  label_b: str = "model B", counts: str | None = None, style: HeatmapStyle | None = None) -> Axes:
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
    label_a, label_b : str, default ``"model A"``, ``"model B"``
        Model names for the axis labels (``"<label> layer"``).
    counts : str, optional
        A count column (e.g. ``"n_pairs"``) written under each cell's value
        as ``n=<count>``: how many pairs the score rests on.
    style : HeatmapStyle, optional
        Format, colours and limits; fields left None come from
        :func:`panel_style` of ``value``, then from the data (see
        :class:`HeatmapStyle`: the colour limits contain every value unless
        given).

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
    where they are not, so that neighbouring numbers never overprint; a
    number that rounds to zero prints without a sign. A column with one value
    in every cell (:func:`constant_value`) is not drawn as a block of one
    colour: the panel states the value in one sentence
    (:func:`constant_text`).
    """
    style = (style or HeatmapStyle()).filled(panel_style(value))
    grid = pivot_grid(frame, value, rows=rows, cols=cols)
    if ax is None:
        ax = new_figure(*_heatmap_size(grid.shape)).subplots()
    title = panel_title(value) if title is None else title
    sentence = constant_text(frame, value, title="")
    if sentence is not None:
        draw_constant(ax, title, sentence)
        return ax
    draw_panel(ax, frame, value, grid, title, colour_scale(grid.to_numpy(dtype=float), style), style,
               rows=rows, cols=cols, counts=counts, label_a=label_a, label_b=label_b)
    return ax


def draw_panel(ax: Axes, frame: pd.DataFrame, value: str, grid: pd.DataFrame, title: str, scale: ColourScale,
               style: HeatmapStyle, *, rows: str, cols: str, counts: str | None, label_a: str, label_b: str) -> None:
    """``grid`` (``value`` of ``frame``) on ``scale``: the annotated cells, colour bar, title and axis labels.

    Data that pass the scale's limits give the colour bar arrows; data spread over less than
    ``style.min_spread`` of their level get their range on the colour bar (or under the title).
    """
    count_grid = None
    if counts is not None and counts in frame:
        count_grid = pivot_grid(frame, counts, rows=rows, cols=cols).reindex(index=grid.index, columns=grid.columns)
    values = grid.to_numpy(dtype=float)
    fmt = style.fmt or DEFAULT_FMT
    note = range_note(values, fmt) if small_spread(values, style.min_spread) else None
    cbar_kws = {"extend": scale.extend(values)}
    if note:
        cbar_kws["label"] = note
    draw_grid(ax, grid, fmt=fmt, cmap=scale.cmap, vmin=scale.vmin, vmax=scale.vmax, center=scale.center,
              cbar=style.cbar, counts=count_grid, annot_max=style.annot_max, cbar_kws=cbar_kws)
    ax.set_title(title if style.cbar or not note else f"{title}\n({note})")
    ax.set_xlabel(f"{label_a} layer")
    ax.set_ylabel(f"{label_b} layer")


def draw_constant(ax: Axes, title: str, sentence: str) -> None:
    """A panel that states its one value in a sentence instead of a block of one colour."""
    ax.set_axis_off()
    ax.set_title(title)
    ax.set_label(CONSTANT_LABEL)
    text = wrap(sentence, ax, points=float(matplotlib.rcParams["font.size"]))
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center")


def constant_text(frame: pd.DataFrame, value: str, *, title: str | None = None) -> str | None:
    """One sentence for a column that holds one value in every cell, or None when the cells differ.

    Print it in place of a heatmap that would be a block of one colour. A p-value column that
    equals ``1 / (n_perm + 1)`` everywhere is explained: the smallest p-value ``n_perm``
    permutations can give.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy table (one row per cell).
    value : str
        Column to check (:func:`constant_value`).
    title : str, optional
        What to call the column at the start of the sentence; :func:`panel_title` of ``value`` by
        default, ``""`` for no name.

    Returns
    -------
    str or None

    Examples
    --------
    >>> frame = pd.DataFrame({"svcca_p": [1 / 101] * 4, "n_perm": 100})
    >>> constant_text(frame, "svcca_p", title="SVCCA p")  # doctest: +NORMALIZE_WHITESPACE
    'SVCCA p: 0.009901 in all 4 cells, the smallest p-value 100 permutations can give (1/(100+1)): no shuffled
    pairing scored as high as the paired one.'
    """
    constant = constant_value(frame, value)
    if constant is None:
        return None
    name = panel_title(value) if title is None else title
    n_cells = int(np.isfinite(pd.to_numeric(frame[value], errors="coerce").to_numpy(dtype=float)).sum())
    sentence = f"{_constant_number(value, constant)} in all {n_cells} cells"
    n_perm = _one_value(frame, "n_perm")
    if _P_COLUMN.search(value) and n_perm is not None and np.isclose(constant, 1.0 / (n_perm + 1)):
        n_perm = int(n_perm)
        sentence += (f", the smallest p-value {n_perm} permutations can give (1/({n_perm}+1)): no shuffled "
                     "pairing scored as high as the paired one")
    return f"{name}: {sentence}." if name else f"{sentence[0].upper()}{sentence[1:]}."


def shared_style(frames: Sequence[pd.DataFrame], value: str, style: HeatmapStyle | None = None) -> HeatmapStyle:
    """``style`` with the colour limits and map fixed over ``value`` of every frame: one scale for panels drawn apart.

    For panels placed by hand (e.g. a grid of :func:`layer_heatmap` calls) that compare the same
    column across frames; :func:`heatmap_panels`, :func:`comparison_heatmaps` and
    :func:`concept_heatmap_grid` share scales themselves.

    Parameters
    ----------
    frames : sequence of pandas.DataFrame
        The tables drawn side by side.
    value : str
        Column shown in every panel.
    style : HeatmapStyle, optional
        Options kept; fields left None come from :func:`panel_style` of ``value``.

    Returns
    -------
    HeatmapStyle
        With ``vmin``, ``vmax`` and ``cmap`` set (:func:`colour_scale` of the pooled values).
    """
    style = (style or HeatmapStyle()).filled(panel_style(value))
    for i, frame in enumerate(frames):
        check_frame(frame, f"frames[{i}]", [value])
    scale = colour_scale(pooled(frame[value] for frame in frames), style)
    return style.replace(vmin=scale.vmin, vmax=scale.vmax, cmap=scale.cmap)


def comparison_heatmaps(panels: Sequence[tuple[str, pd.DataFrame, str, str]], value: str, *,
                        ncols: int | None = None, style: HeatmapStyle | None = None) -> Figure:
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
    style : HeatmapStyle, optional
        Fields left None come from :func:`panel_style` of ``value``: for an
        excess or a z-score the null level, 0, is white, the colours diverge
        from it only where values lie on both sides of it. The limits come
        from every panel's values together.

    Returns
    -------
    matplotlib.figure.Figure
        When every panel holds one and the same value, each panel states it
        in a sentence (:func:`constant_text`) instead.
    """
    panels = list(panels)
    if not panels:
        raise ValueError("`panels` is empty; give at least one (title, frame, label_x, label_y).")
    for title, frame, _, _ in panels:
        check_frame(frame, f"frame of {title!r}", ["layer_a", "layer_b", value])
    style = (style or HeatmapStyle()).filled(panel_style(value))
    values = pooled(frame[value] for _, frame, _, _ in panels)
    ncols = check_ncols(ncols or min(2, len(panels)), len(panels))
    shape = max(((f["layer_b"].nunique(), f["layer_a"].nunique()) for _, f, _, _ in panels),
                key=lambda s: s[0] * s[1])
    fig, axes = panel_grid(len(panels), ncols, _heatmap_size(shape))
    scale = colour_scale(values, style)
    constant = constant_of(values)
    for i, (ax, (title, frame, label_x, label_y)) in enumerate(zip(axes, panels)):
        title = f"({_PANEL_LETTERS[i % 26]}) {title}" if len(panels) > 1 else title
        if constant is not None:
            draw_constant(ax, title, constant_text(frame, value, title="")
                          or _one_value_sentence(frame, value, constant))
            continue
        grid = pivot_grid(frame, value, rows="layer_b", cols="layer_a")
        draw_panel(ax, frame, value, grid, title, scale, style, rows="layer_b", cols="layer_a", counts=None,
                   label_a=label_x, label_b=label_y)
    return fig


def rule_heatmaps(frames: Mapping[str, pd.DataFrame] | Sequence[tuple[str, pd.DataFrame]],
                  values: Sequence[str] | str = ("svcca", "rsa"), *, label_a: str = "model A",
                  label_b: str = "model B") -> Figure:
    """The same layer grid under several pairing rules: one row of panels per value, one column per rule.

    Many-to-1 and 1-1 side by side: each row is one column of the tidy table (``"svcca"``,
    ``"rsa"``) on one colour scale over every rule (:func:`shared_style`), so a cell reads
    against the same cell under the other rule. Two rules and two values make a 2 × 2 grid, not
    one row of four, which would leave each cell too narrow for its number.

    Parameters
    ----------
    frames : mapping or sequence of (rule, frame)
        One tidy table per pairing rule (each of one rule and direction; columns ``layer_a``,
        ``layer_b`` and every value), left to right; the rule key (``"many_to_one"``,
        ``"first_index"``, ...) names its panels through :func:`saesim.vocab.label`.
    values : str or sequence of str, default ``("svcca", "rsa")``
        One row each, top to bottom.
    label_a, label_b : str
        Model names for the axis labels.

    Returns
    -------
    matplotlib.figure.Figure
        Panels :func:`layer_heatmap` titled ``"<value>, <rule>"`` (``"SVCCA, many-to-1"``), in
        row order; 6 in wide per rule and ``0.55 in`` per B layer (+ 2 in) high per value.
    """
    values = check_values(values)
    panels = list(frames.items()) if isinstance(frames, Mapping) else [tuple(p) for p in frames]
    if not panels:
        raise ValueError("`frames` is empty; give at least one (rule, frame).")
    for rule, frame in panels:
        check_frame(frame, f"frame of {rule!r}", ["layer_a", "layer_b", *values])
    n_b = max(frame["layer_b"].nunique() for _, frame in panels)
    fig = new_figure(6.0 * len(panels), len(values) * (0.55 * n_b + 2.0))
    axes = fig.subplots(len(values), len(panels), squeeze=False)
    for row, value in zip(axes, values):
        style = shared_style([frame for _, frame in panels], value)
        for ax, (rule, frame) in zip(row, panels):
            title = f"{vocab.column_label(value, default=value)}, {vocab.label('rule', rule, default=rule)}"
            layer_heatmap(frame, value, ax=ax, title=title, style=style, label_a=label_a, label_b=label_b)
    return fig


def heatmap_panels(frame: pd.DataFrame, values: Sequence[str], *, titles: Sequence[str] | None = None,
                   ncols: int = 2, panel_labels: bool = True, suptitle: str | None = None,
                   label_a: str = "model A", label_b: str = "model B",
                   style: HeatmapStyle | Mapping[str, HeatmapStyle] | Sequence[HeatmapStyle] | None = None,
                   shared_scale: bool | Sequence[Sequence[str]] = False) -> Figure:
    """Several :func:`layer_heatmap` panels side by side (Figs. 3-4 and the appendix).

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy table, one row per layer pair (one rule and direction; columns
        ``layer_a`` and ``layer_b``).
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
    label_a, label_b : str, default ``"model A"``, ``"model B"``
        Model names for the axis labels.
    style : HeatmapStyle, mapping or sequence of HeatmapStyle, optional
        One style for every panel, a mapping from value to style, or one per
        panel. Fields left None come from :func:`panel_style` of each value
        (an excess centred at 0, p-values and correlations from 0, counts as
        integers), then from the data.
    shared_scale : bool or sequence of sequences of str, default False
        Columns drawn on one colour scale, so that they read against each
        other: True for every panel, or groups such as ``[["rsa",
        "rsa_null_mean"], ["svcca", "svcca_null_mean"]]``; the others get a
        scale each. A group's scale comes from its first panel's style and
        every value in the group.

    Returns
    -------
    matplotlib.figure.Figure
        Panel axes in order are :func:`panel_axes` of the figure. A panel
        whose column (or whose whole group) holds one value in every cell
        states it in a sentence (:func:`constant_text`) instead of a block of
        one colour.
    """
    values = check_values(values)
    if titles is not None and len(titles) != len(values):
        raise ValueError(f"`titles` has {len(titles)} entries but `values` has {len(values)}; give one per panel.")
    ncols = check_ncols(ncols, len(values))
    check_frame(frame, "frame", ["layer_a", "layer_b", *values])
    styles = [_panel_option(style, value, i, len(values)).filled(panel_style(value))
              for i, value in enumerate(values)]
    groups = _scale_groups(shared_scale, values)
    shape = (frame["layer_b"].nunique(), frame["layer_a"].nunique())
    points, (width, height) = _page_panel_size(shape, ncols)
    with matplotlib.rc_context(_font_rc(points)):
        fig, axes = panel_grid(len(values), ncols, (width, max(height, _heatmap_size(shape)[1])))
        for i, (ax, value) in enumerate(zip(axes, values)):
            title = panel_title(value) if titles is None else titles[i]
            if panel_labels and len(values) > 1:
                title = f"({_PANEL_LETTERS[i % 26]}) {title}"
            group = groups[i]
            group_values = pooled(frame[values[j]] for j in group)
            constant = constant_of(group_values)
            if constant is not None:
                draw_constant(ax, title, constant_text(frame, value, title="")
                              or _one_value_sentence(frame, value, constant))
                continue
            panel = styles[i].replace(annot_max=styles[i].annot_max or points)
            scale = colour_scale(group_values, styles[group[0]])
            grid = pivot_grid(frame, value, rows="layer_b", cols="layer_a")
            draw_panel(ax, frame, value, grid, title, scale, panel, rows="layer_b", cols="layer_a", counts=None,
                       label_a=label_a, label_b=label_b)
        if suptitle:
            fig.suptitle(suptitle)
    return fig


def concept_heatmap_grid(subspace_frame: pd.DataFrame, value: str, *, ncols: int = 2,
                         concepts: Sequence[str] | None = None, title: str | None = None,
                         shared_scale: bool = True, counts: str | None = "n_pairs",
                         label_a: str = "model A", label_b: str = "model B",
                         style: HeatmapStyle | None = None) -> Figure:
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
        One colour scale for all panels, from the values of every concept
        shown, so concepts compare; else one per panel.
    counts : str or None, default "n_pairs"
        Count column written under each cell's value (``n=<pairs>``), when
        the frame has it; None leaves it out.
    label_a, label_b : str, default ``"model A"``, ``"model B"``
        Model names for the axis labels.
    style : HeatmapStyle, optional
        Fields left None come from :func:`panel_style` of ``value``, then
        from the data.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per concept (:func:`panel_axes`); each panel's ``get_label()``
        is ``"concept:<name>"``. Cells of skipped concept × layer pairs (NaN,
        or a non-empty ``skipped``) are blank. When the value is one and the
        same in every cell shown (in every cell of a panel, without a shared
        scale), the panel states it in a sentence instead.
    """
    check_frame(subspace_frame, "subspace_frame", ["concept", "layer_a", "layer_b", value])
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
    style = (style or HeatmapStyle()).filled(panel_style(value))
    shown = frame[frame["concept"].isin(concepts)]
    shape = (frame["layer_b"].nunique(), frame["layer_a"].nunique())
    points, size = _page_panel_size(shape, ncols, lines=2 if counts in frame else 1)
    style = style.replace(annot_max=style.annot_max or points)
    stem = panel_title(value) if title is None else title
    with matplotlib.rc_context(_font_rc(points)):
        fig, axes = panel_grid(len(concepts), ncols, size)
        for ax, concept in zip(axes, concepts):
            part = frame[frame["concept"] == concept]
            pool = shown[value] if shared_scale else part[value]
            constant = constant_of(pool)
            if constant is not None:
                draw_constant(ax, f"{stem}: {concept}", constant_text(part, value, title="")
                              or _one_value_sentence(part, value, constant))
            else:
                grid = pivot_grid(part, value, rows="layer_b", cols="layer_a")
                draw_panel(ax, part, value, grid, f"{stem}: {concept}", colour_scale(finite_values(pool), style),
                           style, rows="layer_b", cols="layer_a", counts=counts if counts in frame else None,
                           label_a=label_a, label_b=label_b)
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


def _panel_option(style, value: str, index: int, n: int) -> HeatmapStyle:
    """The style of panel ``index`` (column ``value``) from ``heatmap_panels``'s ``style``."""
    if style is None or isinstance(style, HeatmapStyle):
        return style or HeatmapStyle()
    if isinstance(style, Mapping):
        chosen = style.get(value, HeatmapStyle())
    elif isinstance(style, Sequence) and not isinstance(style, str) and len(style) == n:
        chosen = style[index]
    else:
        raise ValueError(f"`style` must be a HeatmapStyle, a mapping from value to HeatmapStyle or one "
                         f"HeatmapStyle per panel ({n}); got {style!r}.")
    if not isinstance(chosen, HeatmapStyle):
        raise TypeError(f"`style` entries must be HeatmapStyle objects; got {type(chosen).__name__} for {value!r}.")
    return chosen


def _scale_groups(shared_scale, values: list[str]) -> list[list[int]]:
    """For each panel, the indices of the panels on its colour scale (itself alone when not shared)."""
    if shared_scale is True:
        return [list(range(len(values)))] * len(values)
    groups = [[i] for i in range(len(values))]
    if shared_scale is False or shared_scale is None:
        return groups
    for group in shared_scale:
        group = [group] if isinstance(group, str) else list(group)
        unknown = [v for v in group if v not in values]
        if unknown:
            raise ValueError(f"`shared_scale` names {unknown}, which are not among `values` {values}.")
        members = [i for i, v in enumerate(values) if v in group]
        for i in members:
            groups[i] = members
    return groups


def _one_value(frame: pd.DataFrame, column: str) -> float | None:
    if column not in frame:
        return None
    distinct = pd.to_numeric(frame[column], errors="coerce").dropna().unique()
    return float(distinct[0]) if len(distinct) == 1 else None


def _one_value_sentence(frame: pd.DataFrame, value: str, constant: float) -> str:
    """The sentence of a panel whose value is the one shared by a whole group of panels."""
    return f"{_constant_number(value, constant)} in every cell, as in the panels beside it."


def _constant_number(value: str, constant: float) -> str:
    """A panel's one value as its sentence writes it: counts as integers, others to 4 significant digits."""
    if panel_style(value).fmt == "d":
        return fmt_number(int(round(constant)), "d")
    return fmt_number(constant, ".4g")
