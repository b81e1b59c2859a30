"""How a heatmap is coloured: the :class:`HeatmapStyle` settings and the colour scale they give for some data.

Private to :mod:`saesim.report`; import the public names from :mod:`saesim.report.plots`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from saesim.report.frames import format_cell

SEQUENTIAL_CMAP = "magma"
"""Colour map of a scale with no centre (the paper's)."""

DIVERGING_CMAP = "RdBu_r"
"""Colour map of values on both sides of a centre: blue below, white at the centre, red above."""

ABOVE_CMAP = "Reds"
"""Colour map of values all at or above a centre: white at the centre (the upper half of :data:`DIVERGING_CMAP`)."""

BELOW_CMAP = "Blues_r"
"""Colour map of values all at or below a centre: white at the centre (the lower half of :data:`DIVERGING_CMAP`)."""

MIN_SPREAD = 0.1
"""Default :attr:`HeatmapStyle.min_spread`."""

CONSTANT_RTOL = 1e-9
"""Relative tolerance within which every cell of a panel counts as one value (:func:`constant_value`)."""


@dataclass(frozen=True)
class HeatmapStyle:
    """How a layer × layer heatmap is coloured and annotated.

    The data (the frame, the column, the axis labels, the title) are passed to the drawing
    function apart; this object holds only the look. Every field left ``None`` is taken from the
    column shown (:func:`~saesim.report.plots.panel_style`), then from the data.

    Notes
    -----
    The colour scale, when ``vmin``/``vmax`` are not given, comes from the data (the finite
    values of the panel, or of every panel drawn on one scale):

    * with a ``center``: the scale always reaches it and the centre is white. Values on both sides
      of it get :data:`DIVERGING_CMAP` on limits symmetric about it; values all above it
      :data:`ABOVE_CMAP` from the centre up, all below it :data:`BELOW_CMAP` up to the centre.
    * without: :data:`SEQUENTIAL_CMAP` from the smallest to the largest value (stretched to reach
      ``include`` when given).
    * **Small spread.** When the values spread over less than ``min_spread`` of their level
      (``max - min < min_spread * max(|min|, |max|)``), a scale from min to max would turn a tiny
      difference into the whole colour range. The scale then reaches 0 as well, and the panel says
      so: its colour bar (or, without one, its title) reads ``all cells <min>–<max>``.

    Given limits are kept even where the data pass them; the colour bar then gets an arrow at each
    clipped end, so clipping is never silent.

    Examples
    --------
    >>> HeatmapStyle(fmt=".2f").fmt
    '.2f'
    >>> HeatmapStyle(center=0.0).replace(cbar=False).cbar
    False
    """

    fmt: str | None = None
    """Annotation format of each cell (``".3f"``; ``"d"`` shows counts as integers). None: ``"d"``
    for count columns, ``".3f"`` otherwise."""

    cmap: str | None = None
    """Matplotlib colour map name. None: chosen from the data (see Notes)."""

    vmin: float | None = None
    """Lower colour limit. None: from the data."""

    vmax: float | None = None
    """Upper colour limit. None: from the data."""

    center: float | None = None
    """A value with a meaning of its own, shown white, that the scale always reaches: 0 for an
    excess over the null or a z-score. None: no centre."""

    include: float | None = None
    """A value the scale reaches without being its centre: 0 for p-values and correlations.
    None: the data's range alone."""

    min_spread: float = MIN_SPREAD
    """Relative spread below which the scale is widened to 0 and the range is written on the panel
    (see Notes); 0 turns the rule off."""

    cbar: bool = True
    """Draw a colour bar."""

    annot_max: float | None = None
    """Largest annotation size in pt. None: the paper's 14 pt (less where the cells are narrow)."""

    def __post_init__(self):
        if self.vmin is not None and self.vmax is not None and not self.vmin < self.vmax:
            raise ValueError(f"`vmin` ({self.vmin}) must be below `vmax` ({self.vmax}); give the lower limit first.")
        if not self.min_spread >= 0:
            raise ValueError(f"`min_spread` must be a fraction >= 0 (0 turns the small-spread rule off); "
                             f"got {self.min_spread!r}.")

    def replace(self, **changes) -> HeatmapStyle:
        """A copy with ``changes`` (field names) applied."""
        return dataclasses.replace(self, **changes)

    def filled(self, defaults: HeatmapStyle) -> HeatmapStyle:
        """This style with each ``None`` field taken from ``defaults``."""
        changes = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(self)
                   if getattr(self, f.name) is None and getattr(defaults, f.name) is not None}
        return self.replace(**changes) if changes else self


