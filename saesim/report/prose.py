"""Generated English: the robustness verdict and the findings summary, from the tables' numbers only.

Everything here reads a :func:`saesim.experiments.baselines.control_comparison`
table (and, for the p-values, the page's tidy grid) and writes English that
follows from the numbers only, never text written for one outcome. "Beats" /
"above" means the SAE score's interval lies entirely above the baseline's.
:func:`findings` summarises the grids of every comparison (A against B and
the controls) for the findings page; :func:`control_lines` reads each control
raw and over its null against A against B for the full-space page, with the
rank correlation of the nulls with n and k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from saesim import vocab
from saesim.compare.effects import as_float

__all__ = [
    "FINDING_NAMES",
    "IDENTICAL_R",
    "SATURATION_RATIO",
    "bulleted",
    "control_lines",
    "family_p_value",
    "findings",
    "verdict",
    "verdict_table",
]

_BASELINES = ("seed", "control", "control_all", "raw_neuron", "shuffle_null")
"""The baselines of a control table in the order the verdict judges them (named by :mod:`saesim.vocab`)."""

IDENTICAL_R = 0.999
"""Raw-neuron pairs with a mean correlation this high come from one model in both slots."""

SATURATION_RATIO = 2.0
"""A CCA score with fewer than this many pairs per kept dimension is flagged as saturated."""


def verdict(table: pd.DataFrame, *, metrics=None, alpha: float = 0.05) -> list[str]:
    """One plain-language verdict per (layer pair, rule, direction, metric) of a control table.

    ``table`` is a :func:`saesim.experiments.baselines.control_comparison`
    table. "Beats" a baseline means the SAE score's CI lies entirely above the
    baseline's CI (where a CI is missing, its point value is used and the
    sentence says so). Each sentence also gives both effects over their own
    shuffled nulls, and flags a CCA score computed with fewer than
    :data:`SATURATION_RATIO` pairs per kept dimension (near 1 whatever the
    data). The sentences are generated from the numbers only.
    """
    if table is None or table.empty:
        return ["No comparisons to judge: the table is empty."]
    metrics = metrics or list(dict.fromkeys(table["metric"]))
    lines = []
    keys = ["layer_a", "layer_b", "rule", "direction", "metric"]
    for key, group in table[table["metric"].isin(metrics)].groupby(keys, sort=True):
        la, lb, rule, direction, metric = key
        by = {row["comparison"]: row for row in group.to_dict("records")}
        sae = by.get("sae")
        if sae is None or not np.isfinite(sae["value"]):
            lines.append(f"Layers A{la}–B{lb}, {metric} ({rule}, {direction}): no SAE score (too few pairs).")
            continue
        parts, beaten, judged = [], [], []
        seed = by.get("seed")
        if seed is not None and np.isfinite(seed["value"]) and np.isfinite(seed.get("effect", np.nan)):
            share = (f"; the SAE pairs' effect is {sae['effect'] / seed['effect']:.0%} of it"
                     if seed["effect"] > 0 and np.isfinite(sae["effect"]) else "")
            parts.append(f"{vocab.phrase('comparison', 'seed')} at layer {la} score {_fmt(seed)}, effect "
                         f"{seed['effect']:+.3f} over their null ({vocab.SEED_REFERENCE}, which the cross-model "
                         f"score is read against){share}")
        for name in _BASELINES[1:]:
            label = vocab.phrase("comparison", name)
            base = by.get(name)
            if base is None or not np.isfinite(base["value"]):
                continue
            judged.append(label)
            wins, missing = _beats(sae, base)
            if wins:
                beaten.append(label)
            how = ("beats" if wins else "does not clearly beat")
            gap = ("by more than their CIs" if wins else "(the intervals overlap)" if sae["value"] > base["value"]
                   else "(it scores lower or equal)")
            note = " [a CI is missing; point value used]" if missing else ""
            if name != "shuffle_null" and np.isfinite(base.get("effect", np.nan)) and np.isfinite(sae["effect"]):
                note += (f"; over their own nulls the SAE gains {sae['effect']:+.3f}, "
                         f"{vocab.label('comparison', name)} {base['effect']:+.3f}")
            if name == "raw_neuron" and as_float(base.get("mean_r")) >= IDENTICAL_R:
                note += (" (the raw neurons pair with mean r ≈ 1: both slots run the same model, so this "
                         "baseline is a ceiling, not a bar to clear)")
            if _saturated(base):
                note += (f" (caution: {vocab.label('comparison', name)} keeps k = {int(max(base['k_x'], base['k_y']))} "
                         f"dimensions for {int(base['n_pairs'])} pairs, so its CCA score is near 1 by construction)")
            parts.append(f"it {how} {label} {_fmt(base)} {gap}{note}")
        head = f"Layers A{la}–B{lb}, {metric} ({rule}, {direction}): SAE score {_fmt(sae)}"
        p = sae.get("p_holm") if np.isfinite(sae.get("p_holm", np.nan)) else sae.get("p")
        ptxt = "" if not np.isfinite(p) else (
            f"; shuffled-null {'Holm-adjusted ' if np.isfinite(sae.get('p_holm', np.nan)) else ''}p = {p:.3g}"
            f" ({'significant' if p < alpha else 'not significant'} at {alpha:g}), effect {sae['effect']:+.3f}")
        if not judged:
            summary = "no baseline to judge against"
        elif len(beaten) == len(judged):
            summary = "beats every baseline"
        elif not beaten:
            summary = "beats none of the baselines"
        else:
            summary = "beats " + ", ".join(beaten) + " only"
        lines.append(f"{head}; " + "; ".join(parts) + f"{ptxt}. Verdict: {summary}.")
    return lines


def _beats(sae: dict, base: dict) -> tuple[bool, bool]:
    """``(wins, missing)``: the SAE score's CI lies above the baseline's (points where a CI is missing)."""
    sae_low = sae["ci_low"] if np.isfinite(sae["ci_low"]) else sae["value"]
    base_high = base["ci_high"] if np.isfinite(base["ci_high"]) else base["value"]
    return bool(sae_low > base_high), not (np.isfinite(sae["ci_low"]) and np.isfinite(base["ci_high"]))


_EFFECT, _P_HOLM, _SEED_SHARE = (vocab.column_label(c) for c in ("effect", "p_holm", "seed_share"))


def verdict_table(table: pd.DataFrame, *, family: pd.DataFrame | None = None, metrics=None,
                  alpha: float = 0.05) -> pd.DataFrame:
    """The verdict as a table: one row per (layer pair, rule, direction, metric) of a control table.

    Columns: the SAE score with its interval, its effect over the shuffled
    null, its p-value adjusted over the page's family, one column per
    baseline ("above" when the SAE interval lies entirely above the
    baseline's, "overlaps" or "below" otherwise, with the baseline's score
    and interval; a "*" marks a point used for a missing interval), the SAE
    effect as a share of two SAEs of model A's, and the verdict in a few words.
    Baselines and headers are named by :mod:`saesim.vocab`.

    ``family`` is the tidy grid whose Holm-adjusted ``<metric>_p_holm`` is the
    page's one multiple-testing family (e.g. every cell and rule of
    ``full_space.parquet``); the SAE p-value of a row is looked up there.
    Without it, the table's own ``p_holm`` is used.
    """
    if table is None or table.empty:
        return pd.DataFrame()
    metrics = metrics or list(dict.fromkeys(table["metric"]))
    rows = []
    keys = ["layer_a", "layer_b", "rule", "direction", "metric"]
    for (la, lb, rule, direction, metric), group in table[table["metric"].isin(metrics)].groupby(keys, sort=True):
        by = {row["comparison"]: row for row in group.to_dict("records")}
        sae = by.get("sae")
        row = {"layer pair": f"A{la}–B{lb}", "rule": rule, "measure": metric}
        if sae is None or not np.isfinite(sae["value"]):
            rows.append({**row, "verdict": "no SAE score (too few pairs)"})
            continue
        p = family_p_value(family, la, lb, rule, direction, metric) if family is not None else sae.get("p_holm")
        row.update({"SAE score [CI]": _fmt(sae), _EFFECT: sae["effect"], _P_HOLM: as_float(p)})
        beaten, judged = [], []
        for name in _BASELINES:
            column = vocab.label("comparison", name)
            base = by.get(name)
            if base is None or not np.isfinite(base["value"]):
                continue
            wins, missing = _beats(sae, base)
            judged.append(column)
            beaten += [column] if wins else []
            place = "above" if wins else "overlaps" if sae["value"] > base["value"] else "below"
            row[column] = f"{place}: {_fmt(base)}{'*' if missing else ''}"
        seed = by.get("seed")
        if seed is not None and np.isfinite(seed.get("effect", np.nan)) and seed["effect"] > 0:
            row[_SEED_SHARE] = sae["effect"] / seed["effect"]
        significant = np.isfinite(row[_P_HOLM]) and row[_P_HOLM] < alpha
        unreachable = _holm_floor(family, metric) if family is not None else None
        beyond = [c for c in beaten if c != vocab.label("comparison", "seed")]
        others = [c for c in judged if c != vocab.label("comparison", "seed")]
        row["verdict"] = ((("above every baseline" if len(beyond) == len(others) else
                            "above none" if not beyond else "above " + ", ".join(beyond) + " only")
                           if others else "no baseline")
                          + ("" if significant else
                             f"; Holm over {unreachable[0]} tests cannot reach {alpha:g} with {unreachable[1]} "
                             f"permutations" if unreachable and unreachable[2] > alpha else
                             f"; not significant at {alpha:g} after Holm"))
        rows.append(row)
    columns = ["layer pair", "rule", "measure", "SAE score [CI]", _EFFECT, _P_HOLM,
               *(vocab.label("comparison", name) for name in _BASELINES), _SEED_SHARE, "verdict"]
    out = pd.DataFrame(rows)
    return out[[c for c in columns if c in out]]


def _holm_floor(family: pd.DataFrame, metric: str):
    """``(m, R, floor)``: Holm over m tests of R permutations each cannot go below m / (R + 1)."""
    p = pd.to_numeric(family.get(f"{metric}_p"), errors="coerce") if f"{metric}_p" in family else None
    if p is None or "n_perm" not in family or not p.notna().any():
        return None
    m, n_perm = int(p.notna().sum()), int(pd.to_numeric(family["n_perm"]).max())
    return m, n_perm, min(1.0, m / (n_perm + 1))


def family_p_value(family: pd.DataFrame, layer_a, layer_b, rule, direction, metric) -> float:
    """The Holm-adjusted p-value of one cell of ``family`` (a tidy grid with ``<metric>_p_holm``), NaN if absent."""
    column = f"{metric}_p_holm"
    if column not in family:
        return float("nan")
    cell = family[(family["layer_a"] == layer_a) & (family["layer_b"] == layer_b) & (family["rule"] == rule)
                  & (family["direction"] == direction)]
    return float(cell[column].iloc[0]) if len(cell) else float("nan")


def _saturated(row) -> bool:
    k = max(as_float(row.get("k_x")), as_float(row.get("k_y")))
    n = as_float(row.get("n_pairs"))
    return bool(np.isfinite(k) and np.isfinite(n) and k > 0 and n / k < SATURATION_RATIO)


def _fmt(row) -> str:
    if np.isfinite(row.get("ci_low", np.nan)) and np.isfinite(row.get("ci_high", np.nan)):
        return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return f"{row['value']:.3f}"


# --------------------------------------------------------------------------- findings


FINDING_NAMES = {name: vocab.phrase("comparison", name) for name in ("full_space", "seed", "control", "control_all")}
"""How :func:`findings` names each comparison of :meth:`saesim.config.Profile.comparisons` (from :mod:`saesim.vocab`)."""


def findings(frames, metric: str = "rsa", *, alpha: float = 0.05, baselines: pd.DataFrame | None = None,
             depth: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> tuple[list[str], pd.DataFrame]:
    """What the run found, in sentences generated from its tables (not written for one outcome).

    Parameters
    ----------
    frames : mapping of comparison name -> tidy grid table
        One rule and direction each; ``"full_space"`` must be present, the
        controls (``"seed"``, ``"control"``, ``"control_all"``) are used when
        given. Holm-adjusted p-values (``<metric>_p_holm``) are used where present.
    metric : str
        ``"rsa"``, ``"svcca"``, ``"svcca_authors_k"`` or ``"linear_cka"``.
    alpha : float
        Level of the Holm-adjusted tests (one family per comparison: its grid).
    baselines : DataFrame, optional
        A :func:`saesim.experiments.baselines.control_comparison` table (bootstrap CIs,
        raw-neuron rows).
    depth : (layers of A, layers of B), optional
        The layer lists, to place the peak at a relative depth.

    Returns
    -------
    sentences : list of str
    table : DataFrame
        One row per comparison: cells, cells above the null (Holm), median
        and max excess, the peak cell and its z.
    """
    if "full_space" not in frames:
        raise ValueError("`frames` needs the 'full_space' comparison (A against B).")
    rows = []
    for name, frame in frames.items():
        if frame is None or frame.empty:
            continue
        excess = frame[metric] - frame[f"{metric}_null_mean"]
        p = frame[f"{metric}_p_holm"] if f"{metric}_p_holm" in frame else frame[f"{metric}_p"]
        peak = frame.loc[excess.idxmax()]
        n_perm = int(frame["n_perm"].iloc[0]) if "n_perm" in frame and frame["n_perm"].notna().any() else None
        floor = 1.0 / (n_perm + 1) if n_perm else np.nan
        raw_p = frame[f"{metric}_p"]
        rows.append({"comparison": name, "what": FINDING_NAMES.get(name, name), "cells": len(frame),
                     "cells_above_null": int(((p <= alpha) & (excess > 0)).sum()),
                     "cells_beating_every_draw": int(((raw_p <= floor * (1 + 1e-9)) & (excess > 0)).sum())
                     if n_perm else np.nan,
                     "cells_z_above_3": int((frame[f"{metric}_z"] > 3).sum()), "n_perm": n_perm,
                     "median_excess": float(excess.median()), "max_excess": float(excess.max()),
                     "peak_layer_a": int(peak["layer_a"]), "peak_layer_b": int(peak["layer_b"]),
                     "peak_z": float(peak[f"{metric}_z"]), "median_pairs": float(frame["n_pairs"].median())})
    table = pd.DataFrame(rows)
    by = table.set_index("comparison")
    main = by.loc["full_space"]
    name = vocab.label("measure", metric, default=metric)
    lines = [f"{name}, A against B: {_significance(main, alpha)}; the median excess over the null is "
             f"{main['median_excess']:+.3f}, the largest {main['max_excess']:+.3f} at A layer {main['peak_layer_a']} – "
             f"B layer {main['peak_layer_b']} (z = {main['peak_z']:.1f})."]
    if depth is not None:
        layers_a, layers_b = (list(x) for x in depth)
        ra = layers_a.index(main["peak_layer_a"]) / max(len(layers_a) - 1, 1)
        rb = layers_b.index(main["peak_layer_b"]) / max(len(layers_b) - 1, 1)
        where = ("in the middle layers of both models" if 0 < ra < 1 and 0 < rb < 1 else
                 "at the first or last layer of one model, not in the middle")
        lines.append(f"The peak sits {where} (relative depth {ra:.2f} in A, {rb:.2f} in B); the paper reports a "
                     f"middle-layer peak for Pythia (authors' finding).")
    main_frame = frames["full_space"].assign(_excess=lambda f: f[metric] - f[f"{metric}_null_mean"])
    for control in ("seed", "control", "control_all"):
        if control not in by.index:
            continue
        row = by.loc[control]
        other = frames[control].assign(_excess=lambda f: f[metric] - f[f"{metric}_null_mean"])
        if control == "seed":
            diagonal = other[other["layer_a"] == other["layer_b"]]["_excess"]
            reference = float(diagonal.median()) if len(diagonal) else float("nan")
            share = main["median_excess"] / reference if reference > 0 else float("nan")
            lines.append(f"Two SAEs of model A at the same layer exceed their null by a median {reference:+.3f}: "
                         f"{vocab.SEED_REFERENCE}. The cross-model median excess is "
                         + (f"{share:.0%} of it." if np.isfinite(share) else
                            "not comparable (two SAEs of model A do not exceed their null)."))
            continue
        merged = main_frame.merge(other, on=["layer_a", "layer_b"], suffixes=("", "_ctl"))
        wins = int((merged["_excess"] > merged["_excess_ctl"]).sum())
        lines.append(f"{FINDING_NAMES[control].capitalize()} in A's place: {_significance(row, alpha)}; median "
                     f"excess {row['median_excess']:+.3f} "
                     f"(largest {row['max_excess']:+.3f}, z = {row['peak_z']:.1f}); A against B exceeds it in {wins} "
                     f"of the {len(merged)} layer pairs both cover.")
    if {"control", "control_all"} <= set(by.index):
        gap = by.loc["control", "median_excess"] - by.loc["control_all", "median_excess"]
        lines.append(f"Keeping the embeddings and norms (the authors' control) changes the control's median excess "
                     f"by {gap:+.3f} against resampling every tensor: that much of a random model's similarity to "
                     f"B comes from token-embedding structure alone.")
    if baselines is not None and not baselines.empty:
        sub = baselines[(baselines["metric"] == metric)]
        raw = sub[sub["comparison"] == "raw_neuron"]
        sae = sub[sub["comparison"] == "sae"]
        if len(raw) and len(sae):
            merged = sae.merge(raw, on=["layer_a", "layer_b", "rule", "direction"], suffixes=("", "_raw"))
            beats = int((merged["ci_low"] > merged["ci_high_raw"]).sum())
            lines.append(f"Against the raw-neuron baseline (neurons paired directly, no SAE): the SAE pairs' interval "
                         f"lies wholly above the raw neurons' in {beats} of {len(merged)} baseline layer pairs; "
                         f"median effects {merged['effect'].median():+.3f} (SAE) against "
                         f"{merged['effect_raw'].median():+.3f} (raw).")
    return lines, table


def _significance(row, alpha: float) -> str:
    """How many cells lie above their null, and whether the permutation count lets Holm say so at all."""
    cells, above = int(row["cells"]), int(row["cells_above_null"])
    text = f"{above} of {cells} layer pairs lie above their null (Holm over the grid, alpha {alpha:g})"
    n_perm = row.get("n_perm")
    if n_perm is None or not np.isfinite(n_perm):
        return text
    n_perm = int(n_perm)
    every = int(row["cells_beating_every_draw"])
    text += (f"; {every} beat every one of their {n_perm} permutations (the smallest p a permutation test can "
             f"give, 1/{n_perm + 1}) and {int(row['cells_z_above_3'])} have z > 3")
    if cells / (n_perm + 1) >= alpha:
        needed = int(np.ceil(cells / alpha)) - 1
        text += (f" — with {n_perm} permutations Holm over {cells} tests cannot reject at {alpha:g} whatever the "
                 f"data (it needs at least {needed}; `saesim run --n-perm {needed}`)")
    return text


# --------------------------------------------------------------------------- the controls, raw and over the null


def control_lines(frames, metrics=("svcca", "rsa")) -> tuple[list[str], dict]:
    """How each control reads raw and over its null against A against B, and how the nulls move with n and k.

    Parameters
    ----------
    frames : mapping of comparison name -> tidy grid table with effects
        ``"full_space"`` (A against B) and the controls of
        :meth:`saesim.config.Profile.comparisons`, each with
        ``<metric>_excess`` (:func:`saesim.report.tables.with_effects`).
    metrics : sequence of str
        The measures of the sentences.

    Returns
    -------
    lines : list of str
        One sentence per (control, measure): the raw range and median, on
        which side of A against B's median it lies, and the median excess
        over the null against A against B's. Empty when no control is given.
    numbers : dict
        Over every cell of every comparison: ``null_cells``, ``null_min`` and
        ``null_max`` (the corrected-SVCCA null mean) and its Spearman
        correlation with the number of pairs (``null_rho_n``) and with the
        kept dimension (``null_rho_k``; NaN with fewer than 3 cells).
    """
    import warnings

    from scipy.stats import ConstantInputWarning, spearmanr

    from saesim.report.tables import display_name

    if "full_space" not in frames:
        raise ValueError("`frames` needs the 'full_space' comparison (A against B).")
    main = frames["full_space"]
    ours = FINDING_NAMES["full_space"]
    lines = []
    for name, table in frames.items():
        if name == "full_space":
            continue
        label = FINDING_NAMES.get(name, name)
        for metric in metrics:
            raw, excess = table[metric], table[f"{metric}_excess"]
            main_raw, main_excess = main[metric].median(), main[f"{metric}_excess"].median()
            raw_side = "above" if raw.median() > main_raw else "below"
            gain_side = "above" if excess.median() > main_excess else "below"
            lines.append(f"{label[0].upper()}{label[1:]}: raw {display_name(metric)} {raw.min():.3f}–{raw.max():.3f} "
                         f"(median {raw.median():.3f}, {raw_side} {ours}'s {main_raw:.3f}); over its null a median "
                         f"excess of {excess.median():+.3f}, {gain_side} {ours}'s {main_excess:+.3f}.")
    every = pd.concat(list(frames.values()), ignore_index=True)
    rho_n = rho_k = float("nan")
    if len(every) > 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConstantInputWarning)  # a constant column has no rank correlation: NaN
            rho_n = float(spearmanr(every["n_pairs"], every["svcca_null_mean"]).statistic)
            rho_k = float(spearmanr(every["svcca_k_x"], every["svcca_null_mean"]).statistic)
    numbers = {"null_min": float(every["svcca_null_mean"].min()), "null_max": float(every["svcca_null_mean"].max()),
               "null_rho_n": rho_n, "null_rho_k": rho_k, "null_cells": len(every)}
    return lines, numbers


def bulleted(lines, lead: str = "") -> str:
    """Markdown: ``lead`` then one bullet per line; ``""`` when there are no lines."""
    if not lines:
        return ""
    return (f"{lead}\n\n" if lead else "") + "\n".join(f"- {line}" for line in lines)
