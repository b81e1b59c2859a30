"""Tests for the document bootstrap: saesim.compare.bootstrap (per-document moments, candidate pairs,
recentred intervals) and saesim.experiments.bootstrap (BootstrapOptions, bootstrap_ci), on synthetic SAEs
with a planted correspondence."""

import json
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from saesim.compare.bootstrap import (
    BOOT_CANDIDATES,
    CI_METHOD,
    DenseDocumentMoments,
    DocumentMoments,
    candidate_pairs,
    document_groups,
    document_rows,
    recentred_interval,
)
from saesim.compare.corr import CoactivationMoments, DeadLatentWarning, best_partners
from saesim.compare.synthetic import planted_pair
from saesim.experiments import bootstrap
from saesim.experiments.bootstrap import BOOT_METRICS, N_BOOT, BootstrapOptions, bootstrap_ci
from saesim.experiments.grid import compare_best, compare_pair
from tests.planted_layers import NULL_SETTINGS, SETTINGS, layers_from, small


@pytest.fixture(scope="module")
def planted():
    return small(0)


@pytest.fixture(scope="module")
def row_doc():
    return np.arange(3000) // 30


def old_options_dict(rule, direction="b_to_a", metrics=BOOT_METRICS, n_boot=N_BOOT, seed=0, level=0.95,
                     candidates=BOOT_CANDIDATES):
    """The options dict bootstrap_many and bootstrap_raw_neurons built (and hashed) before BootstrapOptions."""
    return dict(rule=rule, direction=direction, metrics=tuple(metrics), n_boot=n_boot, seed=seed, level=level,
                candidates=candidates)


