"""Tests for saesim.compare.synthetic: planted pairs are well formed, deterministic and recoverable."""

import dataclasses
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from saesim.compare.corr import best_partners
from saesim.compare.match import Pairs, pair
from saesim.compare.synthetic import PlantedPair, Recovery, planted_pair

MIN_RECALL = 0.95
"""Acceptance: fraction of planted pairs mutual / hungarian must recover at the defaults."""

MIN_DECODER_COSINE = 0.95
"""Mean cosine between mapped shared rows of A and their B rows at noise 0.1."""

NULL_MAX_RECALL = 0.02
"""Largest recall tolerated when the token rows of B are shuffled."""

SMALL = dict(n_tokens=3000, n_latents_a=96, n_latents_b=128, d_a=16, d_b=24, n_shared=48, k=8)


def quiet_best_partners(planted, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rare latents may be dead at small n_tokens
        return best_partners(planted.codes_a, planted.codes_b, **kwargs)


@pytest.fixture(scope="module")
def default_planted():
    return planted_pair()


@pytest.fixture(scope="module")
def default_best(default_planted):
    return quiet_best_partners(default_planted, m=8)


class TestPlantedPair:
    def test_shapes_and_types(self):
        p = planted_pair(**SMALL, seed=3)
        assert isinstance(p, PlantedPair)
        assert p.codes_a.shape == (3000, 96) and p.codes_b.shape == (3000, 128)
        for codes in (p.codes_a, p.codes_b):
            assert sp.isspmatrix_csr(codes) and codes.dtype == np.float32
            assert codes.data.min() > 0
            assert codes.getnnz(axis=1).max() <= p.k
            assert codes.has_sorted_indices
        assert p.W_a.shape == (96, 16) and p.W_b.shape == (128, 24) and p.W_a.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(p.W_a, axis=1), 1, rtol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(p.W_b, axis=1), 1, rtol=1e-6)
        assert p.shared_a.dtype == np.int64 and p.n_shared == 48
        assert np.all(np.diff(p.shared_a) > 0) and np.unique(p.shared_b).size == 48
        assert p.map_ab.shape == (16, 24)
        np.testing.assert_allclose(p.map_ab @ p.map_ab.T, np.eye(16), atol=1e-12)

    def test_topk_binds_at_defaults(self, default_planted):
        # Some tokens hit the TopK limit: the truncation is part of the model.
        assert default_planted.codes_b.getnnz(axis=1).max() == default_planted.k

    def test_frequencies_are_heavy_tailed(self, default_planted):
        f = default_planted.frequency_b
        assert f.max() / f.min() > 30
        assert default_planted.codes_a.getnnz(axis=0).min() >= 5  # every latent fires at defaults

    def test_same_seed_same_arrays(self):
        p, q = planted_pair(**SMALL, seed=5), planted_pair(**SMALL, seed=5)
        for name in ("codes_a", "codes_b"):
            x, y = getattr(p, name), getattr(q, name)
            assert np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices)
            assert np.array_equal(x.data, y.data)
        for name in ("W_a", "W_b", "shared_a", "shared_b", "map_ab", "frequency_a"):
            assert np.array_equal(getattr(p, name), getattr(q, name))
        assert p.seed == 5

    def test_other_seed_other_arrays(self):
        p, q = planted_pair(**SMALL, seed=5), planted_pair(**SMALL, seed=6)
        assert not np.array_equal(p.shared_b, q.shared_b) or not np.array_equal(p.W_a, q.W_a)

    def test_generator_seed_accepted(self):
        p = planted_pair(**SMALL, seed=np.random.default_rng(1))
        assert p.seed is None and p.n_shared == 48

    @pytest.mark.parametrize("rule", ["mutual", "hungarian"])
    def test_recovers_planted_pairs_at_defaults(self, default_planted, default_best, rule):
        pairs = pair(default_best, rule=rule)
        rec = default_planted.recovery(pairs)
        assert isinstance(rec, Recovery)
        assert rec.n_planted == 256 and rec.recall >= MIN_RECALL

    def test_planted_pairs_are_best_partners(self, default_planted, default_best):
        r = default_best.r[default_planted.shared_b]
        assert np.nanmedian(r) > 0.8
        hit = default_best.index[default_planted.shared_b] == default_planted.shared_a
        assert hit.mean() >= MIN_RECALL

    def test_paired_decoder_rows_are_similar(self, default_planted, default_best):
        p = default_planted
        mapped = p.W_a[p.shared_a].astype(np.float64) @ p.map_ab
        cos = np.sum(mapped * p.W_b[p.shared_b], axis=1)
        assert cos.mean() > MIN_DECODER_COSINE
        # A linear map fitted on the recovered pairs explains the B rows; on shuffled rows it does not.
        X, Y = pair(default_best, rule="hungarian").rows(p.W_a, p.W_b)
        fit = np.linalg.lstsq(X, Y, rcond=None)[0]
        r2 = 1 - np.sum((Y - X @ fit) ** 2) / np.sum((Y - Y.mean(0)) ** 2)
        perm = np.random.default_rng(0).permutation(len(Y))
        fit0 = np.linalg.lstsq(X, Y[perm], rcond=None)[0]
        r2_null = 1 - np.sum((Y[perm] - X @ fit0) ** 2) / np.sum((Y - Y.mean(0)) ** 2)
        assert r2 > 0.7 and r2_null < 0.4

    def test_shuffled_tokens_break_the_correspondence(self, default_planted):
        null = default_planted.shuffled(seed=1)
        assert null.tokens_shuffled and not default_planted.tokens_shuffled
        assert null.codes_b.nnz == default_planted.codes_b.nnz
        best = quiet_best_partners(null, m=4)
        for rule in ("mutual", "hungarian"):
            assert null.recovery(pair(best, rule=rule)).recall <= NULL_MAX_RECALL

    def test_no_shared_latents_is_a_null(self):
        p = planted_pair(**{**SMALL, "n_shared": 0}, seed=2)
        assert p.n_shared == 0 and np.all(p.planted_partner() == -1)
        best = quiet_best_partners(p, m=4)
        rec = p.recovery(pair(best, rule="mutual"))
        assert np.isnan(rec.recall) and rec.n_found == 0
        assert np.nanmax(best.r) < 0.6

    def test_more_noise_recovers_less(self):
        recall = []
        for noise in (0.1, 1.2):
            p = planted_pair(**SMALL, noise=noise, seed=4)
            recall.append(p.recovery(pair(quiet_best_partners(p, m=4), rule="mutual")).recall)
        assert recall[0] > recall[1]

    def test_wider_a_than_b_uses_a_projection(self):
        p = planted_pair(**{**SMALL, "d_a": 24, "d_b": 16}, seed=0)
        np.testing.assert_allclose(p.map_ab.T @ p.map_ab, np.eye(16), atol=1e-12)

    def test_recovery_counts(self):
        p = planted_pair(**SMALL, seed=0)
        a, b = p.shared_a[:3], p.shared_b[:3]
        pairs = Pairs(a=np.r_[a, 0], b=np.r_[b, np.setdiff1d(np.arange(128), p.shared_b)[0]],
                      r=np.ones(4), rule="x", direction="b_to_a", r_min=0.1, n_a=96, n_b=128)
        rec = p.recovery(pairs)
        assert (rec.n_found, rec.n_pairs) == (3, 4)
        assert rec.recall == pytest.approx(3 / 48) and rec.precision == pytest.approx(0.75)

    def test_result_is_frozen(self):
        p = planted_pair(**SMALL, seed=0)
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.k = 3

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(n_shared=200), r"`n_shared`=200 exceeds the smaller dictionary \(96"),
            (dict(k=500), "`k`=500 exceeds the smaller dictionary"),
            (dict(noise=-0.1), r"`noise` must be a finite number in \[0, 2\)"),
            (dict(noise=float("nan")), "`noise` must be a finite number"),
            (dict(n_tokens=0), "`n_tokens` must be a positive integer"),
            (dict(d_a=2.5), "`d_a` must be a positive integer"),
            (dict(n_shared=-1), "`n_shared` must be a non-negative integer"),
        ],
    )
    def test_bad_arguments_raise(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            planted_pair(**{**SMALL, **kwargs})

    def test_bad_seed_raises(self):
        with pytest.raises(TypeError, match="`seed` must be an int"):
            planted_pair(**SMALL, seed="zero")
