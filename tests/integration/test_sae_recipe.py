"""The before/after comparison of SAE recipes (saesim.experiments.sae_recipe) on the tiny models."""

import numpy as np
import pandas as pd
import pytest

from saesim.config import ProfileError
from saesim.experiments import sae_recipe
from saesim.report import recipe

TRAIN = {"source": "train", "location": "tiny/trained/{}", "num_latents": 128, "k": 8, "epochs": 3,
         "train_tokens": 600, "batch_size": 256}


@pytest.fixture(scope="module")
def trained(tiny_profile):
    """The tiny profile with saesim-trained SAEs on A and B and the new recipe's settings (own text, sparse)."""
    changes = {}
    for slot, name in (("model_a", "neox"), ("model_b", "gemma2"), ("seed_control", "neox-seed2")):
        for field, value in TRAIN.items():
            changes[f"{slot}.sae.{field}"] = value.format(name) if field == "location" else value
        changes[f"{slot}.sae.train_text"] = ["wikitext2", "brown"]
        changes[f"{slot}.sae.trainer"] = "sparse"
    changes["model_b.sae.sae_id"] = changes["model_b.sae.hook"] = "blocks.{layer}.hook_resid_post"
    return tiny_profile.replace(**changes)


@pytest.fixture(scope="module")
def frame(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae_recipe")
    return out, sae_recipe.recipe_comparison(trained, (1, 1), cache=out)


def test_previous_recipe_is_the_profile_with_the_old_sae_settings(trained):
    old = sae_recipe.previous_recipe(trained, (1, 0))
    for slot in ("a", "b", "seed"):
        sae = old.model(slot).sae
        assert (sae.train_tokens, sae.train_text, sae.trainer) == (64000, (), "reference")
        assert (sae.num_latents, sae.k, sae.epochs, sae.seed) == (128, 8, 3, trained.model(slot).sae.seed)
    assert (old.layers_a, old.layers_b, old.layers_seed) == ((1,), (0,), (1,))


def test_both_recipes_are_scored_as_the_grid_scores(frame, trained):
    out, table = frame
    assert list(table.columns[:len(sae_recipe.RECIPE_COLUMNS)]) == list(sae_recipe.RECIPE_COLUMNS)
    assert set(table["sae_recipe"]) == {"previous", "profile"}
    assert set(table["rule"]) == {"first_index", "many_to_one"}
    prof = table[table["sae_recipe"] == "profile"].iloc[0]
    prev = table[table["sae_recipe"] == "previous"].iloc[0]
    assert prof["train_text"] == "WikiText-2 and the Brown corpus" and prev["train_text"] == "the grid's rows"
    assert prof["trainer"] == "sparse" and prev["trainer"] == "reference"
    assert 0 < prof["pw_mcc"] <= 1 and 0 < prev["pw_mcc"] <= 1
    np.testing.assert_allclose(table["rsa_effect"], table["rsa"] - table["rsa_null_mean"])
    # the profile's row is what the grid's own machinery gives on the profile's SAEs
    from saesim.experiments.grid import compare_pair, settings_from_profile
    from saesim.extract.pipeline import load_layer

    record = [r for r in compare_pair(load_layer(trained.replace(layers_a=[1], layers_b=[1], layers_seed=[1]), "a", 1,
                                                 out=out).to_sae_layer(),
                                      load_layer(trained.replace(layers_a=[1], layers_b=[1], layers_seed=[1]), "b", 1,
                                                 out=out).to_sae_layer(), settings_from_profile(trained))
              if r["rule"] == prof["rule"] and r["direction"] == prof["direction"]][0]
    assert record["rsa"] == pytest.approx(prof["rsa"]) and record["n_pairs"] == prof["n_pairs"]


def test_kept_and_read_back(frame, trained, monkeypatch):
    out, table = frame
    monkeypatch.setattr(sae_recipe, "_score_recipe", lambda *a, **k: pytest.fail("recomputed"))
    pd.testing.assert_frame_equal(sae_recipe.recipe_comparison(trained, (1, 1), cache=out), table)


def test_the_sentences_follow_the_numbers(frame):
    _, table = frame
    lines = recipe.recipe_lines(table)
    assert len(lines) == 2 and "PW-MCC" in lines[0] and "A1–B1" in lines[1]
    first = table["rule"] == "first_index"
    planted = table.copy()
    planted.loc[first, "rsa_null_std"] = 0.01
    planted.loc[first & (planted["sae_recipe"] == "previous"), ["rsa_effect", "rsa_p"]] = [0.002, 0.4]
    planted.loc[first & (planted["sae_recipe"] == "profile"), ["rsa_effect", "rsa_p"]] = [0.052, 0.01]
    line = recipe.recipe_lines(planted)[1]
    assert "changed (not above its null with the previous SAEs, above with this build's)" in line
    assert "+0.050, 5.0 null standard deviations" in line
    planted.loc[first & (planted["sae_recipe"] == "previous"), ["rsa_effect", "rsa_p"]] = [0.05, 0.01]
    assert "unchanged (above its null with both recipes)" in recipe.recipe_lines(planted)[1]
    planted.loc[first, "rsa_p"] = 0.5
    assert "unchanged (not above its null with both recipes)" in recipe.recipe_lines(planted)[1]
    assert recipe.recipe_lines(table[table["sae_recipe"] == "profile"]) == []
    view = recipe.recipe_view(table)
    assert len(view) == 2 and list(view["SAE recipe"]) == ["previous", "this build"]
    assert list(view["training tokens"]) == [64000, 600] and "RSA excess" in view and "trained on" in view
    shown = recipe.recipe_table(table, "caption")
    assert shown is not None


def test_a_profile_without_a_second_trained_set_is_refused(tiny_profile):
    assert "loads some of its SAEs" in sae_recipe.recipe_applies(tiny_profile)
    with pytest.raises(ProfileError, match="loads some of its SAEs"):
        sae_recipe.recipe_comparison(tiny_profile, (1, 1))
    assert "no second SAE set" in sae_recipe.recipe_applies(tiny_profile.replace(seed_control=None, layers_seed=None))


def test_the_runs_quality_table_is_left_as_the_run_wrote_it(frame, trained):
    from saesim.experiments.grid import settings_from_profile
    from saesim.experiments.sae_quality import sae_quality_table

    out, _ = frame
    run_table = sae_quality_table(trained, cache=out)  # the run's own table, written
    written = pd.read_parquet(out / "results" / "sae_quality.parquet")
    sae_recipe._score_recipe("previous", sae_recipe.previous_recipe(trained, (1, 1)), (1, 1), out,
                             settings_from_profile(trained), False)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results" / "sae_quality.parquet"), written)
    assert len(written) == len(run_table)
