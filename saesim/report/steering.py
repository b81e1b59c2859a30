"""The steering-transfer chapter's numbers, prose, tables and figures, from ``steering_transfer.parquet``.

Nothing here runs a model: the table comes from :func:`saesim.experiments.steering.run_steering`.
The figures are drawn in :mod:`saesim.report._plot_steering` and re-exported here
(:func:`steering_depth`, :func:`steering_curves`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from saesim import vocab
from saesim.compare.significance import ALPHA
from saesim.experiments.steering import HEADLINE_MAP, HEADLINE_RECIPE, headline_cells, pooled_test
from saesim.report._plot_steering import steering_curves, steering_depth, steering_method_diagram
from saesim.report.frames import fmt_number
from saesim.report.tables import with_effects

__all__ = [
    "SteeringNumbers",
    "alphas_text",
    "measure_label",
    "resolved_settings",
    "rule_label",
    "cells_with_null_band",
    "control_lines",
    "control_names",
    "controls_text",
    "curve_panels",
    "examples_table",
    "similarity_of_pairs",
    "steering_curves",
    "steering_depth",
    "steering_lines",
    "steering_method_diagram",
    "steering_numbers",
    "steering_shown",
    "steering_table",
    "summary_lines",
]


def resolved_settings(meta: dict):
    """The :class:`~saesim.experiments.steering.SteeringSettings` the stored table was computed with."""
    from saesim.experiments.steering import SteeringSettings

    return SteeringSettings.from_parameters(**meta["settings"])


def alphas_text(settings) -> str:
    """The scales as a caption lists them (``0.25, 0.5``)."""
    return ", ".join(f"{a:g}" for a in settings.alphas)


def measure_label(measure: str) -> str:
    return vocab.label("measure", measure)


def rule_label(rule: str) -> str:
    return vocab.label("rule", rule)


def cells_with_null_band(table: pd.DataFrame, reference_alpha: float) -> pd.DataFrame:
    """:func:`headline_cells` plus ``null_low``/``null_high``: the shuffled draws' 5th and 95th percentiles."""
    cells = headline_cells(table, reference_alpha)
    keys = ["comparison", "layer_a", "layer_b", "concept"]
    draws = table[(table["recipe"] == HEADLINE_RECIPE) & (table["map"] == "shuffled")].drop_duplicates([*keys, "draw"])
    band = draws.groupby(keys)["efficiency"].agg(null_low=lambda e: np.nanquantile(e, 0.05),
                                                 null_high=lambda e: np.nanquantile(e, 0.95)).reset_index()
    return cells.merge(band, on=keys, how="left")


def similarity_of_pairs(frame: pd.DataFrame, rule: str, measure: str = "rsa",
                        direction: str = "b_to_a") -> pd.Series:
    """The main grid's effect over null (:func:`saesim.report.tables.with_effects`) of ``measure`` under
    ``rule`` and ``direction`` (the steering maps use B-picks-A pairs), indexed by (layer_a, layer_b)."""
    sub = with_effects(frame[(frame["rule"] == rule) & (frame["direction"] == direction)], [measure])
    return sub.set_index(["layer_a", "layer_b"])[f"{measure}_excess"]


@dataclass(frozen=True)
class SteeringNumbers:
    """What the chapter's prose quotes (glued as ``st_<field>``)."""

    n_cells: int
    n_pairs: int
    concepts: str
    median_efficiency: float
    null_median: float
    pooled_p: float
    n_null: int
    activation_median: float
    lstsq_median: float
    decoder_median: float
    best_pair: str
    best_concept: str
    best_efficiency: float
    best_ci: str
    best_p_holm: float
    worst_pair: str
    worst_concept: str
    worst_efficiency: float
    worst_ci: str
    n_above: int
    control_median: float
    control_p: float
    control_pairs: str
    main_on_control_pairs: float
    draws_for_holm: int
    seed_median: float
    depth_rho: float
    depth_rho_p: float
    depth_n: int
    native_weak: int
    seconds: float


