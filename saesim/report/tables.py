"""Display tables built from the tidy experiment tables.

Every function takes a tidy :class:`pandas.DataFrame` (``full_space.parquet``
or ``subspace.parquet``, see :data:`saesim.experiments.grid.GRID_COLUMNS`) and
returns a new DataFrame laid out as the paper prints it. Nothing here computes
an experiment or reads a file, and no function renders markdown or LaTeX:
notebooks display the DataFrames (or call :func:`styled` for a coloured view).

* :func:`layer_table` — one value as a layer × layer grid, model-B layers
  descending (Figs. 3-4 and appendix A1-A7 as tables);
* :func:`concept_table` — one layer pair, one row per concept (Tables 1-2);
* :func:`counts_table` — pairs left after each filter stage (A4, A6); :func:`counts_view` shows it;
* :func:`split_table` — a wide table's informative columns at the page's width, every column behind a
  toggle (:class:`SplitTable`);
* :func:`authors_table` and :func:`side_by_side` — the authors' reported
  numbers next to ours, for the "reproducing the paper" page.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024), Figs. 3-4, Tables 1-2.
"""

from __future__ import annotations

import html
import importlib.util
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from saesim import vocab
from saesim.compare.significance import holm_within_families
from saesim.config import train_text_words
from saesim.report.frames import check_columns, check_frame, check_unique, format_cell, pivot_grid

__all__ = [
    "AUTHORS_SOURCE",
    "COUNT_SHOWN",
    "COUNT_STAGES",
    "PAGE_TABLE_STYLES",
    "page_style",
    "authors_table",
    "MIN_HEADLINE_PAIRS",
    "concept_family",
    "page_family",
    "concept_headline",
    "concept_table",
    "counts_table",
    "counts_view",
    "display_name",
    "labelled",
    "layer_table",
    "comparison_style",
    "comparison_table",
    "side_by_side",
    "split_table",
    "SplitTable",
    "styled",
    "with_effects",
    "quality_caption",
    "quality_view",
]

MIN_HEADLINE_PAIRS = 20
"""Fewest pairs a concept subspace needs before a page may headline it. Smaller subspaces are
drawn and tabled (with their pair count) but never quoted as "the highest": with a handful of
pairs the corrected SVCCA's null spreads so widely that the largest of 288 cells is mostly noise."""

AUTHORS_SOURCE = "authors' paper"
"""Default tag in the header of columns that hold the authors' reported numbers."""

COUNT_STAGES: tuple[str, ...] = ("n_latents_b", "n_choosers", "n_with_partner", "n_unique_a_before", "n_after_junk",
                                 "n_after_1to1", "n_pairs", "n_unique_a")
"""Count columns of ``full_space.parquet`` in pipeline order, the columns of :func:`counts_table`
(headed by :func:`saesim.vocab.column_label`)."""


def display_name(column: str) -> str:
    """Header text for a tidy column, from :func:`saesim.vocab.column_label` (``"svcca"`` -> ``"SVCCA"``,
    ``"n_pairs"`` -> ``"pairs kept"``; unknown names unchanged)."""
    return vocab.column_label(column, default=column)


def layer_table(frame: pd.DataFrame, value: str, *, rows: str = "layer_b", cols: str = "layer_a",
                fmt: str | None = None) -> pd.DataFrame:
    """Pivot one value into a layer grid, printed as the paper prints it.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy table with one row per (``rows``, ``cols``) cell, e.g.
        ``full_space.parquet`` restricted to one rule and direction.
    value : str
        Column to show (``"svcca"``, ``"svcca_p"``, ``"n_pairs"``, ...).
    rows, cols : str, default ``"layer_b"``, ``"layer_a"``
        Columns giving the grid's rows (sorted descending: the highest layer
        on top, as in the paper) and columns (ascending).
    fmt : str, optional
        Format spec (``".3f"``, ``"d"``); when given, cells are strings and
        missing cells are ``""``. Without it the values are kept as numbers.

    Returns
    -------
    pandas.DataFrame
        Index named ``rows``, columns named ``cols``.

    Raises
    ------
    ValueError
        If a column is missing, or several rows fall in one cell (the message
        names the columns that differ, e.g. ``rule``: filter to one first).

    Examples
    --------
    >>> frame = pd.DataFrame({"layer_a": [1, 1, 2, 2], "layer_b": [1, 2, 1, 2],
    ...                       "svcca": [0.1, 0.2, 0.3, 0.4]})
    >>> layer_table(frame, "svcca", fmt=".2f")  # doctest: +NORMALIZE_WHITESPACE
    A layer     1     2
    B layer
    2        0.20  0.40
    1        0.10  0.30
    """
    grid = pivot_grid(frame, value, rows=rows, cols=cols)
    if fmt is not None:
        grid = grid.astype(object).map(lambda v: format_cell(v, fmt))
    grid.index.name = vocab.column_label(rows, default=rows)
    grid.columns.name = vocab.column_label(cols, default=cols)
    return grid


