"""Before and after: the middle layer pair compared with the SAEs of the previous recipe and of the profile's.

Issue #22 moved the default profile's SAEs from 2 epochs over the grid's first
64 000 tokens (autograd trainer) to 2 epochs over 192 000 tokens of their own
text outside the grid (sparse trainer). To say whether the cross-model
conclusions changed, :func:`recipe_comparison` re-trains the previous recipe's
SAEs for one layer pair (model A, its second SAE set, model B) through the
ordinary extraction (:func:`previous_recipe` is the profile with the previous
SAE settings on those layers only), and scores both recipes' SAEs the same way
as the full-space grid (:func:`saesim.experiments.grid.compare_pair`, same
rules, filters and shuffled nulls), with their seed stability
(:func:`saesim.experiments.sae_quality.sae_quality_table`) beside.

The table is kept under a hash of its inputs (:func:`saesim.experiments.sweeps.kept_table`,
``<results>/kept/``; the last build's copy is ``<results>/sae_recipe.parquet``): a rebuild with
the same inputs reads it back.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from saesim.compare.effects import effect_sizes

__all__ = ["PREVIOUS_SAE", "RECIPE_COLUMNS", "RECIPE_VERSION", "previous_recipe", "recipe_applies", "recipe_comparison"]

RECIPE_VERSION = 1
"""Mixed into the kept table's key; bump when its rows change."""

PREVIOUS_SAE = {"train_tokens": 64000, "train_text": [], "trainer": "reference"}
"""The SAE settings the default profile had before #22 (2 epochs over the grid's first 64 000 tokens)."""

RECIPE_COLUMNS = ("sae_recipe", "train_tokens", "epochs", "trainer", "train_text", "layer_a", "layer_b", "rule",
                  "direction", "fvu_heldout_a", "fvu_heldout_b", "pw_mcc", "shared_dec", "chance_pw_mcc", "n_pairs")
"""Leading columns of :func:`recipe_comparison`; each metric's score, null, effect and p follow."""


def recipe_applies(profile) -> str | None:
    """Why the before/after comparison does not apply to ``profile`` (None when it does)."""
    if "seed" not in profile.slots:
        return "the profile has no second SAE set of model A, so seed stability cannot be measured"
    if any(profile.model(slot).sae.source != "train" for slot in ("a", "b", "seed")):
        return "the profile loads some of its SAEs instead of training them, so there is no recipe to change"
    return None


def previous_recipe(profile, pair: tuple[int, int]):
    """``profile`` with the previous SAE recipe (:data:`PREVIOUS_SAE`) on model A's layer ``pair[0]``, its
    second SAE set's same layer and model B's layer ``pair[1]`` (the other slots dropped from the layers)."""
    la, lb = (int(x) for x in pair)
    changes = {"layers_a": [la], "layers_b": [lb], "layers_seed": [la]}
    for slot in ("model_a", "model_b", "seed_control"):
        changes.update({f"{slot}.sae.{name}": value for name, value in PREVIOUS_SAE.items()})
    return profile.replace(**changes)


def recipe_comparison(profile, pair: tuple[int, int], *, cache=None, results_dir=None, settings=None,
                      progress: bool = False) -> pd.DataFrame:
    """One row per (recipe, rule, direction): both recipes' SAEs on the same layer pair, scored as the grid scores.

    Parameters
    ----------
    profile : Profile
        Must have a second SAE set (slot ``"seed"``) and SAEs that saesim trains.
    pair : (int, int)
        Layer of A and of B (their stored activations are reused when kept).
    cache : path, optional
        The artefact store (default ``profile.cache_dir``).
    results_dir : path, optional
        Where the table is kept (default ``<cache>/results``).
    settings : CompareSettings, optional
        Default :func:`saesim.experiments.grid.settings_from_profile`.

    Returns
    -------
    DataFrame
        :data:`RECIPE_COLUMNS`, then per metric ``<m>``, ``<m>_null_mean``, ``<m>_effect``, ``<m>_p``.
    """
    from saesim.config import ProfileError
    from saesim.experiments.grid import settings_from_profile
    from saesim.experiments.sweeps import kept_table

    why_not = recipe_applies(profile)
    if why_not:
        raise ProfileError(f"profile `{profile.name}`: no before/after comparison of SAE recipes: {why_not}.")
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    results = Path(results_dir) if results_dir is not None else cache / "results"
    settings = settings or settings_from_profile(profile)
    pair = (int(pair[0]), int(pair[1]))
    key = {"version": RECIPE_VERSION, "profile": profile.key(), "pair": list(pair), "settings": settings.key(),
           "previous": PREVIOUS_SAE}

    def compute() -> pd.DataFrame:
        rows = []
        for name, variant in (("previous", previous_recipe(profile, pair)), ("profile", profile)):
            rows.extend(_score_recipe(name, variant, pair, cache, settings, progress))
        frame = pd.DataFrame.from_records(rows)
        lead = [c for c in RECIPE_COLUMNS if c in frame.columns]
        return frame[lead + [c for c in frame.columns if c not in lead]]

    return kept_table(results, "sae_recipe", key, compute)


def _score_recipe(name: str, profile, pair, cache: Path, settings, progress: bool) -> list[dict]:
    from saesim.config import train_text_words
    from saesim.experiments.grid import compare_pair
    from saesim.experiments.sae_quality import sae_quality_table
    from saesim.extract.pipeline import extract, load_layer

    la, lb = pair
    slim = profile.replace(layers_a=[la], layers_b=[lb], layers_seed=[la])
    extract(slim, out=cache, progress=progress, slots=("a", "b", "seed"), keep_activations=())
    quality = sae_quality_table(slim, cache=cache, write=False)  # the run's own table stays the run's
    row_a = quality[(quality["slot"] == "a") & (quality["layer"] == la)].iloc[0]
    row_b = quality[(quality["slot"] == "b") & (quality["layer"] == lb)].iloc[0]
    layer_a = load_layer(slim, "a", la, out=cache).to_sae_layer()
    layer_b = load_layer(slim, "b", lb, out=cache).to_sae_layer()
    spec = profile.model_a.sae
    out = []
    for record in compare_pair(layer_a, layer_b, settings):
        record = effect_sizes(record)
        out.append({"sae_recipe": name, "train_tokens": int(spec.train_tokens), "epochs": int(spec.epochs),
                    "trainer": spec.trainer, "train_text": train_text_words(spec.train_text) if spec.train_text else "the grid's rows",
                    "fvu_heldout_a": float(row_a["fvu_heldout"]), "fvu_heldout_b": float(row_b["fvu_heldout"]),
                    "pw_mcc": float(row_a["pw_mcc"]), "shared_dec": float(row_a["shared_dec"]),
                    "chance_pw_mcc": float(row_a["chance_pw_mcc"]), **record})
    return out
