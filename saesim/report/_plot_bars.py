"""Bars, histograms and lines: paired scores beside their nulls (per layer pair, per pairing rule), hubs,
activation frequencies, the pairs left after each filter stage, p-values with their cut-offs.

Private to :mod:`saesim.report`; import the public names from :mod:`saesim.report.plots`.

References
----------
Holm, "A simple sequentially rejective multiple test procedure", Scand. J.
Stat. 6 (1979), 65-70.

Benjamini and Hochberg, "Controlling the false discovery rate", J. R. Stat.
Soc. B 57 (1995), 289-300.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from saesim import vocab
from saesim.compare.multitest import n_rejected
from saesim.report._plot_style import check_1d, check_ncols, check_values, new_figure, panel_grid, panel_title, wrap
from saesim.report.frames import check_frame, check_unique
from saesim.report.tables import counts_table, display_name

FILTER_STAGES: tuple[str, ...] = ("n_choosers", "n_with_partner", "n_after_junk", "n_after_1to1", "n_pairs")
"""Count columns drawn by :func:`filter_stages`, in pipeline order (x ticks headed by
:func:`saesim.vocab.column_label`: choosers, with partner, after junk filter, after 1-1, pairs kept)."""

PAGE_PANEL_SIZE = (5.5, 3.8)
"""Size (inches) of the figure :func:`hub_histogram` and :func:`frequency_histogram` draw when not
given ``ax``: the book's (take it with ``.figure``)."""

