"""Tests for saesim.experiments.robust on synthetic SAEs with a planted correspondence."""

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from saesim.experiments import robust
from saesim.compare.corr import CoactivationMoments, DeadLatentWarning, best_partners
from saesim.experiments.grid import CompareSettings, SaeLayer, compare_best, compare_pair
from saesim.compare.filters import TopTokens
from saesim.compare.synthetic import planted_pair
from saesim.extract.tokens import contexts, top_activations

WORDS = np.array([" day", " night", " river", " king", " stone", " love", " gene", " cell", " moon", " rain",
                  " tree", " fire"], dtype=object)
DOC_LEN = 30
SETTINGS = CompareSettings(rules=("first_index",), n_perm=50, min_active=1, metrics=("svcca", "rsa"))
NULL_SETTINGS = SETTINGS.replace(r_min=0.0, junk_filter=False)


def layers_from(data, *, seed=0, k=10):
    """SaeLayers of a PlantedPair; one random word per token row, so co-firing latents share top tokens."""
    ids = np.random.default_rng(seed).integers(0, WORDS.size, size=data.n_tokens)
    layers = []
    for name, codes, decoder in (("a", data.codes_a, data.W_a), ("b", data.codes_b, data.W_b)):
        ctx = contexts(top_activations(codes, k=k), ids, lambda i: WORDS[i])
        top = TopTokens(strings=ctx.top_tokens, ids=ctx.token_ids, active=ctx.active)
        windows = np.where(ctx.top_tokens == "", "", "x" + ctx.top_tokens + " y").astype(object)
        layers.append(SaeLayer(model=name, layer=0, codes=codes, decoder=decoder, top=top, windows=windows))
    return layers


def small(seed=0, **kw):
    args = dict(n_tokens=3000, n_latents_a=128, n_latents_b=160, d_a=16, d_b=24, n_shared=80, seed=seed)
    return planted_pair(**{**args, **kw})


@pytest.fixture(scope="module")
def planted():
    return small(0)


@pytest.fixture(scope="module")
def row_doc():
    return np.arange(3000) // DOC_LEN


class TestBootstrap:
    def test_planted_effect_is_detected_with_a_ci_above_the_null(self, planted, row_doc):
        a, b = layers_from(planted)
        record = robust.bootstrap_ci(a, b, row_doc, SETTINGS, rule="first_index", n_boot=20).to_record()
        for metric in ("svcca", "rsa"):
            assert record[f"{metric}_effect"] > 0.2
            assert record[f"{metric}_effect_z"] > 5
            assert record[f"{metric}_ci_low"] <= record[f"{metric}_ci_high"]
            assert record[f"{metric}_effect_ci_low"] > 0  # the whole CI is above the null mean

    def test_shuffled_correspondence_cis_cover_zero_effect(self, planted, row_doc):
        covered = 0
        for seed in range(5):
            a, b = layers_from(planted.shuffled(seed=seed))
            record = robust.bootstrap_ci(a, b, row_doc, NULL_SETTINGS, rule="first_index", n_boot=20,
                                         seed=seed).to_record()
            covered += sum(record[f"{m}_effect_ci_low"] <= 0 <= record[f"{m}_effect_ci_high"] for m in ("svcca", "rsa"))
            assert abs(record["rsa_effect"]) < 0.1
        assert covered >= 8  # of 10 intervals

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_interval_contains_its_estimate(self, row_doc, seed):
        # weakly planted codes: resamples pair worse than the full data, the plain percentile interval
        # sits below the estimate; the recentred one must still contain it
        a, b = layers_from(small(seed))
        res = robust.bootstrap_ci(a, b, row_doc, NULL_SETTINGS, rule="first_index", n_boot=30, seed=seed)
        record = res.to_record()
        for metric in ("svcca", "rsa"):
            assert record[f"{metric}_ci_low"] <= record[metric] <= record[f"{metric}_ci_high"]
            assert np.isfinite(record[f"{metric}_boot_bias"])
        assert record["ci_method"] == robust.CI_METHOD and record["n_boot"] == 30

    def test_recentred_interval_moves_a_biased_percentile_interval_onto_the_estimate(self):
        values = np.random.default_rng(0).normal(0.45, 0.01, size=400)  # resamples biased 0.05 low
        low, high = robust.recentred_interval(values, 0.5, 0.95)
        assert low < 0.5 < high
        assert high - low == pytest.approx(np.quantile(values, 0.975) - np.quantile(values, 0.025))
        assert all(np.isnan(robust.recentred_interval([0.1], 0.5)))  # one resample: no interval
        assert np.isnan(robust.recentred_interval([0.1, 0.2], np.nan)[0])

    def test_default_resamples_are_enough_for_a_stable_interval(self):
        assert robust.N_BOOT >= 200

    def test_is_deterministic_and_seeded(self, planted, row_doc):
        a, b = layers_from(planted)
        one = robust.bootstrap_ci(a, b, row_doc, SETTINGS, rule="first_index", n_boot=5, seed=3)
        two = robust.bootstrap_ci(a, b, row_doc, SETTINGS, rule="first_index", n_boot=5, seed=3)
        other = robust.bootstrap_ci(a, b, row_doc, SETTINGS, rule="first_index", n_boot=5, seed=4)
        pd.testing.assert_frame_equal(one.samples, two.samples)
        assert one.ci == two.ci
        assert not one.samples["svcca"].equals(other.samples["svcca"])
        # more resamples extend the first ones
        longer = robust.bootstrap_ci(a, b, row_doc, SETTINGS, rule="first_index", n_boot=7, seed=3)
        pd.testing.assert_frame_equal(longer.samples.iloc[:5], one.samples)

    def test_direction_and_rule_are_used(self, planted, row_doc):
        a, b = layers_from(planted)
        res = robust.bootstrap_ci(a, b, row_doc, SETTINGS, rule="mutual", direction="a_to_b", n_boot=3)
        assert res.observed["rule"] == "mutual" and res.observed["direction"] == "a_to_b"
        assert res.observed["n_choosers"] == planted.n_a

    def test_bad_row_doc_is_named(self, planted):
        a, b = layers_from(planted)
        with pytest.raises(ValueError, match="`row_doc` must give the document of every code row"):
            robust.bootstrap_ci(a, b, np.zeros(10), SETTINGS, rule="first_index", n_boot=2)


