"""Bars and histograms: paired scores beside their nulls, hubs, activation frequencies, p-values with their cut-offs.

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

from saesim.compare.multitest import n_rejected
from saesim.report._plot_style import check_1d, check_ncols, check_values, new_figure, panel_grid, panel_title, wrap
from saesim.report.frames import check_frame, check_unique
from saesim.report.tables import display_name


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
        ax = new_figure(5.0, 3.6).subplots()
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
    series = {name: check_1d(values, "freq") for name, values in series.items()}
    for values in series.values():
        if values.size and (np.nanmin(values) < 0 or np.nanmax(values) > 1):
            raise ValueError("`freq` must hold fractions of tokens in [0, 1]; got values in "
                             f"[{np.nanmin(values):g}, {np.nanmax(values):g}] (divide counts by n_tokens).")
    live = np.concatenate([v[v > 0] for v in series.values()]) if series else np.array([])
    if ax is None:
        ax = new_figure(5.0, 3.6).subplots()
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
