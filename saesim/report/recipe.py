"""The findings page's before/after section: the previous SAE recipe against this build's, in words and a table.

Reads :func:`saesim.experiments.sae_recipe.recipe_comparison`'s frame.
"""

from __future__ import annotations

import pandas as pd

from saesim import vocab
from saesim.compare.effects import as_float

__all__ = ["ALPHA", "RECIPE_SHOWN", "recipe_lines", "recipe_table", "recipe_view"]

ALPHA = 0.05
"""A score is above its null at this permutation p (one layer pair, so no family to adjust over)."""


def recipe_lines(frame: pd.DataFrame, *, metric: str = "rsa", rule: str = "first_index",
                 direction: str = "b_to_a") -> list[str]:
    """Sentences for the findings page: stability and the metric's excess over its null, before and after.

    They follow the numbers: whether the pair is above its null (permutation p < :data:`ALPHA` and a
    positive excess) with each recipe, and how far the excess moved in null standard deviations
    (the larger of the two recipes').
    """
    rows = frame[(frame["rule"] == rule) & (frame["direction"] == direction)].set_index("sae_recipe")
    if not {"previous", "profile"} <= set(rows.index) or metric not in rows.columns:
        return []
    before, after = rows.loc["previous"], rows.loc["profile"]
    pair = vocab.layer_pair(int(after["layer_a"]), int(after["layer_b"]))
    lines = [
        f"Seed stability of model A's SAEs at layer {int(after['layer_a'])}: PW-MCC {before['pw_mcc']:.2f} → "
        f"{after['pw_mcc']:.2f}, latents shared at decoder cosine ≥ 0.7 {100 * before['shared_dec']:.1f} % → "
        f"{100 * after['shared_dec']:.1f} % (the previous recipe: {int(before['train_tokens']):,} grid tokens × "
        f"{int(before['epochs'])} epochs; this build's: {int(after['train_tokens']):,} tokens of "
        f"{after['train_text']} outside the grid × {int(after['epochs'])} epochs). Held-out FVU of A "
        f"{before['fvu_heldout_a']:.2f} → {after['fvu_heldout_a']:.2f}, of B {before['fvu_heldout_b']:.2f} → "
        f"{after['fvu_heldout_b']:.2f}."
    ]
    eff_b, eff_a = float(before[f"{metric}_effect"]), float(after[f"{metric}_effect"])
    spread = max(as_float(before.get(f"{metric}_null_std")), as_float(after.get(f"{metric}_null_std")))
    p_b, p_a = as_float(before.get(f"{metric}_p")), as_float(after.get(f"{metric}_p"))
    above_b, above_a = p_b < ALPHA and eff_b > 0, p_a < ALPHA and eff_a > 0
    if above_b == above_a:
        verdict = (f"the conclusion at this pair is unchanged ({'above' if above_a else 'not above'} its null with "
                   "both recipes)")
    else:
        verdict = (f"the conclusion at this pair changed ({'above' if above_b else 'not above'} its null with the "
                   f"previous SAEs, {'above' if above_a else 'not above'} with this build's)")
    size = (f"; the excess changed by {eff_a - eff_b:+.3f}, {abs(eff_a - eff_b) / spread:.1f} null standard "
            "deviations" if spread > 0 else "")
    name = vocab.label("measure", metric, default=metric.upper())
    lines.append(
        f"{name} at {pair} ({vocab.label('rule', rule, default=rule)}): excess over the null {eff_b:+.3f} with the "
        f"previous SAEs, {eff_a:+.3f} with this build's ({int(before['n_pairs'])} → {int(after['n_pairs'])} pairs; "
        f"permutation p {p_b:.2g} → {p_a:.2g}, above its null at p < {ALPHA:g}): {verdict}{size}. Only this "
        "layer pair is re-scored with the previous SAEs; the rest of the book uses this build's."
    )
    return lines


RECIPE_SHOWN = ("SAE recipe", "training tokens", "epochs", "FVU A (held out)", "FVU B (held out)", "PW-MCC",
                "shared ≥ 0.7")
"""The columns :func:`recipe_table` shows first (each measure's excess and p follow)."""


def recipe_view(frame: pd.DataFrame, *, metrics=("rsa", "svcca"), rule: str = "first_index",
                direction: str = "b_to_a") -> pd.DataFrame:
    """One row per recipe: training, held-out FVU, seed stability, and each metric's excess and p."""
    rows = frame[(frame["rule"] == rule) & (frame["direction"] == direction)]
    view = pd.DataFrame({
        "SAE recipe": ["previous" if r == "previous" else "this build" for r in rows["sae_recipe"]],
        "training tokens": rows["train_tokens"].astype(int).to_numpy(), "epochs": rows["epochs"].astype(int).to_numpy(),
        "FVU A (held out)": rows["fvu_heldout_a"].to_numpy(), "FVU B (held out)": rows["fvu_heldout_b"].to_numpy(),
        "PW-MCC": rows["pw_mcc"].to_numpy(), "shared ≥ 0.7": rows["shared_dec"].to_numpy(),
    })
    for metric in metrics:
        if f"{metric}_effect" in rows:
            name = vocab.label("measure", metric, default=metric.upper())
            view[f"{name} excess"] = rows[f"{metric}_effect"].to_numpy()
            view[f"{name} p"] = rows[f"{metric}_p"].to_numpy()
    view["trained on"] = rows["train_text"].to_numpy()
    view["trainer"] = rows["trainer"].to_numpy()
    view["pairs"] = rows["n_pairs"].astype(int).to_numpy()
    return view


def recipe_table(frame: pd.DataFrame, caption: str, *, metrics=("rsa", "svcca"), rule: str = "first_index",
                 direction: str = "b_to_a"):
    """:func:`recipe_view` as the book shows it: the recipe, FVU, stability and the first measure first, every
    column one click away (:func:`saesim.report.tables.split_table`)."""
    from saesim.report.tables import split_table

    view = recipe_view(frame, metrics=metrics, rule=rule, direction=direction)
    first = vocab.label("measure", metrics[0], default=metrics[0].upper())
    shown = [*RECIPE_SHOWN, f"{first} excess", f"{first} p"]
    formats = {"training tokens": ",d", "shared ≥ 0.7": ".1%", **{c: ".2g" for c in view.columns if c.endswith(" p")}}
    return split_table(view, [c for c in shown if c in view.columns], caption, formats=formats, index=False)
