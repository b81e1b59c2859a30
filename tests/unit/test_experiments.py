"""Tests for saesim.experiments.grid on synthetic SAEs with a planted correspondence."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control

from saesim.experiments.grid import (
    GRID_COLUMNS,
    CompareSettings,
    SaeLayer,
    adjust_pvalues,
    compare_pair,
    semantic_compare,
)
from saesim.compare.filters import TopTokens
from saesim.compare.synthetic import planted_pair
from saesim.extract.tokens import contexts, top_activations

WORDS = np.array([" day", " night", " river", " king", " stone", " love", " January", " gene", " cell",
                  " moon", " rain", " tree", " fire", " queen", " week", " hope"], dtype=object)
N_PERM = 50


def layers_from(data, *, junk_latents_a=(), seed=0):
    """SaeLayers of a PlantedPair: one random word per token row, so latents that fire
    on the same rows (the planted pairs) share top tokens. Listed A latents get a "."
    as their first top token (non-concept)."""
    ids = np.random.default_rng(seed).integers(0, WORDS.size, size=data.n_tokens)
    layers = []
    for name, codes, decoder in (("a", data.codes_a, data.W_a), ("b", data.codes_b, data.W_b)):
        ctx = contexts(top_activations(codes, k=5), ids, lambda i: WORDS[i])
        strings = ctx.top_tokens.copy()
        if name == "a":
            strings[list(junk_latents_a), 0] = "."
        windows = np.where(strings == "", "", "x" + strings + " y").astype(object)
        top = TopTokens(strings=strings, ids=ctx.token_ids, active=ctx.active)
        layers.append(SaeLayer(model=name, layer=0, codes=codes, decoder=decoder, top=top, windows=windows))
    return layers


@pytest.fixture(scope="module")
def planted():
    return planted_pair(n_tokens=6000, n_latents_a=256, n_latents_b=320, d_a=32, d_b=48, n_shared=160, seed=0)


SETTINGS = CompareSettings(rules=("first_index", "many_to_one", "mutual"), n_perm=N_PERM, seed=0,
                           metrics=("svcca", "rsa", "linear_cka"), min_active=1)


class TestComparePair:
    def test_records_have_the_documented_columns(self, planted):
        a, b = layers_from(planted)
        records = compare_pair(a, b, SETTINGS)
        assert [r["rule"] for r in records] == ["first_index", "many_to_one", "mutual"]
        for record in records:
            assert set(GRID_COLUMNS) <= set(record)

    def test_planted_pairs_beat_the_null(self, planted):
        a, b = layers_from(planted)
        for record in compare_pair(a, b, SETTINGS):
            assert record["n_pairs"] > 50
            for metric in ("svcca", "rsa", "linear_cka"):
                assert record[metric] > record[f"{metric}_null_mean"]
                assert record[f"{metric}_p"] == pytest.approx(1 / (N_PERM + 1))
                assert record[f"{metric}_z"] > 3

    def test_counts_shrink_stage_by_stage(self, planted):
        a, b = layers_from(planted)
        first, many, _ = compare_pair(a, b, SETTINGS)
        for r in (first, many):
            assert r["n_choosers"] == 320
            assert r["n_choosers"] >= r["n_with_partner"] >= r["n_after_junk"] >= r["n_after_1to1"] >= r["n_pairs"]
        assert first["n_unique_a"] == first["n_pairs"]  # 1-1
        assert many["n_after_1to1"] == many["n_after_junk"]  # no de-duplication
        assert many["n_unique_a"] <= many["n_pairs"]

    def test_junk_filter_result_is_not_undone(self, planted):
        # Regression for the authors' for-else bug: junk-labelled A latents must stay out.
        junk = np.arange(0, 256, 2)
        a, b = layers_from(planted, junk_latents_a=junk)
        on = compare_pair(a, b, SETTINGS.replace(rules=("many_to_one",), metrics=("svcca",)))[0]
        off = compare_pair(a, b, SETTINGS.replace(rules=("many_to_one",), metrics=("svcca",),
                                                  junk_filter=False))[0]
        assert on["n_after_junk"] < off["n_after_junk"]
        assert on["n_pairs"] < off["n_pairs"]

    def test_no_correspondence_gives_large_p(self, planted):
        a, b = layers_from(planted.shuffled(seed=1))
        record = compare_pair(a, b, SETTINGS.replace(rules=("many_to_one",), r_min=-0.5, metrics=("linear_cka",),
                                                     junk_filter=False))[0]
        if record["n_pairs"] > 2:
            assert record["linear_cka_p"] > 0.01

    def test_deterministic(self, planted):
        a, b = layers_from(planted)
        first = pd.DataFrame(compare_pair(a, b, SETTINGS))
        second = pd.DataFrame(compare_pair(a, b, SETTINGS))
        pd.testing.assert_frame_equal(first, second)

    def test_both_directions(self, planted):
        a, b = layers_from(planted)
        records = compare_pair(a, b, SETTINGS.replace(rules=("first_index",), directions=("b_to_a", "a_to_b")))
        assert [r["direction"] for r in records] == ["b_to_a", "a_to_b"]
        assert records[1]["n_choosers"] == 256

    def test_authors_k_svcca_on_the_same_pairs(self, planted):
        from saesim.compare.geometry import svcca
        from saesim.compare.nulls import permutation_test

        a, b = layers_from(planted)
        record = compare_pair(a, b, SETTINGS.replace(rules=("first_index",)))[0]
        assert record["svcca_authors_k_k_x"] == 1 and record["svcca_authors_k_k_y"] == 1
        assert record["svcca_k_x"] > 1  # corrected SVCCA keeps more than one component
        # Oracle: rebuild the pairs the record scored and rescore with the authors' rule.
        from saesim.compare.corr import best_partners
        from saesim.compare.stages import filtered_pairs

        pairs, _ = filtered_pairs(best_partners(a.codes, b.codes), a, b, SETTINGS, rule="first_index",
                                  direction="b_to_a")
        x, y = pairs.rows(a.decoder, b.decoder)
        assert record["svcca_authors_k"] == pytest.approx(svcca(x, y, compat=True).statistic, abs=1e-12)
        null = permutation_test(x, y, "svcca", n_perm=N_PERM, seed=0, compat=True)
        assert record["svcca_authors_k_null_mean"] == pytest.approx(null.null_mean, abs=1e-9)

    def test_compat_uses_authors_choices(self, planted):
        a, b = layers_from(planted)
        record = compare_pair(a, b, SETTINGS.replace(compat=True, rules=("first_index",)))[0]
        assert record["svcca_k_x"] == 1 and record["svcca_k_y"] == 1
        assert record["svcca_p"] == 0.0  # mean(null >= obs): can be 0 under compat


class TestSettings:
    def test_bad_values(self):
        with pytest.raises(ValueError, match=r"`rules` has unknown rules \['best'\]"):
            CompareSettings(rules=("best",))
        with pytest.raises(ValueError, match=r"`directions` has \['up'\]"):
            CompareSettings(directions=("up",))
        with pytest.raises(ValueError, match=r"`n_perm` must be a positive integer"):
            CompareSettings(n_perm=0)

    def test_key_changes_with_settings(self):
        assert CompareSettings().key() != CompareSettings(n_perm=10).key()
        assert CompareSettings().key() == CompareSettings().key()


class TestSemanticCompare:
    def test_concepts_scored_or_skipped(self, planted):
        a, b = layers_from(planted)
        concepts = {"Nature": ("river", "stone", "moon", "rain", "tree", "fire"), "Empty": ("zzz",)}
        records = semantic_compare(a, b, CompareSettings(rules=("first_index",), n_perm=N_PERM, metrics=("svcca",)),
                                   concepts=concepts, n_subset_draws=20)
        by = {r["concept"]: r for r in records}
        assert by["Empty"]["skipped"] == "too few members"
        nature = by["Nature"]
        assert nature["skipped"] == "" and nature["n_pairs"] > 2
        assert 0 < nature["svcca_p"] <= 1 and "svcca_subset_p" in nature

    def test_subspace_svcca_keeps_ten_pairs_per_dimension(self, planted):
        a, b = layers_from(planted)
        concepts = {"Nature": ("river", "stone", "moon", "rain", "tree", "fire")}
        record = semantic_compare(a, b, CompareSettings(rules=("first_index",), n_perm=N_PERM, metrics=("svcca",)),
                                  concepts=concepts, n_subset_draws=5)[0]
        assert record["svcca_policy"] == "ratio:10"
        assert record["svcca_k_x"] == max(1, record["n_pairs"] // 10)
        assert record["svcca"] < 1.0 - 1e-6  # not saturated

    def test_compat_null_size_follows_the_paper(self, planted):
        a, b = layers_from(planted)
        concepts = {"Nature": ("river", "stone", "moon", "rain", "tree", "fire")}
        record = semantic_compare(a, b, CompareSettings(rules=("first_index",), compat=True, metrics=("svcca",)),
                                  concepts=concepts, n_subset_draws=5)[0]
        assert record["n_perm"] == (100 if record["n_pairs"] > 100 else 1000)


class TestAdjustPvalues:
    def test_holm_and_bh_against_definitions(self):
        p = np.array([0.01, 0.04, 0.03, 0.2, np.nan, 0.001])
        out = adjust_pvalues(pd.DataFrame({"svcca_p": p}))
        valid = p[np.isfinite(p)]
        m = valid.size
        order = np.argsort(valid)
        holm = np.empty(m)
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * valid[i]))
            holm[i] = running
        np.testing.assert_allclose(out["svcca_p_holm"].to_numpy()[np.isfinite(p)], holm)
        np.testing.assert_allclose(out["svcca_p_bh"].to_numpy()[np.isfinite(p)], false_discovery_control(valid))
        assert np.isnan(out["svcca_p_holm"][4])
