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
from saesim.compare.significance import ALPHA, above_null
from saesim.report.frames import fmt_number, fmt_signed
from saesim.report.verdicts import IDENTICAL_R, NO_SCORE, SATURATION_RATIO, verdict_frame

__all__ = [
    "FINDING_NAMES",
    "IDENTICAL_R",
    "SATURATION_RATIO",
    "bulleted",
    "control_lines",
    "findings",
    "summary_lines",
    "verdict",
    "verdict_table",
]


def verdict(table: pd.DataFrame, *, family: pd.DataFrame | None = None, metrics=None,
            alpha: float = ALPHA) -> list[str]:
    """One plain-language verdict per (layer pair, rule, direction, metric) of a control table.

    ``table`` is a :func:`saesim.experiments.baselines.control_comparison` table; ``family`` the
    comparison's grid, whose layer pairs are the Holm family of each rule and direction. The
    sentences are :meth:`saesim.report.verdicts.Verdict.words`, the one place the verdict's words
    come from (the interval rule, the seed control as reference, the notes).
    """
    if table is None or table.empty:
        return ["No comparisons to judge: the table is empty."]
    verdicts, frame = verdict_frame(table, family=family, metrics=metrics, alpha=alpha)
    words = iter(v.words(alpha) for v in verdicts)
    return [next(words) if row["verdict"] != NO_SCORE else
            f"Layers {row['layer pair']}, {row['measure']} ({row['rule']}): {NO_SCORE}."
            for row in frame.to_dict("records")]


def verdict_table(table: pd.DataFrame, *, family: pd.DataFrame | None = None, metrics=None,
                  alpha: float = ALPHA) -> pd.DataFrame:
    """The verdict as a table: :func:`saesim.report.verdicts.verdict_frame`'s rows (one
    :meth:`~saesim.report.verdicts.Verdict.row` per cell), the same decisions as :func:`verdict`."""
    return verdict_frame(table, family=family, metrics=metrics, alpha=alpha)[1]


# --------------------------------------------------------------------------- findings


FINDING_NAMES = {name: vocab.phrase("comparison", name) for name in ("full_space", "seed", "control", "control_all")}
"""How :func:`findings` names each comparison of :meth:`saesim.config.Profile.comparisons` (from :mod:`saesim.vocab`)."""


NEAR_PEAK = 0.9
"""The findings call a layer pair near the peak when its excess reaches this share of the largest."""


