"""The figures' shared style and scaffolding: panel titles and colour limits, figure grids, the annotated cell grid.

Private to :mod:`saesim.report`; import the public names from :mod:`saesim.report.plots`.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from saesim.report._plot_scale import HeatmapStyle
from saesim import vocab
from saesim.report.frames import format_cell


ANNOT_KWS = {"weight": "bold", "size": 14}
"""Heatmap annotation style of the paper's notebooks."""

_CORRELATION_COLUMNS = ("mean_best_r", "mean_r_filtered", "mean_r")


def panel_title(value: str) -> str:
    """The paper's panel title for a tidy column (``"svcca"`` -> ``"Paired SVCCA Scores"``), from
    :func:`saesim.vocab.column_title`.

    Unknown columns are returned unchanged.
    """
    return vocab.column_title(value, default=value)


def panel_style(value: str) -> HeatmapStyle:
    """Default heatmap style of a tidy column: what its values mean, not where they happen to lie.

    Returns
    -------
    HeatmapStyle
        ``center=0`` for an excess over the null (``*_excess``) and z-scores (``*_z``): 0 is
        the null level, shown white; ``include=0`` for p-values (``*_p``, ``*_p_holm``,
        ``*_p_tail``; two significant digits) and correlation columns, whose scale starts at 0; ``fmt="d"`` for counts
        (``n_*``, ``dead_*``); no option otherwise. Colour limits always come from the data
        (:class:`HeatmapStyle`), never from a fixed number that the data may pass.
    """
    if value.endswith("_excess") or value.endswith("_z"):
        return HeatmapStyle(center=0.0)
    if re.search(r"_p(_holm|_bh|_tail)?$", value):
        # p-values span orders of magnitude once the tail fit resolves them: two significant digits
        # ("0.003", "1.8e-17"), never a column of "0.000"
        return HeatmapStyle(include=0.0, fmt=".2g")
    if value in _CORRELATION_COLUMNS:
        return HeatmapStyle(include=0.0)
    if value.startswith("n_") or value.startswith("dead_"):
        return HeatmapStyle(fmt="d")
    return HeatmapStyle()


def panel_axes(fig: Figure) -> list[Axes]:
    """The visible data panels of a figure, colour bars left out, in drawing order."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def wrap(text: str, ax: Axes, *, points: float = 10.0) -> str:
    """``text`` broken into lines that fit the width of ``ax`` (a title that never runs into its neighbour's)."""
    import textwrap

    width_in = ax.get_position().width * ax.figure.get_figwidth()
    chars = max(16, int(72 * width_in / (0.55 * points)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def panel_grid(n: int, ncols: int, panel_size) -> tuple[Figure, list[Axes]]:
    nrows = math.ceil(n / ncols)
    fig = new_figure(panel_size[0] * ncols, panel_size[1] * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel().tolist()
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]


def draw_grid(ax: Axes, grid: pd.DataFrame, *, fmt, cmap, vmin, vmax, cbar, counts=None, annot_max=None,
              center=None, cbar_kws=None) -> None:
    """``grid`` as an annotated heatmap on ``ax`` (cells formatted by :func:`format_cell`, so never ``-0.000``)."""
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
    sns.heatmap(grid, ax=ax, annot=labels, fmt="", cmap=cmap, vmin=vmin, vmax=vmax, center=center, cbar=cbar,
                cbar_kws=cbar_kws if cbar else None,
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


def check_values(values, *, name: str = "values") -> list[str]:
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        raise ValueError(f"`{name}` is empty; give at least one column.")
    return values


def check_ncols(ncols, n: int) -> int:
    if not isinstance(ncols, (int, np.integer)) or isinstance(ncols, bool) or ncols < 1:
        raise ValueError(f"`ncols` must be a positive integer; got {ncols!r}.")
    return int(min(ncols, n))


def check_1d(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D (one value per latent); got shape {array.shape}.")
    return array