def steering_numbers(table: pd.DataFrame, meta: dict, similarity: pd.Series | None = None,
                     *, alpha: float = ALPHA) -> SteeringNumbers:
    """The chapter's numbers (see :class:`SteeringNumbers`)."""
    settings = meta["settings"]
    cells = headline_cells(table, settings["reference_alpha"])
    main = cells[cells["comparison"] == vocab.MAIN_COMPARISON]
    keys = ["layer_a", "layer_b", "concept"]

    def median_of(map_name, recipe=HEADLINE_RECIPE):
        sub = table[(table["comparison"] == vocab.MAIN_COMPARISON) & (table["map"] == map_name)
                    & (table["recipe"] == recipe)].drop_duplicates(keys)
        return float(np.nanmedian(sub["efficiency"])) if sub["efficiency"].notna().any() else float("nan")

    test = pooled_test(table, vocab.MAIN_COMPARISON)
    ranked = main.dropna(subset=["efficiency"]).sort_values("efficiency")
    best = ranked.iloc[-1] if len(ranked) else None
    worst = ranked.iloc[0] if len(ranked) else None
    comparisons = set(table["comparison"])
    control = pooled_test(table, "control") if "control" in comparisons else {"median": np.nan, "p": np.nan}
    ctrl_cells = cells[cells["comparison"] == "control"]
    ctrl_pairs = sorted(set(zip(ctrl_cells["layer_a"], ctrl_cells["layer_b"])))
    same = main[[p in set(ctrl_pairs) for p in zip(main["layer_a"], main["layer_b"])]]
    main_on_ctrl = float(np.nanmedian(same["efficiency"])) if same["efficiency"].notna().any() else float("nan")
    seed = pooled_test(table, "seed") if "seed" in comparisons else {"median": np.nan}
    rho, rho_p, depth_n = np.nan, np.nan, 0
    if similarity is not None and len(main):
        per_pair = main.groupby(["layer_a", "layer_b"])["efficiency"].mean()
        sim = pd.Series([similarity.get(p, np.nan) for p in per_pair.index], index=per_pair.index)
        ok = per_pair.notna() & sim.notna()
        depth_n = int(ok.sum())
        if depth_n >= 3:
            rho, rho_p = spearmanr(per_pair[ok], sim[ok])

    def pair(row):
        return vocab.layer_pair(row["layer_a"], row["layer_b"])

    def ci(row):
        return (f"{fmt_number(row['ci_low'], '.2f')} to {fmt_number(row['ci_high'], '.2f')}"
                if np.isfinite(row["ci_low"]) and np.isfinite(row["efficiency"]) else "not defined")

    return SteeringNumbers(
        n_cells=int(len(main)), n_pairs=int(main[["layer_a", "layer_b"]].drop_duplicates().shape[0]),
        concepts=", ".join(dict.fromkeys(main["concept"])),
        median_efficiency=test["median"], null_median=float(np.median(test["null"])) if len(test["null"]) else np.nan,
        pooled_p=test["p"], n_null=int(settings["n_null"]),
        activation_median=median_of("activation"), lstsq_median=median_of("lstsq"),
        decoder_median=median_of(HEADLINE_MAP, "decoder_sum"),
        best_pair=pair(best) if best is not None else "none", best_concept=best["concept"] if best is not None else "",
        best_efficiency=float(best["efficiency"]) if best is not None else np.nan,
        best_ci=ci(best) if best is not None else "not defined",
        best_p_holm=float(best["p_holm"]) if best is not None else np.nan,
        worst_pair=pair(worst) if worst is not None else "none",
        worst_concept=worst["concept"] if worst is not None else "",
        worst_efficiency=float(worst["efficiency"]) if worst is not None else np.nan,
        worst_ci=ci(worst) if worst is not None else "not defined",
        n_above=int((main["p_holm"] <= alpha).sum()),
        control_median=float(control["median"]), control_p=float(control["p"]), seed_median=float(seed["median"]),
        control_pairs=", ".join(vocab.layer_pair(a, b) for a, b in ctrl_pairs), main_on_control_pairs=main_on_ctrl,
        draws_for_holm=int(np.ceil(max(len(main), 1) / alpha)) - 1,
        depth_rho=float(rho), depth_rho_p=float(rho_p), depth_n=depth_n,
        native_weak=int((main["native_effect"] <= 0).sum()), seconds=float(meta.get("seconds", np.nan)),
    )


