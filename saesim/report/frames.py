"""Checks, grids and cell formatting of tidy tables, shared by :mod:`saesim.report.tables` and
:mod:`saesim.report.plots`.

Both read the tidy experiment tables (``full_space.parquet``, ``subspace.parquet``); these helpers
refuse a table that lacks a column or holds several rows in one cell with a message that says
how to fix it, lay one value out as a layer grid, and format one cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["SETTING_COLUMNS", "check_columns", "check_frame", "check_unique", "fmt_number", "format_cell", "pivot_grid"]

SETTING_COLUMNS = ("rule", "direction", "compat", "null_kind", "n_perm", "seed", "concept")
"""Columns whose differing values explain duplicated cells (named in :func:`check_unique`'s message)."""


def pivot_grid(frame: pd.DataFrame, value: str, *, rows: str, cols: str) -> pd.DataFrame:
    """``value`` as a rows × cols grid: rows descending, columns ascending, float cells."""
    check_frame(frame, "frame", [rows, cols, value])
    check_unique(frame, [rows, cols], "frame")
    grid = frame.pivot(index=rows, columns=cols, values=value)
    grid = grid.reindex(index=_sorted(grid.index, reverse=True), columns=_sorted(grid.columns))
    try:
        grid = grid.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Column `{value}` must be numeric to be shown as a grid; got dtype "
                         f"{frame[value].dtype}.") from exc
    grid.index.name, grid.columns.name = rows, cols
    return grid


def _sorted(labels, *, reverse: bool = False) -> list:
    try:
        return sorted(labels, reverse=reverse)
    except TypeError:  # mixed types: keep the frame's order
        return list(labels)


def check_frame(frame, name: str, columns: Sequence[str]) -> None:
    """Raise unless ``frame`` is a DataFrame with every one of ``columns`` (``name`` is the argument's name)."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"`{name}` must be a pandas DataFrame (a tidy table such as full_space.parquet); "
                        f"got {type(frame).__name__}.")
    check_columns(frame, name, columns)


def check_columns(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    """Raise ValueError naming the ``columns`` that ``frame`` lacks, if any."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"`{name}` has no column(s) {missing}; columns present: {list(frame.columns)}.")


def check_unique(frame: pd.DataFrame, keys: Sequence[str], name: str) -> None:
    """Raise ValueError when several rows share one cell of ``keys``, naming the settings they differ in."""
    duplicated = frame.duplicated(list(keys), keep=False)
    if duplicated.any():
        dupes = frame[duplicated]
        varying = [c for c in SETTING_COLUMNS if c in dupes and c not in keys
                   and dupes.groupby(list(keys), dropna=False)[c].nunique(dropna=False).max() > 1]
        first = tuple(dupes.iloc[0][list(keys)])
        hint = (f"they differ in {varying}; keep one value of each first, e.g. "
                f"frame[(frame.rule == 'first_index') & (frame.direction == 'b_to_a')]"
                if varying else "drop the duplicated rows first")
        raise ValueError(f"`{name}` has {int(duplicated.sum())} rows sharing a cell of {list(keys)} "
                         f"(first: {first}); {hint}.")


def fmt_number(value, fmt: str = ".3f") -> str:
    """``format(value, fmt)``, except that a number which rounds to zero never shows a minus sign.

    ``format(-1e-5, ".3f")`` is ``"-0.000"``, which reads as a negative result; this gives
    ``"0.000"``, the same digits as every other zero in the column. Other numbers, and non-numbers,
    are formatted as ``format`` does.

    Examples
    --------
    >>> fmt_number(-1e-5), fmt_number(-0.0, ".1f"), fmt_number(-0.0004, ".1%"), fmt_number(-0.25)
    ('0.000', '0.0', '0.0%', '-0.250')
    """
    text = format(value, fmt)
    mantissa = re.split(r"[eE]", text, maxsplit=1)[0]
    if "-" in mantissa and not re.search(r"[1-9]", mantissa):
        return format(abs(value), fmt)
    return text


def fmt_signed(value: float) -> str:
    """A signed effect to 3 decimals (``+0.039``); one that rounds to 0 prints as ``0.000``, unsigned."""
    return "0.000" if abs(value) < 5e-4 else f"{value:+.3f}"


def format_cell(value, fmt: str) -> str:
    """:func:`fmt_number`; ``""`` for a missing or non-finite value, floats rounded for an ``"d"`` format."""
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)) or value is pd.NA:
        return ""
    if fmt.endswith("d") and isinstance(value, (float, np.floating)):
        value = int(round(float(value)))
    return fmt_number(value, fmt)