MAX_LEGEND_LINES = 12
"""Most lines :func:`filter_stages` names in a legend (more would hide the plot)."""


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
        layer_a = _best_layer_a(frame, metric)
    rows = frame[frame["layer_a"] == layer_a]
    if rows.empty:
        raise ValueError(f"`frame` has no rows for layer_a={layer_a!r}; layers present: "
                         f"{sorted(frame['layer_a'].unique().tolist())}.")
    rows = rows.sort_values("layer_b")
    if ax is None:
        ax = new_figure(max(4.0, 0.55 * len(rows) + 2.0), 3.6).subplots()
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
    ax.set_title(wrap(f"{display_name(metric)}: {label_a} layer {layer_a} vs {label_b} layers", ax),
                 fontsize="medium")
    ax.axhline(0.0, color="black", linewidth=0.6)
    # below the axes, never over the bars
    ax.legend(frameon=False, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    return ax


def paired_vs_null_panels(frame: pd.DataFrame, metrics: Sequence[str] | str = ("svcca", "rsa"), *,
                          layer_a=None, label_a: str = "model A", label_b: str = "model B") -> Figure:
    """:func:`paired_vs_null_bars` of several measures side by side, for one A layer (A8).

    Parameters
    ----------
    frame : pandas.DataFrame
        ``full_space.parquet`` restricted to one rule and direction.
    metrics : str or sequence of str, default ``("svcca", "rsa")``
        One panel each, left to right; each needs ``<metric>`` and ``<metric>_null_mean``.
    layer_a : optional
        The A layer of every panel; by default the one holding the highest score of the
        first metric.
    label_a, label_b : str
        Model names used in the titles and axis labels.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric, 5.5 × 3.8 in each.
    """
    metrics = check_values(metrics, name="metrics")
    check_frame(frame, "frame", ["layer_a", "layer_b", *metrics])
    if layer_a is None:
        layer_a = _best_layer_a(frame, metrics[0])
    fig = new_figure(5.5 * len(metrics), 3.8)
    for ax, metric in zip(np.atleast_1d(fig.subplots(1, len(metrics))), metrics):
        paired_vs_null_bars(frame, metric, layer_a=layer_a, ax=ax, label_a=label_a, label_b=label_b)
    return fig


def rule_bars(frame: pd.DataFrame, *, pairs: Sequence | None = None, rules: Sequence[str] | None = None,
              directions: Sequence[str] | None = None, metric: str = "svcca", label_a: str = "model A",
              label_b: str = "model B") -> Figure:
    """Paired score (bars) and its null mean (black ticks) of every pairing rule, one panel per direction.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``full_space.parquet`` rows of several rules and directions: columns ``rule``,
        ``direction``, ``layer_a``, ``layer_b``, ``<metric>`` and ``<metric>_null_mean``, one
        row per (rule, direction, layer pair).
    pairs : sequence of (A layer, B layer), optional
        The layer pairs on the x axis, in order (a pair missing from a rule's rows leaves a
        gap); by default every pair of ``frame``, sorted.
    rules, directions : sequence of str, optional
        Bar groups (one colour per rule, legend from :func:`saesim.vocab.label`) and panels
        (top to bottom); by default those of ``frame`` in order of appearance.
    metric : str, default ``"svcca"``
    label_a, label_b : str
        Model names of the x axis label.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per direction, sharing the y axis; in each, one bar per (layer pair, rule)
        and the null mean of each bar as a black tick; the legend sits right of the top panel.
    """
    null_column = f"{metric}_null_mean"
    check_frame(frame, "frame", ["rule", "direction", "layer_a", "layer_b", metric, null_column])
    check_unique(frame, ["rule", "direction", "layer_a", "layer_b"], "frame")
    rules = list(frame["rule"].unique()) if rules is None else list(rules)
    directions = list(frame["direction"].unique()) if directions is None else list(directions)
    pairs = (sorted(set(zip(frame["layer_a"], frame["layer_b"]))) if pairs is None
             else [tuple(p) for p in pairs])
    for name, given in (("rules", rules), ("directions", directions), ("pairs", pairs)):
        if not given:
            raise ValueError(f"`{name}` is empty; give at least one (or rows in `frame`).")
    names = [vocab.layer_pair(la, lb) for la, lb in pairs]
    fig = new_figure(max(6.0, 0.35 * len(rules) * len(pairs) + 3.0), 2.8 * len(directions))
    axes = fig.subplots(len(directions), 1, squeeze=False, sharey=True)[:, 0]
    width = 0.8 / len(rules)
    measure = vocab.label("measure", metric, default=display_name(metric))
    for ax, direction in zip(axes, directions):
        for j, rule in enumerate(rules):
            sub = frame[(frame["rule"] == rule) & (frame["direction"] == direction)].set_index(["layer_a", "layer_b"])
            at = np.arange(len(pairs)) + (j - (len(rules) - 1) / 2) * width
            score = [float(sub[metric].get(p, np.nan)) for p in pairs]
            null = [float(sub[null_column].get(p, np.nan)) for p in pairs]
            ax.bar(at, score, width=width, label=vocab.label("rule", rule, default=rule), color=f"C{j}")
            ax.scatter(at, null, marker="_", s=120, color="black", zorder=3, label="null mean" if j == 0 else None)
        ax.set_xticks(range(len(pairs)), names)
        ax.set_xlabel(f"layer pair ({label_a} – {label_b})")
        ax.set_ylabel(f"paired {measure}")
        ax.set_title(f"direction: {vocab.label('direction', direction, default=direction)}")
    axes[0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def filter_stages(frame: pd.DataFrame) -> Figure:
    """Percentage of the choosing latents left after each filter stage, one line per layer pair.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``full_space.parquet`` (any subset of its rows) with the counts of
        :data:`FILTER_STAGES`; the lines are the rows of
        :func:`saesim.report.tables.counts_table` (sorted by A layer, then B layer).

    Returns
    -------
    matplotlib.figure.Figure
        One line per row, labelled ``A<layer>·B<layer>`` (plus rule and direction when the
        frame holds several), at ``100 * stage / choosers`` for each stage; a legend right of
        the axes when there are at most :data:`MAX_LEGEND_LINES` lines. A row with no
        chooser draws no point.
    """
    check_frame(frame, "frame", ["layer_a", "layer_b", *FILTER_STAGES])
    counts = counts_table(frame)
    stages = [display_name(stage) for stage in FILTER_STAGES]
    fig = new_figure(7.0, 3.8)
    ax = fig.subplots()
    x = np.arange(len(stages))
    for key, row in counts.iterrows():
        values = pd.to_numeric(row[stages], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            percent = np.where(values[0] > 0, 100.0 * values / values[0], np.nan)
        ax.plot(x, percent, marker="o", label=_row_label(key), alpha=0.8)
    ax.set_xticks(x, stages, rotation=15)
    ax.set_ylabel("% of choosing latents")
    ax.set_title("Pairs left after each filter stage")
    if 0 < len(counts) <= MAX_LEGEND_LINES:
        ax.legend(frameon=False, fontsize="small", ncols=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


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
        ax = new_figure(max(4.5, 1.1 * len(layers) + 2.0), 3.6).subplots()
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
    ax.set_title(wrap(f"{display_name(metric)}: trained vs random-model control", ax), fontsize="medium")
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
        Where to draw; a new :data:`PAGE_PANEL_SIZE` figure when omitted (its ``.figure``).
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
    counts = check_1d(counts, "counts")
    if (counts < 0).any():
        raise ValueError("`counts` must be non-negative chooser counts; got a minimum of "
                         f"{counts.min():g}.")
    chosen = counts[counts > 0]
    if ax is None:
        ax = new_figure(*PAGE_PANEL_SIZE).subplots()
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
        Where to draw; a new :data:`PAGE_PANEL_SIZE` figure when omitted (its ``.figure``).
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
    series = {name: check_1d(values, "freq") for name, values in series.items()}
    for values in series.values():
        if values.size and (np.nanmin(values) < 0 or np.nanmax(values) > 1):
            raise ValueError("`freq` must hold fractions of tokens in [0, 1]; got values in "
                             f"[{np.nanmin(values):g}, {np.nanmax(values):g}] (divide counts by n_tokens).")
    live = np.concatenate([v[v > 0] for v in series.values()]) if series else np.array([])
    if ax is None:
        ax = new_figure(*PAGE_PANEL_SIZE).subplots()
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
    """Histograms of p-values over a grid, with the Holm cut-off drawn (the book's one procedure).

    Parameters
    ----------
    frame : pandas.DataFrame
        A grid table (``full_space.parquet``, ``subspace.parquet``) holding one family: the cells
        Holm adjusts over together (one comparison, rule and direction,
        :func:`saesim.compare.significance.above_null`).
    columns : str or sequence of str
        Unadjusted p-value columns, one panel each: the book's p-values (``["svcca_p_tail",
        "rsa_p_tail"]``, :mod:`saesim.compare.significance`) or the raw permutation ones
        (``["svcca_p", "rsa_p"]``).
    alpha : float, default 0.05
        Holm's family-wise level; an uncorrected line at ``alpha`` is drawn too.
    bins : int, default 20
        Bins on [0, 1].
    ncols : int, default 3

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    The p-values drawn are the unadjusted ones. Holm's step-down procedure, the only
    multiple-testing procedure of the book (:data:`saesim.compare.significance.MULTIPLE_TESTING`),
    is drawn as a vertical line at its cut-off (:func:`multiple_testing_cutoffs`): the largest
    p-value it rejects, where the step-down sequence :math:`\\alpha/(m-i+1)` first fails, so the
    bars left of the line are the rejected tests (the cells whose ``<metric>_p_holm`` is at most
    ``alpha``). When it rejects nothing the line is drawn dotted at :math:`\\alpha/m`, its
    smallest threshold (no p-value lies below it). The legend gives the cut-off and the number of
    rejections out of m. Under the null, p-values are uniform; a spike at the left edge is the
    signal.
    """
    columns = check_values(columns, name="columns")
    check_frame(frame, "frame", columns)
    ncols = check_ncols(ncols, len(columns))
    fig, axes = panel_grid(len(columns), ncols, (4.6, 3.4))
    for ax, column in zip(axes, columns):
        p = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        p = p[np.isfinite(p)]
        if p.size and (p.min() < 0 or p.max() > 1):
            raise ValueError(f"Column `{column}` must hold p-values in [0, 1]; got [{p.min():g}, {p.max():g}].")
        cut = multiple_testing_cutoffs(p, alpha=alpha)
        ax.hist(p, bins=np.linspace(0, 1, bins + 1), color="#3b0f70", alpha=0.85)
        ax.axvline(alpha, color="grey", linestyle="--", label=f"α = {alpha:g} (uncorrected, "
                                                               f"{int((p <= alpha).sum())}/{cut.m})")
        if cut.n_holm:
            ax.axvline(cut.holm, color="#b73779",
                       label=f"Holm cut-off p ≤ {cut.holm:.3g} ({cut.n_holm}/{cut.m} rejected)")
        else:
            ax.axvline(alpha / max(cut.m, 1), color="#b73779", linestyle=":",
                       label=f"Holm: none rejected (α/m = {alpha / max(cut.m, 1):.3g})")
        ax.set_xlim(0, 1)
        ax.set_xlabel("p-value (unadjusted)")
        ax.set_ylabel("number of tests")
        ax.set_title(panel_title(column))
        ax.legend(frameon=False, fontsize="x-small")
    return fig


def _best_layer_a(frame: pd.DataFrame, metric: str):
    """The A layer of the row with the highest ``metric``."""
    scores = pd.to_numeric(frame[metric], errors="coerce")
    if not scores.notna().any():
        raise ValueError(f"Column `{metric}` has no finite value; pass `layer_a` explicitly.")
    return frame.loc[scores.idxmax(), "layer_a"]


def _row_label(key) -> str:
    """``A<layer>·B<layer>`` of a :func:`counts_table` index entry, its rule and direction after it."""
    layer_a, layer_b, *rest = key
    words = [vocab.label("rule", v, default=None) or vocab.label("direction", v, default=str(v)) for v in rest]
    return ", ".join([f"A{layer_a}·B{layer_b}", *words])