def quiet_best_partners(codes_a, codes_b, **kwargs):
    """saesim.compare.corr.best_partners without the dead-latent warning (resamples leave rare latents dead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadLatentWarning)
        return best_partners(codes_a, codes_b, **kwargs)


def resample(row_doc, boot, *, seed=0):
    """Document counts and token rows of bootstrap resample ``boot`` (the draws of bootstrap_ci)."""
    n_docs = int(row_doc.max()) + 1
    draw = np.random.default_rng([seed, boot]).integers(0, n_docs, size=n_docs)
    rows = np.concatenate([np.flatnonzero(row_doc == d) for d in draw])
    return np.bincount(draw, minlength=n_docs), rows


class TestFastBootstrap:
    def test_candidate_pairs_are_both_sides_lists_once_sorted_by_b(self, planted):
        best = quiet_best_partners(planted.codes_a, planted.codes_b)
        pair_a, pair_b = robust.candidate_pairs(best)
        keys = pair_b * best.n_a + pair_a
        assert np.all(np.diff(keys) > 0)
        listed = {(int(a), b) for b, row in enumerate(best.top_index) for a in row if a >= 0}
        listed |= {(a, int(b)) for a, row in enumerate(best.top_index_a) for b in row if b >= 0}
        assert set(zip(pair_a.tolist(), pair_b.tolist())) == listed

    def test_weighted_moments_equal_brute_force_slicing(self, planted, row_doc):
        pair_a, pair_b = robust.candidate_pairs(quiet_best_partners(planted.codes_a, planted.codes_b))
        moments = robust.DocumentMoments(planted.codes_a, planted.codes_b, row_doc, pair_a, pair_b)
        counts, rows = resample(row_doc, 0)
        weighted = moments.weighted(counts)
        sliced = CoactivationMoments(planted.n_a, planted.n_b).update(planted.codes_a[rows], planted.codes_b[rows])
        assert weighted.n_tokens_ == sliced.n_tokens_ == rows.size
        for name in ("sum_a_", "sumsq_a_", "sum_b_", "sumsq_b_"):
            np.testing.assert_allclose(getattr(weighted, name), getattr(sliced, name), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(weighted.cross_[pair_b, pair_a]).ravel(),
                                   np.asarray(sliced.cross_[pair_b, pair_a]).ravel(), rtol=1e-12)

    def test_equals_the_exact_path_when_every_pair_is_a_candidate(self, planted, row_doc):
        a, b = layers_from(planted)
        pair_b, pair_a = np.divmod(np.arange(planted.n_a * planted.n_b), planted.n_a)
        moments = robust.DocumentMoments(a.codes, b.codes, row_doc, pair_a, pair_b)
        settings = SETTINGS.replace(rules=("first_index", "many_to_one", "mutual", "hungarian"),
                                    directions=("b_to_a", "a_to_b"), n_perm=1)
        for boot in range(3):
            counts, rows = resample(row_doc, boot)
            fast = moments.best_partners(counts)
            exact = quiet_best_partners(a.codes[rows], b.codes[rows])
            assert fast.n_tokens == exact.n_tokens == rows.size
            for name in ("index", "index_a", "top_index", "top_index_a", "dead_a", "dead_b"):
                np.testing.assert_array_equal(getattr(fast, name), getattr(exact, name), err_msg=name)
            for name in ("r", "r_a", "top_r", "top_r_a"):
                np.testing.assert_allclose(getattr(fast, name), getattr(exact, name), rtol=0, atol=1e-9)
            pd.testing.assert_frame_equal(pd.DataFrame(compare_best(fast, a, b, settings)),
                                          pd.DataFrame(compare_best(exact, a, b, settings)), rtol=0, atol=1e-9)

    def test_resampled_partners_agree_with_the_exact_path(self):
        # Weak latents re-choose among many chance co-firings; 64 candidates cover them (8 do not).
        data = planted_pair(n_tokens=20_000, n_latents_a=512, n_latents_b=768, n_shared=256, seed=0)
        row_doc = np.arange(data.n_tokens) // 25
        full = quiet_best_partners(data.codes_a, data.codes_b, m=robust.BOOT_CANDIDATES)
        moments = robust.DocumentMoments(data.codes_a, data.codes_b, row_doc, *robust.candidate_pairs(full))
        for boot in range(2):
            counts, rows = resample(row_doc, boot)
            fast = moments.best_partners(counts)
            exact = quiet_best_partners(data.codes_a[rows], data.codes_b[rows])
            chosen = (fast.index >= 0) | (exact.index >= 0)
            assert np.mean(fast.index[chosen] == exact.index[chosen]) >= 0.99
            strong = (fast.r > 0.1) | (exact.r > 0.1)
            assert np.array_equal(fast.index[strong], exact.index[strong])

    def test_fast_path_searches_once_and_keeps_the_observed_record(self, planted, row_doc, monkeypatch):
        a, b = layers_from(planted)
        calls = []
        monkeypatch.setattr(robust, "quiet_best_partners",
                            lambda *args, **kw: calls.append(kw) or quiet_best_partners(*args, **kw))
        fast = robust.bootstrap_ci(a, b, row_doc, SETTINGS, rule="first_index", n_boot=4)
        assert len(calls) == 1 and calls[0]["m"] == robust.BOOT_CANDIDATES
        exact = robust.bootstrap_ci(a, b, row_doc, SETTINGS, rule="first_index", n_boot=4, exact=True)
        assert len(calls) == 1 + 1 + 4
        assert fast.observed == exact.observed == compare_pair(a, b, SETTINGS.replace(rules=("first_index",)))[0]
        assert list(fast.samples["n_tokens"]) == list(exact.samples["n_tokens"])

    def test_compat_takes_the_exact_path_and_dense_codes_search_once(self, planted, row_doc, monkeypatch):
        a, b = layers_from(planted)
        calls = []
        monkeypatch.setattr(robust, "quiet_best_partners",
                            lambda *args, **kw: calls.append(kw) or quiet_best_partners(*args, **kw))
        dense_a, dense_b = (replace(layer, codes=layer.codes.toarray()) for layer in (a, b))
        dense = robust.bootstrap_ci(dense_a, dense_b, row_doc, NULL_SETTINGS, rule="first_index", n_boot=2)
        assert len(calls) == 1  # resamples follow from the per-document moments
        robust.bootstrap_ci(a, b, row_doc, SETTINGS.replace(compat=True), rule="first_index", n_boot=2)
        assert len(calls) == 1 + (1 + 2)
        exact = robust.bootstrap_ci(dense_a, dense_b, row_doc, NULL_SETTINGS, rule="first_index", n_boot=2,
                                    exact=True)
        pd.testing.assert_frame_equal(dense.samples, exact.samples, rtol=0, atol=1e-9)

    def test_dense_moments_equal_the_exact_dense_path(self):
        # Raw neurons: dense, of any sign, every pair correlated a little.
        rng = np.random.default_rng(3)
        a = rng.standard_normal((3000, 7)) + 2.0
        b = a[:, [4, 0, 6, 2, 1, 5]] * rng.uniform(0.5, 2, 6) + 0.8 * rng.standard_normal((3000, 6)) - 1.0
        row_doc = np.arange(3000) // 30
        moments = robust.DenseDocumentMoments(a, b, row_doc)
        assert moments.cross.shape == (100, 6 * 7)
        for boot in range(3):
            counts, rows = resample(row_doc, boot)
            fast = moments.best_partners(counts, m=4)
            exact = quiet_best_partners(a[rows], b[rows], m=4)
            assert fast.n_tokens == exact.n_tokens == rows.size
            for name in ("index", "index_a", "top_index", "top_index_a", "dead_a", "dead_b"):
                np.testing.assert_array_equal(getattr(fast, name), getattr(exact, name), err_msg=name)
            for name in ("r", "r_a", "top_r", "top_r_a"):
                np.testing.assert_allclose(getattr(fast, name), getattr(exact, name), rtol=0, atol=1e-9)
        np.testing.assert_array_equal(fast.index, [4, 0, 6, 2, 1, 5])

    def test_bad_candidates_are_named(self, planted, row_doc):
        a, b = layers_from(planted)
        with pytest.raises(ValueError, match="`candidates` must be a positive integer"):
            robust.bootstrap_ci(a, b, row_doc, SETTINGS, rule="first_index", n_boot=2, candidates=0)


class TestNullCalibration:
    def test_pvalues_are_uniform_without_correspondence(self):
        # 30 unrelated pairs of SAEs: shuffled-pairing p-values ~ U(0, 1) (KS test, and no excess at 0.1).
        data = small(1, n_tokens=2000, n_latents_a=96, n_latents_b=96, n_shared=48)
        p = []
        for seed in range(30):
            a, b = layers_from(data.shuffled(seed=seed))
            record = compare_pair(a, b, NULL_SETTINGS.replace(n_perm=99, seed=seed))[0]
            p.extend([record["svcca_p"], record["rsa_p"]])
        p = np.asarray(p)
        assert scipy.stats.kstest(p, "uniform").pvalue > 0.01
        assert np.mean(p <= 0.1) < 0.25


class TestEffectSizes:
    def test_dict_and_frame(self):
        record = {"svcca": 0.5, "svcca_null_mean": 0.3, "svcca_null_std": 0.1, "rsa": 0.1, "rsa_null_mean": 0.0,
                  "rsa_null_std": 0.0, "rsa_subset_null_mean": 0.05}
        out = robust.effect_sizes(record)
        assert out["svcca_effect"] == pytest.approx(0.2) and out["svcca_effect_z"] == pytest.approx(2.0)
        assert np.isnan(out["rsa_effect_z"]) and out["rsa_subset_effect"] == pytest.approx(0.05)
        frame = robust.effect_sizes(pd.DataFrame([record, record]))
        assert list(frame["svcca_effect"]) == pytest.approx([0.2, 0.2])


def fake_record(la, lb, value, low, high, null=0.3, rule="first_index"):
    return {"layer_a": la, "layer_b": lb, "rule": rule, "direction": "b_to_a", "svcca": value,
            "svcca_ci_low": low, "svcca_ci_high": high, "svcca_null_mean": null, "svcca_null_std": 0.01,
            "svcca_p": 0.001, "svcca_z": 10.0, "n_pairs": 100}


class TestControlTableAndVerdict:
    def test_verdict_follows_the_numbers_both_ways(self):
        sae = pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85), fake_record(1, 1, 0.5, 0.40, 0.60)])
        control = pd.DataFrame([fake_record(0, 0, 0.4, 0.35, 0.45), fake_record(1, 1, 0.45, 0.40, 0.50)])
        raw = pd.DataFrame([fake_record(0, 0, 0.6, 0.55, 0.65), fake_record(1, 1, 0.7, 0.65, 0.75)])
        table = robust.control_comparison(sae, control=control, raw=raw)
        assert set(table["comparison"]) == {"sae", "control", "raw_neuron", "shuffle_null"}
        assert len(table) == 2 * 4
        lines = robust.verdict(table)
        assert len(lines) == 2
        assert "Verdict: beats every baseline." in lines[0]
        assert "does not clearly beat the random-model control" in lines[1]
        assert "does not clearly beat the raw-neuron baseline" in lines[1]
        assert "(it scores lower or equal)" in lines[1]

    def test_every_baseline_lines_up(self):
        sae = pd.DataFrame([fake_record(0, 1, 0.5, 0.45, 0.55)])
        seed = pd.DataFrame([fake_record(0, 0, 0.9, 0.85, 0.95), fake_record(0, 1, 0.1, 0.05, 0.15)])
        control = pd.DataFrame([fake_record(0, 1, 0.3, 0.25, 0.35)])
        control_all = pd.DataFrame([fake_record(0, 1, 0.2, 0.15, 0.25)])
        table = robust.control_comparison(sae, seed=seed, control=control, control_all=control_all)
        assert set(table["comparison"]) == set(robust.COMPARISONS) - {"raw_neuron"}
        by = table.set_index("comparison")["value"]
        assert by["seed"] == 0.9  # the seed control is read at A's layer on both sides (A0 vs seed 0)
        line = robust.verdict(table)[0]
        assert "two SAEs of model A at layer 0 score 0.900" in line
        assert "the SAE pairs' effect is" in line
        assert "beats the random-model control (authors')" in line
        assert "beats the random-model control (every tensor)" in line

    def test_missing_ci_is_said(self):
        rec = fake_record(0, 0, 0.8, np.nan, np.nan)
        table = robust.control_comparison(pd.DataFrame([rec]), control=pd.DataFrame([fake_record(0, 0, 0.2, 0.1, 0.3)]))
        assert "a CI is missing" in robust.verdict(table)[0]

    def test_saturated_cca_baseline_is_flagged(self):
        raw = dict(fake_record(0, 0, 1.0, 0.99, 1.0, null=0.98), svcca_k_x=60, svcca_k_y=60, n_pairs=64)
        table = robust.control_comparison(pd.DataFrame([fake_record(0, 0, 0.5, 0.45, 0.55)]), raw=pd.DataFrame([raw]))
        line = robust.verdict(table)[0]
        assert "keeps k = 60 dimensions for 64 pairs" in line
        assert "the SAE gains +0.200, raw-neuron baseline +0.020" in line

    def test_same_model_raw_baseline_is_called_a_ceiling(self):
        raw = dict(fake_record(0, 0, 1.0, 0.99, 1.0), mean_r_filtered=1.0)
        table = robust.control_comparison(pd.DataFrame([fake_record(0, 0, 0.5, 0.45, 0.55)]), raw=pd.DataFrame([raw]))
        assert "this baseline is a ceiling" in robust.verdict(table)[0]

    def test_empty(self):
        assert robust.verdict(pd.DataFrame()) == ["No comparisons to judge: the table is empty."]

    def test_verdict_table_follows_the_numbers_and_the_pages_family(self):
        sae = pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85), fake_record(1, 1, 0.5, 0.40, 0.60)])
        seed = pd.DataFrame([fake_record(0, 0, 0.9, 0.85, 0.95), fake_record(1, 1, 0.9, 0.85, 0.95)])
        control = pd.DataFrame([fake_record(0, 0, 0.4, 0.35, 0.45), fake_record(1, 1, 0.45, 0.40, 0.50)])
        raw = pd.DataFrame([fake_record(0, 0, 0.6, 0.55, 0.65), fake_record(1, 1, 0.7, 0.65, 0.75)])
        table = robust.control_comparison(sae, seed=seed, control=control, raw=raw)
        family = pd.DataFrame([dict(layer_a=0, layer_b=0, rule="first_index", direction="b_to_a", svcca_p_holm=0.01),
                               dict(layer_a=1, layer_b=1, rule="first_index", direction="b_to_a", svcca_p_holm=0.2)])
        out = robust.verdict_table(table, family=family).set_index("layer pair")
        assert list(out.index) == ["A0–B0", "A1–B1"]
        assert out.loc["A0–B0", "verdict"] == "above every baseline"
        assert out.loc["A1–B1", "verdict"] == "above shuffled null only; not significant at 0.05 after Holm"
        assert out.loc["A0–B0", "random model (authors')"].startswith("above: 0.400")
        assert out.loc["A1–B1", "raw neurons"].startswith("below: 0.700")
        assert out.loc["A1–B1", "random model (authors')"].startswith("overlaps: 0.450")
        assert out.loc["A0–B0", "p (Holm)"] == 0.01 and out.loc["A1–B1", "p (Holm)"] == 0.2
        assert out.loc["A0–B0", "share of seed floor"] == pytest.approx((0.8 - 0.3) / (0.9 - 0.3))
        assert robust.verdict_table(pd.DataFrame()).empty
        # 2 tests of 20 permutations: Holm's floor 2/21 is above 0.05, and the verdict says so
        floor = family.assign(svcca_p=[1 / 21, 1 / 21], n_perm=20, svcca_p_holm=[2 / 21, 2 / 21])
        out = robust.verdict_table(table, family=floor).set_index("layer pair")
        assert out.loc["A0–B0", "verdict"] == "above every baseline; Holm over 2 tests cannot reach 0.05 with 20 permutations"


class TestDefaultLayers:
    def test_first_middle_and_last_layer_at_the_same_relative_depth(self):
        from saesim.config import load_profile

        offline = load_profile("encoders")  # A 0-5, B 1, 3, ..., 11
        assert offline.baseline_layer_pairs() == [(0, 1), (3, 7), (5, 11)]
        assert robust.default_sweep_pair(offline) == robust.default_sweep_pair("encoders") == (3, 7)
        # Pythia: A has layers 1-5, B 1-11: A's first, middle and last against B's at the same depth.
        assert load_profile("pythia").baseline_layer_pairs() == [(1, 1), (3, 6), (5, 11)]
        same = offline.replace(layers_b=[0, 1, 2, 3, 4, 5])
        assert same.baseline_layer_pairs() == [(0, 0), (3, 3), (5, 5)]  # the diagonal
        two = offline.replace(layers_a=[2, 4], layers_b=[4, 2, 7])
        assert two.baseline_layer_pairs() == [(2, 4), (4, 7)]
        assert robust.default_sweep_pair(two) == (4, 7)

    def test_one_layer_each(self):
        from saesim.config import load_profile

        assert load_profile("encoders").replace(layers_a=[2], layers_b=[9]).baseline_layer_pairs() == [(2, 9)]


class TestSweeps:
    def test_svcca_dimension_reports_k(self, planted):
        a, b = layers_from(planted)
        table = robust.sweep_svcca_dimension(a, b, SETTINGS.replace(n_perm=10), policies=(0.5, 0.99, 3, "ratio:10"))
        assert list(table["policy"]) == ["0.5", "0.99", "3", "ratio:10"]
        assert table.loc[2, "svcca_k_x"] == 3 and table.loc[2, "pwcca_k_y"] == 3
        n = table.loc[3, "n_pairs"]
        assert table.loc[3, "svcca_k_x"] == min(max(1, n // 10), 16)
        assert table["svcca_k_x"].iloc[0] <= table["svcca_k_x"].iloc[1]

    def test_filters_grid_and_kept_fraction(self, planted):
        a, b = layers_from(planted)
        table = robust.sweep_filters(a, b, SETTINGS.replace(n_perm=5, metrics=("svcca",)), r_min=(0.0, 0.4),
                                     rules=("first_index", "mutual"))
        skipped = table[table["skipped"] != ""]
        assert set(skipped["top_k"]) == {20} and skipped["skipped"].str.contains("cache only 10").all()
        done = table[table["skipped"] == ""]
        assert len(done) == (2 + 1) * 2 * 2 * 2  # (top_k 5, 10 | junk off) x r_min x rules x directions
        assert ((done["kept_fraction"] >= 0) & (done["kept_fraction"] <= 1)).all()
        strict = done[(done["r_min"] == 0.4)]["n_pairs"].sum()
        loose = done[(done["r_min"] == 0.0)]["n_pairs"].sum()
        assert strict <= loose

    def test_token_budget_is_nested_and_tightens(self, planted, row_doc):
        a, b = layers_from(planted)
        table = robust.sweep_token_budget(a, b, row_doc, SETTINGS.replace(n_perm=20), fractions=(0.1, 0.5, 1.0))
        assert list(table["n_tokens"]) == [300, 1500, 3000]
        assert table["svcca_effect"].iloc[-1] > 0.2


class TestPlots:
    def test_plots_draw(self, planted):
        pytest.importorskip("matplotlib")
        import matplotlib

        matplotlib.use("Agg")
        sae = pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85)])
        table = robust.control_comparison(sae, control=pd.DataFrame([fake_record(0, 0, 0.4, 0.3, 0.5)]))
        assert robust.plot_baselines(table, "svcca") is not None
        # A percentile CI entirely below the full-sample score (common after re-pairing) still draws.
        below = robust.control_comparison(pd.DataFrame([fake_record(0, 0, 0.8, 0.6, 0.7)]))
        fig = robust.plot_baselines(below, "svcca")
        vertical = [seg for c in fig.axes[0].collections if hasattr(c, "get_segments") for seg in c.get_segments()
                    if seg[0, 0] == seg[1, 0]]
        assert tuple(vertical[0][:, 1].round(6)) == (0.6, 0.7)
        sweep = pd.DataFrame({"fraction": [0.1, 1.0], "svcca": [0.5, 0.6], "svcca_null_mean": [0.3, 0.3]})
        assert robust.plot_sweep(sweep, "fraction", metrics=("svcca",)) is not None

    def test_baselines_draw_the_null_band_the_caption_names(self):
        from matplotlib.collections import PolyCollection

        table = robust.control_comparison(pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85)]))
        fig = robust.plot_baselines(table, "svcca")
        null = table[table["comparison"] == "shuffle_null"].iloc[0]
        bands = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
        assert len(bands) == 1
        ys = bands[0].get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(null["ci_low"]) and ys.max() == pytest.approx(null["ci_high"])
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert any("shuffled null" in t for t in labels)

    def test_plots_are_not_managed_by_pyplot(self):
        import matplotlib.pyplot as plt

        before = plt.get_fignums()
        table = robust.control_comparison(pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85)]))
        robust.plot_baselines(table, "svcca")
        sweep = pd.DataFrame({"policy": ["0.99", "10", "ratio:10"], "svcca": [0.5, 0.6, 0.55],
                              "svcca_null_mean": [0.3, 0.3, 0.3]})
        robust.plot_sweep(sweep, "policy", metrics=("svcca",))
        assert plt.get_fignums() == before  # an inline backend would show them a second time, uncaptioned

    def test_categorical_sweep_points_are_not_joined_and_ticks_are_named(self):
        sweep = pd.DataFrame({"policy": ["0.5", "0.99", "1", "ratio:10", "ratio:50"],
                              "svcca": [0.5, 0.6, 0.55, 0.5, 0.4], "svcca_null_mean": [0.3] * 5})
        fig = robust.plot_sweep(sweep, "policy", metrics=("svcca",))
        ax = fig.axes[0]
        assert all(line.get_linestyle() == "None" for line in ax.get_lines())
        assert [t.get_text() for t in ax.get_xticklabels()] == ["50% var", "99% var", "k=1", "k=n/10", "k=n/50"]

    def test_many_sweep_panels_wrap_with_one_legend(self):
        rows = [{"r_min": r, "svcca": 0.5, "svcca_null_mean": 0.3, "rule": rule, "direction": d, "setting": "x"}
                for r in (0.0, 0.1) for rule in ("a", "b", "c", "d", "e", "f") for d in ("b_to_a", "a_to_b")]
        fig = robust.plot_sweep(pd.DataFrame(rows), "r_min", metrics=("svcca",), hue="setting", col="rule",
                                style="direction", ncols=3)
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert len(visible) == 6 and len(fig.legends) == 1


def grid_records(excess, *, null=0.01, z=None, layers_a=(0, 1, 2), layers_b=(0, 1, 2)):
    """A tidy grid with RSA = null + excess[i][j] and Holm p small where the excess is large."""
    rows = []
    for i, la in enumerate(layers_a):
        for j, lb in enumerate(layers_b):
            e = excess[i][j]
            rows.append({"layer_a": la, "layer_b": lb, "rsa": null + e, "rsa_null_mean": null,
                         "rsa_z": e / 0.005 if z is None else z, "rsa_p": 0.001 if e > 0.02 else 0.5,
                         "rsa_p_holm": 0.009 if e > 0.02 else 1.0, "n_pairs": 500, "n_perm": 999})
    return pd.DataFrame(rows)


class TestFindings:
    def test_sentences_follow_a_planted_middle_peak(self):
        main = grid_records([[0.03, 0.04, 0.01], [0.04, 0.09, 0.03], [0.01, 0.03, 0.03]])
        seed = grid_records([[0.2, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.2]])
        control = grid_records([[0.0, 0.0, 0.0]] * 3)
        control_all = grid_records([[-0.01, 0.0, 0.0]] * 3)
        lines, table = robust.findings({"full_space": main, "seed": seed, "control": control,
                                        "control_all": control_all}, "rsa", depth=((0, 1, 2), (0, 1, 2)))
        text = " ".join(lines)
        assert "7 of 9 layer pairs lie above their null" in text
        assert "7 beat every one of their 999 permutations" in text and "cannot reject" not in text
        assert "largest +0.090 at A layer 1 – B layer 1" in text
        assert "in the middle layers of both models" in text
        assert "seed noise floor. The cross-model median excess is 15% of it." in text
        assert "The authors' random model in A's place: 0 of 9 layer pairs lie above their null" in text
        assert "A against B exceeds it in 9 of the 9 layer pairs" in text
        assert "by +0.000 against resampling every tensor" in text
        assert list(table["comparison"]) == ["full_space", "seed", "control", "control_all"]

    def test_an_edge_peak_and_no_controls_are_said_as_they_are(self):
        main = grid_records([[0.09, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        lines, _ = robust.findings({"full_space": main}, "rsa", depth=((0, 1, 2), (0, 1, 2)))
        assert "1 of 9 layer pairs lie above their null" in lines[0]
        assert "not in the middle" in lines[1] and len(lines) == 2

    def test_says_when_holm_cannot_reject_with_so_few_permutations(self):
        main = grid_records([[0.09, 0.05, 0.05]] * 3).assign(n_perm=100, rsa_p=1 / 101, rsa_p_holm=9 / 101)
        line = robust.findings({"full_space": main}, "rsa")[0][0]
        assert "0 of 9 layer pairs lie above their null" in line
        assert "9 beat every one of their 100 permutations" in line
        assert "Holm over 9 tests cannot reject at 0.05 whatever the data (it needs at least 179" in line

    def test_needs_the_main_comparison(self):
        with pytest.raises(ValueError, match="`frames` needs the 'full_space' comparison"):
            robust.findings({"seed": grid_records([[0.0] * 3] * 3)})


class TestKeptTable:
    def test_kept_under_its_key_and_recomputed_when_it_changes_or_is_damaged(self, tmp_path):
        calls = []

        def compute(value):
            def run():
                calls.append(value)
                return pd.DataFrame({"x": [value, value + 1]})
            return run

        first = robust.kept_table(tmp_path, "sweep", {"pair": [3, 7]}, compute(1))
        again = robust.kept_table(tmp_path, "sweep", {"pair": [3, 7]}, compute(99))  # kept: not recomputed
        pd.testing.assert_frame_equal(first, again)
        other = robust.kept_table(tmp_path, "sweep", {"pair": [3, 5]}, compute(5))
        assert calls == [1, 5] and other["x"].tolist() == [5, 6]
        kept = sorted((tmp_path / "kept").glob("sweep_*.parquet"))
        assert len(kept) == 2 and not list((tmp_path / "kept").glob("*.tmp"))
        for path in kept:
            path.write_bytes(b"truncated")
        assert robust.kept_table(tmp_path, "sweep", {"pair": [3, 7]}, compute(7))["x"].tolist() == [7, 8]
        assert calls == [1, 5, 7]
