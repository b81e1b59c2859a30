"""The robustness and sweeps chapters' figures: SAE score against its baselines, and sweeps as small multiples.

Like :mod:`saesim.report.plots` (which re-exports these functions), every
function takes a tidy table and returns a :class:`matplotlib.figure.Figure`
built without pyplot; nothing here computes an experiment or reads a file.
:func:`plot_baselines` draws a
:func:`saesim.experiments.baselines.control_comparison` table,
:func:`plot_sweep` a table of :mod:`saesim.experiments.sweeps`.
"""

from __future__ import annotations

import pandas as pd

from saesim import vocab
from saesim.experiments.baselines import COMPARISONS

__all__ = ["plot_baselines", "plot_sweep", "policy_label"]


def plot_baselines(table: pd.DataFrame, metric: str, *, ax=None):
    """Paired SAE score and each baseline, with CIs, per layer pair (one metric, first rule/direction).

    Each comparison is a point with its interval (``ci_low``..``ci_high``);
    the shuffled null is drawn as a grey band (its ``ci_low``..``ci_high``,
    mean ± 1.96 sd in :func:`saesim.experiments.baselines.control_comparison`)
    with its mean as a line, behind the points of the same layer pair. The legend sits below the axes.
    Returns a :class:`matplotlib.figure.Figure` that pyplot does not manage
    (a notebook shows it only through :func:`saesim.report.book.show_figure`).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    sub = table[table["metric"] == metric]
    if sub.empty:
        raise ValueError(f"no rows for metric {metric!r} in the table.")
    first = sub.iloc[0]
    sub = sub[(sub["rule"] == first["rule"]) & (sub["direction"] == first["direction"])]
    pairs = list(dict.fromkeys(zip(sub["layer_a"], sub["layer_b"])))
    if ax is None:
        fig = Figure(figsize=(max(8.0, 1.6 * len(pairs) + 3), 4.6), layout="constrained")
        ax = fig.subplots()
    present = set(sub["comparison"])
    comparisons = [c for c in COMPARISONS if c in present and c != "shuffle_null"]
    width = 0.8 / max(len(comparisons), 1)
    handles = []
    if "shuffle_null" in present:
        rows = sub[sub["comparison"] == "shuffle_null"].set_index(["layer_a", "layer_b"])
        for i, pair_ in enumerate(pairs):
            if pair_ not in rows.index:
                continue
            row = rows.loc[pair_]
            row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
            ax.fill_between([i - 0.45, i + 0.45], row["ci_low"], row["ci_high"], color="0.6", alpha=0.35,
                            linewidth=0, zorder=1)
            ax.hlines(row["value"], i - 0.45, i + 0.45, color="0.35", linewidth=1.2, zorder=2)
        band = f"{vocab.label('comparison', 'shuffle_null')} (mean ± 1.96 sd)"
        handles.append(Patch(facecolor="0.6", alpha=0.35, label=band))
    for j, comparison in enumerate(comparisons):
        rows = sub[sub["comparison"] == comparison].set_index(["layer_a", "layer_b"])
        xs, ys, lo, hi = [], [], [], []
        for i, pair_ in enumerate(pairs):
            if pair_ not in rows.index:
                continue
            row = rows.loc[pair_]
            row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
            xs.append(i + (j - (len(comparisons) - 1) / 2) * width)
            ys.append(row["value"])
            lo.append(row["ci_low"])
            hi.append(row["ci_high"])
        points = ax.plot(xs, ys, "o", label=vocab.label("comparison", comparison, default=comparison), zorder=3)[0]
        ax.vlines(xs, lo, hi, color=points.get_color(), linewidth=1.5, zorder=3)
        handles.insert(len(handles) - ("shuffle_null" in present), points)
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels([vocab.layer_pair(a, b) for a, b in pairs])
    ax.set_xlim(-0.6, len(pairs) - 0.4)
    ax.set_xlabel("layer pair")
    ax.set_ylabel(vocab.column_label(metric, default=metric))
    ax.set_title(f"{vocab.column_label(metric, default=metric)}: {vocab.label('comparison', 'sae')} against its "
                 f"baselines ({_setting('rule', first['rule'])}, {_setting('direction', first['direction'])})")
    ax.legend(handles=handles, fontsize="small", frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncols=min(3, len(handles)))
    return ax.figure


def policy_label(policy) -> str:
    """A dimension policy in words.

    ``"0.99"`` -> ``"99% var"``, ``"10"`` -> ``"k=10"``, ``"ratio:50"`` -> ``"k=n/50"``.
    """
    text = str(policy)
    if text.startswith("ratio:"):
        return f"k=n/{text.split(':', 1)[1]}"
    try:
        value = float(text)
    except ValueError:
        return text
    if "." in text and value < 1:
        return f"{100 * value:g}% var"
    return f"k={int(value)}"


_LINESTYLES = ("-", "--", "-.", (0, (1, 1)))
_SETTING_KINDS = {"rule": "rule", "direction": "direction", "comparison": "comparison", "null_kind": "null"}


def _setting(column, value) -> str:
    """A value of a sweep's setting column as the vocabulary names it (``first_index`` -> ``1-1 (first occurrence)``)."""
    kind = _SETTING_KINDS.get(column)
    return vocab.label(kind, value, default=str(value)) if kind else str(value)