def steering_lines(n: SteeringNumbers, *, label_a: str = "model A", label_b: str = "model B",
                   alpha: float = ALPHA) -> list[str]:
    """The chapter's answer in sentences, each following from the numbers (including a "no")."""
    if n.n_cells == 0:
        return ["No layer pair had enough held-in tokens of any concept to build a steering vector; this run "
                "cannot answer the question."]
    lines = []
    verdict = ("transfers better than the shuffled-pairing null" if n.pooled_p <= alpha
               else "does not transfer measurably better than the shuffled-pairing null")
    lines.append(
        f"**Overall, a steering vector carried from {label_a} to {label_b} through the paired SAE decoder rows "
        f"{verdict}:** the median transfer efficiency over {n.n_cells} cells ({n.n_pairs} layer pairs × concepts "
        f"{n.concepts}) is {fmt_number(n.median_efficiency, '.2f')} of what {label_b}'s own vector does at the same "
        f"side effect, against a median of {fmt_number(n.null_median, '.2f')} for maps fitted on shuffled pairings "
        f"(one pooled test over the cells, p = {fmt_number(n.pooled_p, '.3f')}; with {n.n_null} shuffled draws no "
        f"p can be below {fmt_number(1 / (n.n_null + 1), '.3f')}).")
    if n.pooled_p <= alpha and np.isfinite(n.control_median) and n.control_median >= n.main_on_control_pairs:
        lines[-1] += (" The re-randomised control below transfers as well, so this alone does not show that the "
                      "paired features are shared.")
    lines.append(
        f"Cell by cell, {n.n_above} of {n.n_cells} are above the null after Holm over the cells "
        + (f"(with {n.n_null} draws Holm over {n.n_cells} cells cannot reach {alpha:g}; it would need "
           f"{n.draws_for_holm} draws per cell). " if (n.n_cells / (n.n_null + 1)) > alpha else ". ")
        + "The best is "
        f"{n.best_pair} ({n.best_concept}): efficiency {fmt_number(n.best_efficiency, '.2f')} (95 % interval over "
        f"prompts {n.best_ci}); the worst is {n.worst_pair} ({n.worst_concept}): "
        f"{fmt_number(n.worst_efficiency, '.2f')} ({n.worst_ci}).")
    others = [(n.activation_median, "the map fitted on the token activations themselves (the activation-level "
                                    "reference)"),
              (n.lstsq_median, "least squares on the paired decoder rows"),
              (n.decoder_median, "the decoder-sum recipe through the Procrustes map")]
    others = [f"{what} {fmt_number(value, '.2f')}" for value, what in others if np.isfinite(value)]
    if others:
        lines.append("Median efficiency of the other maps and recipes: " + "; ".join(others) + ".")
    lines.extend(control_lines(n, label_a=label_a, label_b=label_b))
    if np.isfinite(n.depth_rho):
        follows = "follows" if n.depth_rho_p <= alpha and n.depth_rho > 0 else "does not measurably follow"
        lines.append(
            f"Across the {n.depth_n} layer pairs, transfer {follows} the similarity of the paired features "
            f"(Spearman ρ = {fmt_number(n.depth_rho, '.2f')}, p = {fmt_number(n.depth_rho_p, '.2f')}; with so few "
            "pairs only a strong rank agreement could show).")
    if n.native_weak:
        lines.append(f"In {n.native_weak} cell(s) {label_b}'s own vector does not raise its keywords at the reference "
                     "scale, so efficiency is not defined there.")
    return lines


def control_lines(n: SteeringNumbers, *, label_a: str = "model A", label_b: str = "model B") -> list[str]:
    """The sentence on the re-randomised control, read on its own layer pairs against the real model's (none
    when the run has no control)."""
    if not np.isfinite(n.control_median):
        return []
    return [
        f"The re-randomised {label_a} (the authors' control: its token embeddings are kept), its own SAEs "
        f"paired with {label_b}'s and mapped the same way, gives a median efficiency of "
        f"{fmt_number(n.control_median, '.2f')} on the layer pairs {n.control_pairs} (pooled p = "
        f"{fmt_number(n.control_p, '.3f')}), against {fmt_number(n.main_on_control_pairs, '.2f')} for the "
        "real model on the same pairs: "
        + ("as high, so a carried vector steering B is not by itself evidence that the paired features are "
           "shared." if n.control_median >= n.main_on_control_pairs else "lower, as shared features predict.")]