class TestBootstrapOptions:
    @pytest.mark.parametrize("kwargs", [
        dict(rule="first_index"),
        dict(rule="first_index", direction="b_to_a", metrics=["svcca", "rsa"], n_boot=50, seed=0),
        dict(rule="many_to_one", direction="a_to_b", metrics=("rsa",), n_boot=7, seed=11, level=0.9, candidates=32),
        dict(rule="mutual", metrics=("rsa", "svcca", "linear_cka"), level=0.8),
    ])
    def test_hashed_form_is_byte_identical_to_the_old_options_dict(self, kwargs):
        new = BootstrapOptions(**kwargs).to_dict()
        old = old_options_dict(**kwargs)
        assert list(new) == list(old)
        assert json.dumps(new) == json.dumps(old)
        assert json.dumps(new, sort_keys=True) == json.dumps(old, sort_keys=True)
        assert {k: type(v) for k, v in new.items()} == {k: type(v) for k, v in old.items()}

    def test_defaults_and_metrics_as_a_tuple(self):
        options = BootstrapOptions(rule="first_index", metrics=["rsa"])
        assert options.metrics == ("rsa",)
        assert (options.direction, options.n_boot, options.seed, options.level, options.candidates) == (
            "b_to_a", N_BOOT, 0, 0.95, BOOT_CANDIDATES)
        assert options.replace(seed=4).seed == 4 and options.seed == 0

    @pytest.mark.parametrize("kwargs, match", [
        (dict(n_boot=0), "`n_boot` must be a positive integer"),
        (dict(n_boot=2.0), "`n_boot` must be a positive integer"),
        (dict(level=1.0), r"`level` must lie in \(0, 1\)"),
        (dict(candidates=0), "`candidates` must be a positive integer"),
        (dict(candidates=True), "`candidates` must be a positive integer"),
    ])
    def test_bad_values_are_named(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            BootstrapOptions(rule="first_index", **kwargs)


class TestDocumentGroups:
    def test_rows_grouped_by_document_in_draw_order(self):
        row_doc = np.array([2, 0, 2, 1, 0, 2])
        order, starts, lengths = document_groups(row_doc, 6)
        assert list(lengths) == [2, 1, 3]
        assert list(document_rows([2, 0, 2], order, starts, lengths)) == [0, 2, 5, 1, 4, 0, 2, 5]

class TestBootstrap:
    def test_planted_effect_is_detected_with_a_ci_above_the_null(self, planted, row_doc):
        a, b = layers_from(planted)
        record = bootstrap_ci(a, b, row_doc, SETTINGS, BootstrapOptions(rule="first_index", n_boot=20)).to_record()
        for metric in ("svcca", "rsa"):
            assert record[f"{metric}_effect"] > 0.2
            assert record[f"{metric}_effect_z"] > 5
            assert record[f"{metric}_ci_low"] <= record[f"{metric}_ci_high"]
            assert record[f"{metric}_effect_ci_low"] > 0  # the whole CI is above the null mean

    def test_shuffled_correspondence_cis_cover_zero_effect(self, planted, row_doc):
        covered = 0
        for seed in range(5):
            a, b = layers_from(planted.shuffled(seed=seed))
            record = bootstrap_ci(a, b, row_doc, NULL_SETTINGS,
                                  BootstrapOptions(rule="first_index", n_boot=20, seed=seed)).to_record()
            covered += sum(record[f"{m}_effect_ci_low"] <= 0 <= record[f"{m}_effect_ci_high"] for m in ("svcca", "rsa"))
            assert abs(record["rsa_effect"]) < 0.1
        assert covered >= 8  # of 10 intervals

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_interval_contains_its_estimate(self, row_doc, seed):
        # weakly planted codes: resamples pair worse than the full data, the plain percentile interval
        # sits below the estimate; the recentred one must still contain it
        a, b = layers_from(small(seed))
        res = bootstrap_ci(a, b, row_doc, NULL_SETTINGS, BootstrapOptions(rule="first_index", n_boot=30, seed=seed))
        record = res.to_record()
        for metric in ("svcca", "rsa"):
            assert record[f"{metric}_ci_low"] <= record[metric] <= record[f"{metric}_ci_high"]
            assert np.isfinite(record[f"{metric}_boot_bias"])
        assert record["ci_method"] == CI_METHOD and record["n_boot"] == 30

    def test_recentred_interval_moves_a_biased_percentile_interval_onto_the_estimate(self):
        values = np.random.default_rng(0).normal(0.45, 0.01, size=400)  # resamples biased 0.05 low
        low, high = recentred_interval(values, 0.5, 0.95)
        assert low < 0.5 < high
        assert high - low == pytest.approx(np.quantile(values, 0.975) - np.quantile(values, 0.025))
        assert all(np.isnan(recentred_interval([0.1], 0.5)))  # one resample: no interval
        assert np.isnan(recentred_interval([0.1, 0.2], np.nan)[0])

    def test_default_resamples_are_enough_for_a_stable_interval(self):
        assert N_BOOT >= 200

    def test_is_deterministic_and_seeded(self, planted, row_doc):
        a, b = layers_from(planted)
        one = bootstrap_ci(a, b, row_doc, SETTINGS, BootstrapOptions(rule="first_index", n_boot=5, seed=3))
        two = bootstrap_ci(a, b, row_doc, SETTINGS, BootstrapOptions(rule="first_index", n_boot=5, seed=3))
        other = bootstrap_ci(a, b, row_doc, SETTINGS, BootstrapOptions(rule="first_index", n_boot=5, seed=4))
        pd.testing.assert_frame_equal(one.samples, two.samples)
        assert one.ci == two.ci
        assert not one.samples["svcca"].equals(other.samples["svcca"])
        # more resamples extend the first ones
        longer = bootstrap_ci(a, b, row_doc, SETTINGS, BootstrapOptions(rule="first_index", n_boot=7, seed=3))
        pd.testing.assert_frame_equal(longer.samples.iloc[:5], one.samples)

    def test_direction_and_rule_are_used(self, planted, row_doc):
        a, b = layers_from(planted)
        res = bootstrap_ci(a, b, row_doc, SETTINGS, BootstrapOptions(rule="mutual", direction="a_to_b", n_boot=3))
        assert res.observed["rule"] == "mutual" and res.observed["direction"] == "a_to_b"
        assert res.observed["n_choosers"] == planted.n_a

    def test_bad_row_doc_is_named(self, planted):
        a, b = layers_from(planted)
        with pytest.raises(ValueError, match="`row_doc` must give the document of every code row"):
            bootstrap_ci(a, b, np.zeros(10), SETTINGS, BootstrapOptions(rule="first_index", n_boot=2))


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
        pair_a, pair_b = candidate_pairs(best)
        keys = pair_b * best.n_a + pair_a
        assert np.all(np.diff(keys) > 0)
        listed = {(int(a), b) for b, row in enumerate(best.top_index) for a in row if a >= 0}
        listed |= {(a, int(b)) for a, row in enumerate(best.top_index_a) for b in row if b >= 0}
        assert set(zip(pair_a.tolist(), pair_b.tolist())) == listed

    def test_weighted_moments_equal_brute_force_slicing(self, planted, row_doc):
        pair_a, pair_b = candidate_pairs(quiet_best_partners(planted.codes_a, planted.codes_b))
        moments = DocumentMoments(planted.codes_a, planted.codes_b, row_doc, pair_a, pair_b)
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
        moments = DocumentMoments(a.codes, b.codes, row_doc, pair_a, pair_b)
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
        full = quiet_best_partners(data.codes_a, data.codes_b, m=BOOT_CANDIDATES)
        moments = DocumentMoments(data.codes_a, data.codes_b, row_doc, *candidate_pairs(full))
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
        monkeypatch.setattr(bootstrap, "quiet_best_partners",
                            lambda *args, **kw: calls.append(kw) or quiet_best_partners(*args, **kw))
        fast = bootstrap_ci(a, b, row_doc, SETTINGS, BootstrapOptions(rule="first_index", n_boot=4))
        assert len(calls) == 1 and calls[0]["m"] == BOOT_CANDIDATES
        exact = bootstrap_ci(a, b, row_doc, SETTINGS, BootstrapOptions(rule="first_index", n_boot=4), exact=True)
        assert len(calls) == 1 + 1 + 4
        assert fast.observed == exact.observed == compare_pair(a, b, SETTINGS.replace(rules=("first_index",)))[0]
        assert list(fast.samples["n_tokens"]) == list(exact.samples["n_tokens"])

    def test_compat_takes_the_exact_path_and_dense_codes_search_once(self, planted, row_doc, monkeypatch):
        a, b = layers_from(planted)
        calls = []
        monkeypatch.setattr(bootstrap, "quiet_best_partners",
                            lambda *args, **kw: calls.append(kw) or quiet_best_partners(*args, **kw))
        dense_a, dense_b = (replace(layer, codes=layer.codes.toarray()) for layer in (a, b))
        dense = bootstrap_ci(dense_a, dense_b, row_doc, NULL_SETTINGS, BootstrapOptions(rule="first_index", n_boot=2))
        assert len(calls) == 1  # resamples follow from the per-document moments
        bootstrap_ci(a, b, row_doc, SETTINGS.replace(compat=True), BootstrapOptions(rule="first_index", n_boot=2))
        assert len(calls) == 1 + (1 + 2)
        exact = bootstrap_ci(dense_a, dense_b, row_doc, NULL_SETTINGS, BootstrapOptions(rule="first_index", n_boot=2),
                             exact=True)
        pd.testing.assert_frame_equal(dense.samples, exact.samples, rtol=0, atol=1e-9)

    def test_dense_moments_equal_the_exact_dense_path(self):
        # Raw neurons: dense, of any sign, every pair correlated a little.
        rng = np.random.default_rng(3)
        a = rng.standard_normal((3000, 7)) + 2.0
        b = a[:, [4, 0, 6, 2, 1, 5]] * rng.uniform(0.5, 2, 6) + 0.8 * rng.standard_normal((3000, 6)) - 1.0
        row_doc = np.arange(3000) // 30
        moments = DenseDocumentMoments(a, b, row_doc)
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
            bootstrap_ci(a, b, row_doc, SETTINGS, BootstrapOptions(rule="first_index", n_boot=2, candidates=0))