def concept_table(subspace_frame: pd.DataFrame, *, layer_a, layer_b,
                  metrics: Sequence[str] = ("svcca", "rsa")) -> pd.DataFrame:
    """One layer pair of the semantic-subspace grid: one row per concept (Tables 1-2).

    Parameters
    ----------
    subspace_frame : pandas.DataFrame
        ``subspace.parquet`` (one row per layer pair × concept, one rule).
    layer_a, layer_b : int
        The layer pair to show (the paper's Table 1 is Pythia-70m L3 vs
        Pythia-160m L5).
    metrics : sequence of str, default ("svcca", "rsa")
        Measures to show, each as paired score, shuffle-null mean and p-value,
        followed by the random-subset null mean and p-value when the frame has
        ``<metric>_subset_null_mean`` / ``<metric>_subset_p``.

    Returns
    -------
    pandas.DataFrame
        Index ``concept`` (in the frame's order); columns ``pairs kept``, then per
        metric ``"<M> paired"``, ``"<M> null mean"``, ``"<M> p"`` (and
        ``"<M> subset-null mean"``, ``"<M> subset p"``), then ``skipped``
        when any concept was skipped (its scores are NaN).

    Raises
    ------
    ValueError
        If a column is missing, the layer pair has no rows, or a concept has
        several rows (several rules: filter to one first).
    """
    check_frame(subspace_frame, "subspace_frame", ["layer_a", "layer_b", "concept", "n_pairs"])
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    check_columns(subspace_frame, "subspace_frame", metrics)
    rows = subspace_frame[(subspace_frame["layer_a"] == layer_a) & (subspace_frame["layer_b"] == layer_b)]
    if rows.empty:
        pairs = sorted({(a, b) for a, b in zip(subspace_frame["layer_a"], subspace_frame["layer_b"])})
        raise ValueError(f"`subspace_frame` has no rows for layer_a={layer_a!r}, layer_b={layer_b!r}; "
                         f"layer pairs present (A, B): {pairs}.")
    check_unique(rows, ["concept"], "subspace_frame")
    out = pd.DataFrame(index=pd.Index(rows["concept"].tolist(), name="concept"))
    out[display_name("n_pairs")] = pd.array(rows["n_pairs"].to_numpy(), dtype="Int64")
    for metric in metrics:
        out[f"{display_name(metric)} paired"] = rows[metric].to_numpy(dtype=float)
        for suffix in ("_null_mean", "_p", "_subset_null_mean", "_subset_p"):
            if metric + suffix in rows:
                out[display_name(metric + suffix)] = rows[metric + suffix].to_numpy(dtype=float)
    if "skipped" in rows:
        skipped = rows["skipped"].fillna("").astype(str).to_numpy()
        if (skipped != "").any():
            out["skipped"] = skipped
    return out