def summary_lines(profile, *, cache_dir=None, results_dir=None, rule: str | None = None,
                  measure: str = "rsa") -> list[str]:
    """The chapter's answer for the introduction and the findings page (markdown), read from the table
    ``saesim run`` (or the steering page) wrote; one sentence saying how to compute it when it is missing."""
    import json
    from pathlib import Path

    from saesim.config import Profile, load_profile
    from saesim.experiments.grid import settings_from_profile
    from saesim.experiments.steering import steering_applies

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    if steering_applies(prof):
        return []
    cache = Path(cache_dir) if cache_dir is not None else Path(prof.cache_dir)
    results = Path(results_dir) if results_dir is not None else cache / "results"
    path, meta_path = results / "steering_transfer.parquet", results / "steering_transfer.json"
    if not (path.is_file() and meta_path.is_file()):
        return [f"*Steering transfer: not computed for this build; `saesim run --profile {prof.name}` computes it.*"]
    table, meta = pd.read_parquet(path), json.loads(meta_path.read_text())
    similarity = None
    if (results / "full_space.parquet").is_file():
        rule = rule or settings_from_profile(prof).rules[0]
        similarity = similarity_of_pairs(pd.read_parquet(results / "full_space.parquet"), rule, measure)
    numbers = steering_numbers(table, meta, similarity)
    head = steering_lines(numbers)[0].replace("**Overall, ", "**Steering transfer ({ref}`steering`): ", 1)
    return [head, *control_lines(numbers)]


def steering_table(table: pd.DataFrame, reference_alpha: float, comparisons=None) -> pd.DataFrame:
    """The efficiencies of the cells of ``comparisons`` (default: every one) with intervals and p-values,
    labelled for the page, indexed by layer pair (and comparison, when several)."""
    cells = headline_cells(table, reference_alpha)
    if comparisons is not None:
        comparisons = [comparisons] if isinstance(comparisons, str) else list(comparisons)
        cells = cells[cells["comparison"].isin(comparisons)].reset_index(drop=True)
    out = pd.DataFrame({
        vocab.column_label("comparison"): [vocab.label("comparison", c) for c in cells["comparison"]],
        "layer pair": [vocab.layer_pair(a, b) for a, b in zip(cells["layer_a"], cells["layer_b"])],
        vocab.column_label("concept"): cells["concept"],
        vocab.column_label("efficiency"): cells["efficiency"],
        "95 % interval": [f"[{fmt_number(lo, '.2f')}, {fmt_number(hi, '.2f')}]" if np.isfinite(lo) and np.isfinite(e)
                          else "" for lo, hi, e in zip(cells["ci_low"], cells["ci_high"], cells["efficiency"])],
        vocab.column_label("null_median"): cells["null_median"],
        vocab.column_label("p"): cells["p"],
        vocab.column_label("p_holm"): cells["p_holm"],
        vocab.column_label("native_effect"): cells["native_effect"],
        vocab.column_label("n_pairs"): cells["n_pairs"],
    })
    if cells["comparison"].nunique() <= 1:
        return out.drop(columns=[vocab.column_label("comparison")]).set_index("layer pair")
    return out.set_index([vocab.column_label("comparison"), "layer pair"])


def control_names(table: pd.DataFrame) -> list[str]:
    """The comparisons of the table other than the main one, in order."""
    return [c for c in dict.fromkeys(table["comparison"]) if c != vocab.MAIN_COMPARISON]


def controls_text(table: pd.DataFrame) -> str:
    """The controls of the table by their labels (``"the random model (authors')"``), for a caption."""
    return " and ".join(vocab.phrase("comparison", c) for c in control_names(table)) or "no control"


def steering_shown(view: pd.DataFrame) -> list[str]:
    """The columns of :func:`steering_table` shown at page width (the rest one click away)."""
    return [vocab.column_label("concept"), vocab.column_label("efficiency"), "95 % interval",
            vocab.column_label("p_holm")]


def curve_panels(table: pd.DataFrame, reference_alpha: float, n: int = 2) -> list[tuple]:
    """The main comparison's best cell of each of the first ``n`` concepts (by headline efficiency)."""
    cells = headline_cells(table, reference_alpha)
    main = cells[cells["comparison"] == vocab.MAIN_COMPARISON].dropna(subset=["efficiency"])
    out = []
    for concept in list(dict.fromkeys(main["concept"]))[:n]:
        row = main[main["concept"] == concept].sort_values("efficiency").iloc[-1]
        out.append((row["comparison"], int(row["layer_a"]), int(row["layer_b"]), concept))
    return out


def examples_table(meta: dict) -> pd.DataFrame:
    """The greedy continuations the stage recorded (one prompt; illustration, not evidence)."""
    rows = meta.get("examples", [])
    if not rows:
        return pd.DataFrame(columns=["vector", "continuation"]).set_index("vector")
    frame = pd.DataFrame(rows)
    return pd.DataFrame({"vector": [vocab.label("steering_map", v) if v != "unsteered" else "unsteered"
                                    for v in frame["vector"]],
                         "continuation": frame["continuation"].str.replace("\n", " ⏎ ")}).set_index("vector")