def plot_sweep(table: pd.DataFrame, x: str, metrics=("svcca", "rsa"), *, hue: str | None = None,
               col: str | None = None, style: str | None = None, ncols: int = 5):
    """Small multiples of a sweep: one panel per (metric, ``col`` value), score vs ``x`` with its null mean.

    Parameters
    ----------
    table : DataFrame
        A ``sweep_*`` table (:mod:`saesim.experiments.sweeps`); rows with a non-empty ``skipped`` are left out.
    x : str
        The swept setting. A numeric column is drawn as lines; a categorical
        one (strings, e.g. ``policy``) as separate points on evenly spaced,
        labelled ticks, never joined by lines.
    metrics : sequence of str
        One row of panels each.
    hue, style : str, optional
        Columns told apart by colour and by line style (or marker) within a
        panel.
    col : str, optional
        One panel per value (wrapped after ``ncols`` panels).
    ncols : int, default 5

    Returns
    -------
    matplotlib.figure.Figure
        Not managed by pyplot; one legend for the whole figure, below the
        panels. The shuffled-null mean of each line is dotted in its colour.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if "skipped" in table:
        table = table[table["skipped"].fillna("") == ""]
    metrics = [m for m in metrics if m in table]
    cols = list(dict.fromkeys(table[col])) if col else [None]
    per_row = max(1, min(ncols, len(cols)))
    blocks = -(-len(cols) // per_row)
    n_rows = len(metrics) * blocks
    fig = Figure(figsize=(max(8.0, 3.4 * per_row), 3.0 * n_rows + 0.8), layout="constrained")
    axes = fig.subplots(n_rows, per_row, squeeze=False)
    categorical = table[x].dtype == object or isinstance(table[x].dtype, pd.StringDtype)
    levels = list(dict.fromkeys(table[x].astype(str))) if categorical else None
    hues = list(dict.fromkeys(table[hue])) if hue else [None]
    styles = list(dict.fromkeys(table[style])) if style else [None]
    colours = {h: f"C{i % 10}" for i, h in enumerate(hues)}
    dashes = {v: _LINESTYLES[i % len(_LINESTYLES)] for i, v in enumerate(styles)}
    markers = {v: "osD^v"[i % 5] for i, v in enumerate(styles)}
    for i, metric in enumerate(metrics):
        for j, value in enumerate(cols):
            ax = axes[i * blocks + j // per_row][j % per_row]
            sub = table if col is None else table[table[col] == value]
            for h in hues:
                for v in styles:
                    g = sub
                    if hue:
                        g = g[g[hue] == h]
                    if style:
                        g = g[g[style] == v]
                    if g.empty:
                        continue
                    if categorical:
                        g = g.assign(_x=[levels.index(t) for t in g[x].astype(str)]).sort_values("_x")
                        offset = (hues.index(h) * len(styles) + styles.index(v)
                                  - (len(hues) * len(styles) - 1) / 2) * 0.08
                        xs = g["_x"].to_numpy(dtype=float) + offset
                        ax.plot(xs, g[metric], linestyle="none", marker=markers[v], color=colours[h])
                        if f"{metric}_null_mean" in g:
                            ax.plot(xs, g[f"{metric}_null_mean"], linestyle="none", marker="_", markersize=12,
                                    color=colours[h], alpha=0.7)
                    else:
                        g = g.sort_values(x)
                        ax.plot(g[x], g[metric], marker=markers[v], markersize=4, linestyle=dashes[v],
                                color=colours[h])
                        if f"{metric}_null_mean" in g:
                            ax.plot(g[x], g[f"{metric}_null_mean"], linestyle=":", color=colours[h], alpha=0.7)
            if categorical:
                labels = [policy_label(t) if x == "policy" else t for t in levels]
                ax.set_xticks(range(len(levels)), labels, rotation=35, ha="right", fontsize="small")
            ax.set_title(vocab.column_label(metric, default=metric) + (f" · {_setting(col, value)}" if col else ""),
                         fontsize="small")
            ax.set_xlabel(vocab.column_label(x, default=x))
            if j % per_row == 0:
                ax.set_ylabel(vocab.column_label(metric, default=metric))
        for j in range(len(cols), blocks * per_row):
            axes[i * blocks + j // per_row][j % per_row].set_visible(False)
    handles = []
    for h in hues:
        for v in styles:
            name = " · ".join(_setting(c, t) for c, t in ((hue, h), (style, v)) if t is not None) or "score"
            handles.append(Line2D([], [], color=colours[h], marker=markers[v],
                                  linestyle="none" if categorical else dashes[v], label=name))
    null_style = dict(linestyle="none", marker="_", markersize=12) if categorical else dict(linestyle=":")
    handles.append(Line2D([], [], color="0.4", label="shuffled-null mean", **null_style))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize="small",
               frameon=False)
    return fig