@dataclass(frozen=True)
class ColourScale:
    """The colour scale a :class:`HeatmapStyle` gives for some data.

    Attributes
    ----------
    vmin, vmax : float
        Colour limits.
    cmap : str
        Colour map name.
    center : float or None
        Where the colour map's middle sits when the limits are not symmetric about the style's
        centre (seaborn's ``center``); None otherwise.
    """

    vmin: float
    vmax: float
    cmap: str
    center: float | None = None

    def extend(self, values) -> str:
        """Colour-bar arrows for ``values`` on this scale: ``"neither"``, ``"min"``, ``"max"`` or ``"both"``."""
        finite = finite_values(values)
        low = bool(finite.size and finite.min() < self.vmin)
        high = bool(finite.size and finite.max() > self.vmax)
        return {(False, False): "neither", (True, False): "min", (False, True): "max",
                (True, True): "both"}[(low, high)]


def finite_values(values) -> np.ndarray:
    """The finite numbers among ``values`` (any array-like, frames and series included), flattened."""
    if isinstance(values, (pd.DataFrame, pd.Series)):
        values = values.apply(pd.to_numeric, errors="coerce") if isinstance(values, pd.DataFrame) \
            else pd.to_numeric(values, errors="coerce")
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def small_spread(values, min_spread: float = MIN_SPREAD) -> bool:
    """True when ``values`` vary, but by less than ``min_spread`` of their level (the rule of :class:`HeatmapStyle`)."""
    finite = finite_values(values)
    if finite.size < 2:
        return False
    low, high = float(finite.min()), float(finite.max())
    return 0 < high - low < min_spread * max(abs(low), abs(high))


def range_note(values, fmt: str = ".3f") -> str:
    """``"all cells <min>–<max>"`` for ``values``, formatted with ``fmt`` (never ``-0.000``)."""
    finite = finite_values(values)
    return f"all cells {format_cell(float(finite.min()), fmt)}–{format_cell(float(finite.max()), fmt)}"


def colour_scale(values, style: HeatmapStyle) -> ColourScale:
    """The colour scale of ``style`` for ``values`` (the finite values of every panel drawn on it).

    The rules are those of :class:`HeatmapStyle`'s Notes. Limits always differ (a single value
    gets a unit-wide scale around it), and unless ``style`` fixes them they contain every finite
    value.
    """
    finite = finite_values(values)
    center = style.center
    if finite.size == 0:
        low, high = (0.0, 1.0) if center is None else (center - 1.0, center + 1.0)
    else:
        low, high = float(finite.min()), float(finite.max())
        if center is not None:
            if low < center < high:
                half = max(high - center, center - low)
                low, high = center - half, center + half
            else:
                low, high = min(low, center), max(high, center)
        else:
            if style.include is not None:
                low, high = min(low, style.include), max(high, style.include)
            if small_spread(finite, style.min_spread) and not low <= 0.0 <= high:
                low, high = min(low, 0.0), max(high, 0.0)
    low = low if style.vmin is None else float(style.vmin)
    high = high if style.vmax is None else float(style.vmax)
    if not high > low:  # one value, or a given limit past the data's other end
        if style.vmax is None and style.vmin is not None:
            high = low + 1.0
        elif style.vmin is None and style.vmax is not None:
            low = high - 1.0
        else:
            low, high = low - 0.5, high + 0.5
    cmap = style.cmap
    straddles = center is not None and low < center < high
    if cmap is None:
        if center is None:
            cmap = SEQUENTIAL_CMAP
        elif straddles:
            cmap = DIVERGING_CMAP
        else:
            cmap = ABOVE_CMAP if low >= center else BELOW_CMAP
    symmetric = straddles and np.isclose(high - center, center - low)
    return ColourScale(vmin=low, vmax=high, cmap=cmap, center=center if straddles and not symmetric else None)


def constant_value(frame: pd.DataFrame, column: str) -> float | None:
    """The one value every cell of ``column`` holds, or None when the cells differ.

    A heatmap of one value is a block of one colour; show the value in a sentence instead
    (:func:`~saesim.report.plots.constant_text`). Cells are equal within a relative tolerance of
    :data:`CONSTANT_RTOL`; missing and non-finite cells are ignored, and fewer than two finite
    cells are never called constant.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy table, e.g. ``full_space.parquet`` restricted to one rule and direction.
    column : str
        Column to check.

    Returns
    -------
    float or None

    Raises
    ------
    ValueError
        If ``frame`` has no column ``column``.

    Examples
    --------
    >>> constant_value(pd.DataFrame({"p": [0.0099, 0.0099, float("nan")]}), "p")
    0.0099
    >>> constant_value(pd.DataFrame({"p": [0.01, 0.02]}), "p") is None
    True
    """
    if not isinstance(frame, pd.DataFrame) or column not in frame.columns:
        present = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
        raise ValueError(f"`frame` has no column {column!r}; columns present: {present}.")
    return constant_of(frame[column])


def constant_of(values) -> float | None:
    """:func:`constant_value` of any array-like."""
    finite = finite_values(values)
    if finite.size < 2:
        return None
    first = float(finite[0])
    if np.allclose(finite, first, rtol=CONSTANT_RTOL, atol=0.0):
        return first
    return None


def pooled(values: Iterable) -> np.ndarray:
    """The finite values of several array-likes, one flat array."""
    parts = [finite_values(v) for v in values]
    return np.concatenate(parts) if parts else np.array([], dtype=float)