def findings(frames, metric: str = "rsa", *, alpha: float = 0.05, baselines: pd.DataFrame | None = None,
             depth: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> tuple[list[str], pd.DataFrame]:
    """What the run found, in sentences generated from its tables (not written for one outcome).

    Parameters
    ----------
    frames : mapping of comparison name -> tidy grid table
        One rule and direction each; ``"full_space"`` must be present, the
        controls (``"seed"``, ``"control"``, ``"control_all"``) are used when
        given. Each comparison's layer pairs are its Holm family
        (:func:`saesim.compare.significance.above_null`, on the tail p-values).
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
        decided = above_null(frame, metric, alpha=alpha)
        excess = decided["excess"]
        peak = frame.loc[excess.idxmax()]
        n_perm = int(frame["n_perm"].iloc[0]) if "n_perm" in frame and frame["n_perm"].notna().any() else None
        floor = 1.0 / (n_perm + 1) if n_perm else np.nan
        raw_p = frame[f"{metric}_p"]
        rows.append({"comparison": name, "what": FINDING_NAMES.get(name, name), "cells": len(frame),
                     "cells_above_null": int(decided["above"].sum()),
                     "cells_near_peak": int((excess >= NEAR_PEAK * excess.max()).sum()) if excess.max() > 0 else 0,
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
             f"{fmt_signed(main['median_excess'])}, the largest {fmt_signed(main['max_excess'])} at A layer {main['peak_layer_a']} – "
             f"B layer {main['peak_layer_b']} (z = {main['peak_z']:.1f})."]
    if depth is not None:
        layers_a, layers_b = (list(x) for x in depth)
        ra = layers_a.index(main["peak_layer_a"]) / max(len(layers_a) - 1, 1)
        rb = layers_b.index(main["peak_layer_b"]) / max(len(layers_b) - 1, 1)
        lines.append(f"The largest excess sits at relative depth {ra:.2f} in A and {rb:.2f} in B; "
                     f"{int(main['cells_near_peak'])} of {int(main['cells'])} layer pairs reach at least "
                     f"{NEAR_PEAK:.0%} of it. Where the peak lies is described, not tested (no interval is computed "
                     f"for its position); the paper reports a middle-layer peak for Pythia (authors' finding).")
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
            lines.append(f"Two SAEs of model A at the same layer exceed their null by a median {fmt_signed(reference)}: "
                         f"{vocab.SEED_REFERENCE}. The cross-model median excess is "
                         + (f"{share:.0%} of it." if np.isfinite(share) else
                            "not comparable (two SAEs of model A do not exceed their null)."))
            continue
        merged = main_frame.merge(other, on=["layer_a", "layer_b"], suffixes=("", "_ctl"))
        wins = int((merged["_excess"] > merged["_excess_ctl"]).sum())
        lines.append(f"{FINDING_NAMES[control].capitalize()} in A's place: {_significance(row, alpha)}; median "
                     f"excess {fmt_signed(row['median_excess'])} "
                     f"(largest {fmt_signed(row['max_excess'])}, z = {row['peak_z']:.1f}); A against B exceeds it in {wins} "
                     f"of the {len(merged)} layer pairs both cover.")
    if {"control", "control_all"} <= set(by.index):
        gap = by.loc["control", "median_excess"] - by.loc["control_all", "median_excess"]
        lines.append(f"Keeping the embeddings and norms (the authors' control) changes the control's median excess "
                     f"by {fmt_signed(gap)} against resampling every tensor: that much of a random model's similarity to "
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
                         f"median effects {fmt_signed(merged['effect'].median())} (SAE) against "
                         f"{fmt_signed(merged['effect_raw'].median())} (raw).")
    return lines, table


def _significance(row, alpha: float) -> str:
    """How many cells lie above their null (:func:`saesim.compare.significance.above_null`), and how
    many beat every permutation or have z > 3."""
    cells, above = int(row["cells"]), int(row["cells_above_null"])
    text = (f"{above} of {cells} layer pairs lie above their null (Holm over the {cells} layer pairs, "
            f"alpha {alpha:g})")
    n_perm = row.get("n_perm")
    if n_perm is None or not np.isfinite(n_perm):
        return text
    return text + (f"; {int(row['cells_beating_every_draw'])} beat every one of their {int(n_perm)} permutations "
                   f"and {int(row['cells_z_above_3'])} have z > 3")


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
            lines.append(f"{label[0].upper()}{label[1:]}: raw {display_name(metric)} {fmt_number(raw.min())}–"
                         f"{fmt_number(raw.max())} (median {fmt_number(raw.median())}, {raw_side} {ours}'s "
                         f"{fmt_number(main_raw)}); over its null a median "
                         f"excess of {fmt_signed(excess.median())}, {gain_side} {ours}'s {fmt_signed(main_excess)}.")
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


# --------------------------------------------------------------------------- the summary, findings first


SUMMARY_METRICS = ("rsa", "svcca", "svcca_authors_k")
"""The measures the summary leads with: RSA, corrected SVCCA and the authors' SVCCA (k = 1)."""

WEAK_SHARE = 0.5
"""A control whose median effect reaches this share of A against B's is said to be close to it."""


def summary_lines(frames, metrics=SUMMARY_METRICS, *, alpha: float = ALPHA) -> list[str]:
    """The book's findings in a few sentences, effects first, negative results in plain words.

    For each measure: A against B's median effect over its null and its largest, how many layer
    pairs lie above their null (:func:`saesim.compare.significance.above_null`), that effect as a
    share of what two SAEs of model A reach at the same layer, and each random-model control's
    median effect as a share of A against B's. Then what follows from those numbers: a measure
    under which a random model comes close to the real one, cross-model agreement far below two
    SAEs of one model, a measure with no layer pair above its null. Generated from the numbers
    only.

    Parameters
    ----------
    frames : mapping of comparison name -> tidy grid table (one rule and direction)
        ``"full_space"`` and any of ``"seed"``, ``"control"``, ``"control_all"``.
    metrics : sequence of str
        Measures present in every frame.
    alpha : float
        The level of :func:`~saesim.compare.significance.above_null`.
    """
    if "full_space" not in frames:
        raise ValueError("`frames` needs the 'full_space' comparison (A against B).")
    lines, plain = [], []
    for metric in metrics:
        main = frames["full_space"]
        if metric not in main:
            continue
        decided = above_null(main, metric, alpha=alpha)
        effect = float(decided["excess"].median())
        peak = main.loc[decided["excess"].idxmax()]
        name = vocab.label("measure", metric, default=metric)
        text = (f"**{name}**: A against B exceeds its null by a median {fmt_signed(effect)} (largest "
                f"{fmt_signed(float(decided['excess'].max()))} at {vocab.layer_pair(peak['layer_a'], peak['layer_b'])}); "
                f"{int(decided['above'].sum())} of {len(main)} layer pairs lie above their null.")
        seed = frames.get("seed")
        if seed is not None and metric in seed:
            same = seed[seed["layer_a"] == seed["layer_b"]]
            reference = float((same[metric] - same[f"{metric}_null_mean"]).median()) if len(same) else float("nan")
            if np.isfinite(reference) and reference > 0:
                share = effect / reference
                text += (f" That is {share:.0%} of what two SAEs of model A reach at the same layer "
                         f"({fmt_signed(reference)}).")
                if share < WEAK_SHARE:
                    plain.append(f"Under {name}, the two models agree far less than two SAEs of one model do "
                                 f"({share:.0%} of their effect).")
        for control in ("control", "control_all"):
            frame = frames.get(control)
            if frame is None or metric not in frame:
                continue
            other = float((frame[metric] - frame[f"{metric}_null_mean"]).median())
            label = vocab.label("comparison", control)
            cells = main[["layer_a", "layer_b"]].apply(tuple, axis=1).isin(
                set(frame[["layer_a", "layer_b"]].apply(tuple, axis=1)))
            same = float(decided["excess"][cells].median()) if cells.any() else float("nan")
            if np.isfinite(same) and same > 0:
                ratio = other / same
                text += (f" The {label} reaches {fmt_signed(other)}, {ratio:.0%} of A against B's {fmt_signed(same)} on "
                         f"the same {int(cells.sum())} layer pairs.")
                if ratio >= WEAK_SHARE:
                    plain.append(f"Under {name}, the {label} in A's place comes close to the real model "
                                 f"({ratio:.0%} of its effect): the measure separates them poorly here.")
            else:
                text += f" The {label} reaches {fmt_signed(other)}."
        if not decided["above"].any():
            plain.append(f"Under {name}, no layer pair lies above its null.")
        lines.append(text)
    if plain:
        lines.append("**What does not hold up.** " + " ".join(plain))
    else:
        lines.append(f"**What does not hold up.** Nothing by these rules: under every measure some layer pair lies "
                     f"above its null, no random model reaches {WEAK_SHARE:.0%} of A against B's effect, and A "
                     f"against B reaches at least {WEAK_SHARE:.0%} of what two SAEs of one model do (where the "
                     f"profile has these controls).")
    return lines