def counts_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Latents and pairs left after each stage of the pipeline (appendix A4/A6).

    Parameters
    ----------
    frame : pandas.DataFrame
        ``full_space.parquet`` (any subset of its rows).

    Returns
    -------
    pandas.DataFrame
        One row per record, indexed by (``layer_a``, ``layer_b``) — plus
        ``rule`` and ``direction`` when the frame holds several — sorted by A
        layer then B layer. Columns are the stages of :data:`COUNT_STAGES`
        present in the frame (nullable integers) and ``kept %``, the pairs kept
        as a percentage of the choosers (of the B latents when ``n_choosers``
        is absent): the retained fraction reviewers asked to see.

    Raises
    ------
    ValueError
        If the frame lacks ``layer_a``, ``layer_b`` or ``n_pairs``.
    """
    check_frame(frame, "frame", ["layer_a", "layer_b", "n_pairs"])
    keys = ["layer_a", "layer_b"] + [c for c in ("rule", "direction")
                                     if c in frame and frame[c].nunique(dropna=False) > 1]
    rows = frame.sort_values(keys, kind="stable")
    out = pd.DataFrame(index=pd.MultiIndex.from_frame(rows[keys]))
    for column in COUNT_STAGES:
        if column in rows:
            out[display_name(column)] = pd.array(rows[column].to_numpy(dtype=float), dtype="Float64").round().astype("Int64")
    denominator = next((c for c in ("n_choosers", "n_latents_b") if c in rows), None)
    if denominator is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            kept = 100.0 * rows["n_pairs"].to_numpy(dtype=float) / rows[denominator].to_numpy(dtype=float)
        out["kept %"] = np.where(np.isfinite(kept), kept, np.nan)
    out.index.names = [vocab.column_label(k, default=k) for k in keys]
    return out


COUNT_SHOWN: tuple[str, ...] = ("n_choosers", "n_after_junk", "n_after_1to1", "n_pairs")
"""Stages of :func:`counts_table` that :func:`counts_view` shows at the page's width (with ``kept %``);
the others are one click away."""


def counts_view(frame: pd.DataFrame, caption: str | None = None, *, name: str | None = None) -> "SplitTable":
    """:func:`counts_table` as a page shows it: the layer pair, the choosers, what the junk filter, the 1-1
    step and the r cut leave, and ``kept %`` (one decimal) at the page's width; every stage behind a toggle
    (:func:`split_table`)."""
    table = counts_table(frame)
    shown = [display_name(c) for c in COUNT_SHOWN if display_name(c) in table]
    shown += ["kept %"] if "kept %" in table else []
    return split_table(table, shown, caption, formats={"kept %": ".1f"}, name=name)


def authors_table(reported: Mapping, *, source: str = AUTHORS_SOURCE,
                  index_names: Sequence[str] | str | None = None) -> pd.DataFrame:
    """The authors' reported numbers as a table whose headers say whose they are.

    Parameters
    ----------
    reported : mapping
        Column -> {row key: value}, the numbers as the paper prints them, e.g.
        ``{"svcca": {"Time": 0.590, "Calendar": 0.649}, "n_pairs": {...}}`` for
        Table 1, or ``{"svcca": {(2, 5): 0.678, ...}}`` with (A layer, B layer)
        tuples for Fig. 3. Column names are shown through
        :func:`display_name` (``svcca`` -> ``SVCCA``).
    source : str, default ``"authors' paper"``
        Put in every header: ``"SVCCA (authors' paper)"``.
    index_names : str or sequence of str, optional
        Names of the index levels (``("layer_a", "layer_b")``, ``"concept"``).

    Returns
    -------
    pandas.DataFrame
        One column per reported column, headers ``"<name> (<source>)"``.

    Raises
    ------
    TypeError
        If ``reported`` is not a mapping of mappings.

    Examples
    --------
    >>> authors_table({"svcca": {"Time": 0.590}}, index_names="concept")  # doctest: +NORMALIZE_WHITESPACE
             SVCCA (authors' paper)
    concept
    Time                       0.59
    """
    if not isinstance(reported, Mapping) or not all(isinstance(v, Mapping) for v in reported.values()):
        raise TypeError("`reported` must map each column name to a {row key: value} mapping, e.g. "
                        "{'svcca': {'Time': 0.59}}; got "
                        f"{type(reported).__name__} {_short(reported)}.")
    table = pd.DataFrame({f"{display_name(str(k))} ({source})": pd.Series(dict(v), dtype=object)
                          for k, v in reported.items()})
    table = table.apply(_numeric)
    if index_names is not None:
        names = [index_names] if isinstance(index_names, str) else list(index_names)
        if isinstance(table.index, pd.MultiIndex):
            table.index = table.index.set_names(names)
        else:
            table.index.name = names[0]
    return table


def side_by_side(ours: pd.DataFrame, authors, *, source: str = AUTHORS_SOURCE, ours_label: str = "ours",
                 difference: bool = True) -> pd.DataFrame:
    """Our numbers next to the authors', column by column, on the same rows.

    Parameters
    ----------
    ours : pandas.DataFrame
        Our values, indexed like the authors' table, e.g.
        ``frame.set_index(["layer_a", "layer_b"])[["svcca", "rsa"]]`` or a
        :func:`concept_table`.
    authors : pandas.DataFrame or mapping
        A :func:`authors_table` (or the mapping to build one with ``source``).
    source : str, default ``"authors' paper"``
        The tag used in the authors' headers.
    ours_label : str, default ``"ours"``
        Tag put in our headers.
    difference : bool, default True
        Add ``"<name> Δ (ours − authors)"`` for numeric columns.

    Returns
    -------
    pandas.DataFrame
        For each authors' column ``"<name> (<source>)"`` that matches one of
        ours (names compared ignoring case, spaces and underscores, and after
        :func:`display_name`): ``"<name> (ours)"``, ``"<name> (<source>)"``
        and the difference. Rows are ours followed by any only the authors
        have; a value missing on one side is NaN.

    Raises
    ------
    ValueError
        If no authors' column matches one of ours (the message lists both).
    """
    if not isinstance(ours, pd.DataFrame):
        raise TypeError(f"`ours` must be a pandas DataFrame; got {type(ours).__name__}.")
    if not isinstance(authors, pd.DataFrame):
        authors = authors_table(authors, source=source)
    tag = f" ({source})"
    ours_by_key = {_key(display_name(str(c))): c for c in ours.columns}
    matched = []
    for column in authors.columns:
        name = str(column)[: -len(tag)] if str(column).endswith(tag) else str(column)
        if _key(name) in ours_by_key:
            matched.append((name, ours_by_key[_key(name)], column))
    if not matched:
        raise ValueError(f"No column of `authors` {list(authors.columns)} matches one of `ours` "
                         f"{list(ours.columns)}; name them alike (e.g. 'svcca' and 'SVCCA ({source})').")
    index = ours.index.append(authors.index.difference(ours.index, sort=False))
    if ours.index.names != [None] * ours.index.nlevels:
        index = index.set_names(ours.index.names)
    left, right = ours.reindex(index), authors.reindex(index)
    out = pd.DataFrame(index=index)
    for name, our_column, their_column in matched:
        out[f"{name} ({ours_label})"] = left[our_column].to_numpy()
        out[f"{name}{tag}"] = right[their_column].to_numpy()
        if difference and pd.api.types.is_numeric_dtype(left[our_column]) \
                and pd.api.types.is_numeric_dtype(right[their_column]):
            out[f"{name} Δ ({ours_label} − authors)"] = (left[our_column].to_numpy(dtype=float)
                                                         - right[their_column].to_numpy(dtype=float))
    return out


PAGE_TABLE_STYLES = [
    {"selector": "", "props": "display: block; overflow-x: auto; max-width: 100%; border-collapse: collapse;"},
    {"selector": "th, td", "props": "padding: 0.2em 0.6em; text-align: right; white-space: normal;"},
    {"selector": "th", "props": "vertical-align: bottom; min-width: 3.5em;"},
    {"selector": "tbody th", "props": "vertical-align: top;"},
    {"selector": "td", "props": "max-width: 22em; overflow-wrap: anywhere;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold; white-space: normal; "
                                     "max-width: 42em;"},
]
"""CSS of every table on the book's pages: padded cells (numbers never run together), headers and long text
cells that wrap (a text cell at most 22em wide) so that a table fits the page's column where its columns
allow, scrolling sideways only when they do not; a row label spanning rows sits at the first of them.
Numeric columns never wrap inside a number (:data:`NUMBER_CELL`)."""

NUMBER_CELL = "white-space: nowrap; overflow-wrap: normal;"
"""CSS of the cells of a numeric column (and of a column of short texts, :data:`SHORT_TEXT`): a number never
breaks across lines (a table too narrow for its numbers scrolls, and the width test sees it, instead of
printing "0.47" over "6")."""


def page_style(table, caption: str | None = None, *, precision: int = 3, name: str | None = None,
               formats: Mapping[str, str] | None = None):
    """A table as the book shows it: ``precision`` decimals, padded cells, a numbered caption with a
    stable anchor, scrolling when wide.

    Parameters
    ----------
    table : pandas.DataFrame or pandas.io.formats.style.Styler
    caption : str, optional
        E.g. ``"Appendix A4 analogue: ..."``; shown after the label "Table N".
    precision : int, default 3
        Decimals of floating-point cells (a Styler keeps its own formats).
    name : str, optional
        The table's stable name (a letter, then letters, digits, ``_``, ``-``). Default: the
        caption's first six words as a slug (:func:`saesim.report.citable.table_slug`,
        ``"appendix-a4-analogue-latents-and-pairs"``), ``-2``, ``-3``, ... appended when the page
        already has a table of that name.
    formats : mapping of column -> format spec, optional
        Per-column formats of a DataFrame (``{"kept %": ".1f"}``, :func:`saesim.report.frames.format_cell`).

    Returns
    -------
    pandas.io.formats.style.Styler

    Notes
    -----
    The ``<table>``'s HTML id is ``T_<name>`` (the Styler's uuid, so its CSS stays scoped to it):
    ``full_space.html#T_<name>`` cites it in every build. "Table N" numbers the page's tables in the
    order the page styles them (:func:`saesim.report.citable.table_anchor`; one kernel per page),
    and links to the anchor. A Styler already styled here keeps its name and number.
    """
    from saesim.report.citable import table_anchor

    styler = _formatted(table, precision, formats)
    previous_caption = getattr(styler, "_saesim_caption", None)
    text = caption or previous_caption or getattr(styler, "caption", None)  # a caption the Styler already had
    styler._saesim_caption = text
    previous = getattr(styler, "_saesim_table", None)
    tid, n = previous if previous is not None and name in (None, previous[0]) else table_anchor(name, text)
    styler._saesim_table = (tid, n)
    styler.set_uuid(tid)
    styler.cell_ids = False  # ids only on cells that carry a style: the table's id is the anchor
    label = (f'<span class="caption-number saesim-table-number"><a class="saesim-table-label" href="#T_{tid}" '
             f'title="Stable anchor of this table: #T_{tid}">Table {n}</a>.</span>')
    return styler.set_caption(f"{label} {text}" if text else label)


def _formatted(table, precision: int = 3, formats: Mapping[str, str] | None = None):
    """``table`` (a DataFrame or a Styler) with the page's cell formats and CSS, unnumbered: floats to
    ``precision`` decimals, whole-number float columns as integers, ``formats`` (column -> format spec,
    :func:`saesim.report.frames.format_cell`, or a function of the value such as
    :func:`saesim.report.frames.fmt_signed`; blank for a missing value) where given, never ``-0.000``."""
    if isinstance(table, pd.DataFrame):
        number = f".{precision}f"
        styler = table.style.format(lambda v: format_cell(v, number) if isinstance(v, (float, np.floating)) else v,
                                    na_rep="")
        counts = [c for c in table.columns if _whole_numbers(table[c]) and c not in (formats or {})]
        if counts:  # counts stored as floats (a column with blanks): whole numbers, not "4096.000"
            styler = styler.format(lambda v: format_cell(v, "d"), subset=counts, na_rep="")
        for column, spec in (formats or {}).items():
            if column in table.columns:
                styler = styler.format(lambda v, f=spec: format_cell(v, f) if isinstance(f, str)
                                       else format_cell(v, ".3f") and f(v), subset=[column], na_rep="")
        whole = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) or _short_text(table[c])]
        if whole:
            styler = styler.set_table_styles({c: [{"selector": "td", "props": NUMBER_CELL}] for c in whole},
                                             overwrite=False)
        styler = styler.format_index(_unbroken, axis=1)
    else:
        styler = table
    _no_negative_zero(styler)
    return styler.set_table_attributes('class="dataframe saesim-table"').set_table_styles(PAGE_TABLE_STYLES,
                                                                                        overwrite=False)


class SplitTable:
    """A table shown at the page's width with its informative columns, every column one click away.

    What :func:`split_table` returns; a notebook displays it (``_repr_html_``) or ends a cell with it.

    Attributes
    ----------
    shown : pandas.io.formats.style.Styler
        The informative columns: a numbered, anchored page table (:func:`page_style`).
    full : pandas.io.formats.style.Styler
        Every column, in a closed ``<details>`` under the shown table, unnumbered (id ``T_<name>-all``).
    hidden : list of str
        The columns only the full table has (named in the toggle's summary).
    """

    def __init__(self, shown, full, hidden):
        self.shown, self.full, self.hidden = shown, full, list(hidden)

    def to_html(self) -> str:
        tid, n = self.shown._saesim_table
        summary = (f"Every column of Table {n}" + (f", with {_and_list(self.hidden)}" if self.hidden else ""))
        return (self.shown.to_html() + f'<details class="saesim-more-columns"><summary>{html.escape(summary)}'
                f"</summary>{self.full.to_html()}</details>")

    def _repr_html_(self) -> str:
        return self.to_html()


def split_table(table, shown: Sequence[str], caption: str | None = None, *, precision: int = 3,
                formats: Mapping[str, str] | None = None, name: str | None = None, index: bool = True) -> SplitTable:
    """A wide table as the book shows it: ``shown`` columns first, at the page's width, every column behind
    a toggle.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns already named for the reader (:func:`saesim.vocab.column_label`).
    shown : sequence of str
        The informative columns, in the order shown (the index, if kept, comes first in both).
    caption : str, optional
        The shown table's caption (:func:`page_style` numbers it and anchors it).
    precision : int, default 3
        Decimals of floating-point cells.
    formats : mapping of column -> format spec, optional
        Per-column formats (``{"kept %": ".1f", "p (Holm)": ".2g"}``), in both tables.
    name : str, optional
        The stable name (:func:`page_style`); the full table's id is ``T_<name>-all``.
    index : bool, default True
        Show the index (False hides it in both).

    Returns
    -------
    SplitTable

    Raises
    ------
    ValueError
        When a column of ``shown`` is not in ``table``.
    """
    check_frame(table, "table", list(shown))
    page = page_style(table[list(shown)], caption, precision=precision, name=name, formats=formats)
    tid, n = page._saesim_table
    full = _formatted(table, precision, formats)
    full.set_uuid(f"{tid}-all")
    full.cell_ids = False
    full.set_caption(f"Table {n}, every column")
    if not index:
        page, full = page.hide(axis="index"), full.hide(axis="index")
    return SplitTable(page, full, [c for c in table.columns if c not in list(shown)])


SHORT_TEXT = 8
"""Longest text (in characters) of a column whose cells never wrap, like numbers: a layer pair ("A0–B1"),
a pair of counts ("8, 8")."""


def _short_text(column: pd.Series) -> bool:
    values = column.dropna()
    return bool(len(values)) and all(isinstance(v, str) and len(v) <= SHORT_TEXT for v in values)


def _unbroken(header):
    """A column header with "1-1" held together (a non-breaking hyphen), so a wrapped header never reads
    "after 1-" over "1"."""
    return header.replace("1-1", "1\u20111") if isinstance(header, str) else header


def _and_list(items) -> str:
    return vocab.and_join(f"{i[-1]} ({', '.join(map(str, i[:-1]))})" if isinstance(i, tuple) else str(i)
                          for i in items)


def _whole_numbers(column: pd.Series) -> bool:
    """A float column whose finite values are all whole numbers of magnitude >= 2 (counts, widths)."""
    if not pd.api.types.is_float_dtype(column):
        return False
    values = column.to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return bool(values.size) and bool(np.all(values == np.round(values))) and bool(np.all(np.abs(values) >= 2))


_NEGATIVE_ZERO = re.compile(r"^([-\u2212])(0(?:\.0+)?)(%?)$")


def _no_negative_zero(styler) -> None:
    """Wrap every cell formatter of ``styler`` so that a value which rounds to 0 never prints "-0.000"
    (whatever format string the page gave; :func:`saesim.report.frames.fmt_number` for plain numbers)."""
    funcs = getattr(styler, "_display_funcs", None)
    if funcs is None:  # another pandas: formats stay as given
        return

    def wrap(func):
        if getattr(func, "_saesim_no_negative_zero", False):
            return func

        def display(value):
            text = func(value)
            return _NEGATIVE_ZERO.sub(r"\2\3", text) if isinstance(text, str) else text

        display._saesim_no_negative_zero = True
        return display

    default = funcs.default_factory
    for key, func in list(funcs.items()):
        funcs[key] = wrap(func)
    if default is not None:
        funcs.default_factory = lambda: wrap(default())


def labelled(frame: pd.DataFrame, columns: Sequence[str], caption: str | None = None, *, precision: int = 3,
             shown: Sequence[str] | None = None):
    """``frame[columns]`` as the book shows it: headers from :func:`saesim.vocab.column_label`
    (a name it does not know is kept), numbers rounded to ``precision`` (never ``-0.000``), no index.

    With ``shown`` (a subset of ``columns``, tidy names), only those are shown at the page's width and
    every column one click away (:func:`split_table`)."""
    check_frame(frame, "frame", list(columns))
    table = frame[list(columns)].rename(columns=lambda c: vocab.column_label(c, default=c))
    if shown is None:
        return page_style(table, caption, precision=precision).hide(axis="index")
    unknown = [c for c in shown if c not in columns]
    if unknown:
        raise ValueError(f"`shown` {unknown} are not in `columns` {list(columns)}.")
    return split_table(table, [vocab.column_label(c, default=c) for c in shown], caption, precision=precision,
                       index=False)


def styled(table: pd.DataFrame, *, fmt: str = "{:.3f}", cmap: str = "magma", vmin=None, vmax=None):
    """A coloured view of a numeric table, when pandas' Styler can be used.

    Parameters
    ----------
    table : pandas.DataFrame
    fmt : str, default ``"{:.3f}"``
        Format for numeric cells (``str.format`` syntax, as Styler takes it).
    cmap : str, default ``"magma"``
        Colour map of the background gradient (the paper's heatmaps).
    vmin, vmax : float, optional
        Colour limits.

    Returns
    -------
    pandas.io.formats.style.Styler or pandas.DataFrame
        The Styler when ``jinja2`` is installed; the table unchanged otherwise.
    """
    if importlib.util.find_spec("jinja2") is None:
        return table
    numeric = table.select_dtypes("number").columns
    return page_style(table.style.format(fmt, subset=numeric, na_rep="")
                      .background_gradient(cmap=cmap, subset=numeric, vmin=vmin, vmax=vmax, axis=None))


# --- helpers shared with saesim.report.plots ------------------------------------------------------------

def with_effects(frame: pd.DataFrame, metrics: Sequence[str] = ("svcca", "rsa", "linear_cka", "svcca_authors_k")) -> pd.DataFrame:
    """A copy of a grid table with ``<metric>_excess`` = score minus its null mean, for each metric present.

    The effect over the null is what a raw score means: a raw SVCCA of 0.6
    against a null of 0.6 is no similarity at all.
    """
    out = frame.copy()
    for metric in metrics:
        if metric in out and f"{metric}_null_mean" in out:
            out[f"{metric}_excess"] = out[metric] - out[f"{metric}_null_mean"]
    return out


def comparison_table(frames: Mapping[str, pd.DataFrame], metric: str, *,
                     cells: Sequence[tuple[int, int]] | None = None) -> pd.DataFrame:
    """One row per (comparison, layer pair): pairs kept, score, null mean, excess, z, the book's
    p-value Holm-adjusted over that comparison's layer pairs, and whether the cell is above its null.

    Parameters
    ----------
    frames : mapping of name -> tidy grid table (one rule and direction)
        Keys are comparison keys of :mod:`saesim.vocab` (``"full_space"``, ``"seed"``, ...).
    metric : str
        ``"svcca"``, ``"rsa"``, ``"linear_cka"`` or ``"svcca_authors_k"``.
    cells : sequence of (layer_a, layer_b), optional
        Only these layer pairs (default: every row); the Holm family is still every layer pair of
        the comparison (:func:`saesim.compare.significance.above_null`).

    Returns
    -------
    pandas.DataFrame
        Columns named from :mod:`saesim.vocab`: comparison, layer pair, pairs kept, score, null
        mean, effect over null, z, p (Holm), above null.
    """
    from saesim.compare.significance import above_null

    names = {key: vocab.column_label(key) for key in ("n_pairs", "score", "null_mean", "excess", "z", "p_holm")}
    rows = []
    for name, frame in frames.items():
        check_frame(frame, f"frame {name!r}", ["layer_a", "layer_b", "n_pairs", metric, f"{metric}_null_mean",
                                                f"{metric}_p_tail", f"{metric}_z"])
        decided = above_null(frame, metric)
        for index, row in frame.iterrows():
            cell = (int(row["layer_a"]), int(row["layer_b"]))
            if cells is not None and cell not in cells:
                continue
            rows.append({"comparison": vocab.label("comparison", name, default=name),
                         "layer pair": vocab.layer_pair(*cell), names["n_pairs"]: int(row["n_pairs"]),
                         names["score"]: float(row[metric]), names["null_mean"]: float(row[f"{metric}_null_mean"]),
                         names["excess"]: float(decided.at[index, "excess"]), names["z"]: float(row[f"{metric}_z"]),
                         names["p_holm"]: float(decided.at[index, "p_holm"]),
                         "above null": "yes" if decided.at[index, "above"] else "no"})
    return pd.DataFrame(rows, columns=["comparison", "layer pair", *names.values(), "above null"])


COMPARISON_FORMATS = {"score": ".3f", "null_mean": ".3f", "excess": ".3f", "z": ".1f", "p_holm": ".2g"}
"""Number formats of :func:`comparison_table`'s columns (keys as in :mod:`saesim.vocab`)."""


def comparison_style(table: pd.DataFrame, caption: str | None = None):
    """:func:`comparison_table` as the page shows it (:func:`page_style`, numbers rounded, no index)."""
    formats = {vocab.column_label(key): (lambda v, f=fmt: format_cell(v, f)) for key, fmt in COMPARISON_FORMATS.items()}
    return page_style(table.style.format({k: v for k, v in formats.items() if k in table}).hide(axis="index"), caption)


def _numeric(column: pd.Series) -> pd.Series:
    try:
        return pd.to_numeric(column)
    except (TypeError, ValueError):
        return column


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def concept_family(subspace_frame: pd.DataFrame, concepts: Sequence[str]) -> pd.DataFrame:
    """The concept page's one multiple-testing family, with effects and adjusted p-values.

    The family is every scored (layer pair, concept) subspace of ``concepts``
    (the real concepts; the unrelated-word Control is judged apart). Adds
    ``<metric>_excess`` and, for every ``<metric>_p_tail`` column, its Holm-adjusted value over
    this family only (``<metric>_p_holm``; :func:`saesim.compare.significance.holm_within_families`),
    replacing any adjusted over a larger table.
    """
    check_frame(subspace_frame, "subspace_frame", ["concept", "n_pairs"])
    skipped = subspace_frame["skipped"].fillna("") != "" if "skipped" in subspace_frame else False
    return page_family(subspace_frame[subspace_frame["concept"].isin(list(concepts)) & ~skipped])


def page_family(frame: pd.DataFrame) -> pd.DataFrame:
    """A page's one multiple-testing family: every row of ``frame``, adjusted over it alone.

    Returns a copy with ``<metric>_excess`` and, for every ``<metric>_p_tail`` column (the
    book's p-values, :mod:`saesim.compare.significance`), the Holm-adjusted value over these rows
    (``<metric>_p_holm``), replacing any adjusted over a larger table (e.g.
    ``full_space.parquet`` holds both rules). The book's one procedure: no BH column.
    """
    family = frame.drop(columns=[c for c in frame if c.endswith(("_p_holm", "_p_bh"))])
    return with_effects(holm_within_families(family.reset_index(drop=True), keys=()))


def concept_headline(family: pd.DataFrame, metric: str = "svcca", *, by: str = "z",
                     min_pairs: int = MIN_HEADLINE_PAIRS) -> pd.Series | None:
    """The cell of ``family`` that stands out most from its null among those resting on at least
    ``min_pairs`` pairs, or None when no cell has that many.

    ``by="z"`` (default) ranks by ``<metric>_z``, the excess in null standard deviations, which
    already discounts small subspaces' wide nulls; ``by="excess"`` by score minus null mean.
    """
    if by not in ("z", "excess"):
        raise ValueError(f"`by` must be 'z' or 'excess'; got {by!r}.")
    column = f"{metric}_{by}"
    check_frame(family, "family", ["n_pairs", column])
    eligible = family[family["n_pairs"] >= min_pairs]
    if eligible.empty or not eligible[column].notna().any():
        return None
    return eligible.loc[eligible[column].idxmax()]


_QUALITY_VIEW = {"slot": None, "layer": None, "fvu_heldout": "{:.3f}", "dead_fraction": "{:.1%}", "pw_mcc": "{:.2f}",
                 "shared_dec": "{:.1%}"}
"""Columns of :func:`saesim.experiments.sae_quality.sae_quality_table` that :func:`quality_view` shows, in order,
with their formats."""


def quality_view(quality: pd.DataFrame):
    """The SAE-quality table as the book shows it: short SAE names, human column names, percentages.

    SAE slots and column headers read as :mod:`saesim.vocab` names them (``"seed"`` -> ``"A, second SAE set"``).
    """
    view = quality[list(_QUALITY_VIEW)].assign(slot=quality["slot"].map(lambda s: vocab.label("slot", s, default=s)))
    view = view.rename(columns=display_name)
    fmt = {display_name(c): f for c, f in _QUALITY_VIEW.items() if f is not None}
    return view.style.format(fmt, na_rep="–").hide(axis="index")


def quality_caption(quality: pd.DataFrame, profile) -> str:
    """What the SAE-quality table's rows are: the models behind A and B, width, k, training tokens."""
    trained = quality["train_tokens"].dropna()
    widths = sorted({int(w) for w in quality["width"]})
    return (f"Every SAE of this run (A = {profile.model_a.model}, B = {profile.model_b.model}; "
            f"{', '.join(f'{w:,}' for w in widths)} latents"
            + (f", trained on {int(trained.max()):,} tokens" if len(trained) and trained.max() > 0 else "")
            + (f" of {train_text_words(profile.model_a.sae.train_text)} outside the grid, so every token of the "
               "comparison is held out" if profile.model_a.sae.train_text else "")
            + "): held-out FVU, dead latents and, where a second SAE of the layer exists, seed stability against "
            "it (shared: matched at decoder cosine ≥ 0.7; the chance levels are in the sentence above; "
            "sae_quality.parquet also holds the decoder-and-encoder criterion, activation MCC and L0)")
