"""Tests for saesim.compare.stability: seed stability of two SAEs of one layer, on planted dictionaries."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from saesim.compare.stability import (
    SHARED_THRESHOLD,
    activation_stability,
    chance_level,
    correlation_matrix,
    cosine_matrix,
    hungarian,
    sae_stability,
)


def _dictionary(rng, n, d):
    return rng.standard_normal((n, d))


def _codes(rng, n_tokens, n_latents, density=0.1):
    """Non-negative sparse codes in which every latent fires at least once."""
    codes = sp.random(n_tokens, n_latents, density=density, random_state=rng, format="lil",
                      data_rvs=lambda size: rng.exponential(size=size) + 0.1)
    for j, row in enumerate(rng.integers(n_tokens, size=n_latents)):
        codes[row, j] = 1.0
    return codes.tocsr()


class TestPlantedDecoders:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_permuted_rows_are_fully_shared(self, seed):
        rng = np.random.default_rng(seed)
        w = _dictionary(rng, 96, 32)
        perm = rng.permutation(96)
        res = sae_stability(w, 3.0 * w[perm], encoder_a=w, encoder_b=w[perm], seed=seed)
        assert res.pw_mcc == pytest.approx(1.0, abs=1e-12)
        assert res.shared_dec == 1.0 and res.shared_dec_enc == 1.0
        assert res.n_shared_dec == res.n_shared_dec_enc == 96
        # the matching is the planted permutation: row i of A is row perm^-1(i) of B
        assert np.array_equal(perm[res.b_index], res.a_index)
        assert np.array_equal(res.a_index, np.arange(96))

    @pytest.mark.parametrize("sigma", [0.3, 0.5])
    def test_noise_of_known_size_gives_the_expected_cosine(self, sigma):
        rng = np.random.default_rng(1)
        n, d = 128, 512
        w = _dictionary(rng, n, d)
        perm = rng.permutation(n)
        noisy = w[perm] + sigma * rng.standard_normal((n, d))
        res = sae_stability(w, noisy, seed=0)
        # E cos(w, w + sigma e) = 1 / sqrt(1 + sigma^2) up to O(1/d)
        assert res.pw_mcc == pytest.approx(1 / np.sqrt(1 + sigma**2), abs=0.01)
        planted = np.einsum("ij,ij->i", w[perm], noisy) / (np.linalg.norm(w[perm], axis=1)
                                                           * np.linalg.norm(noisy, axis=1))
        assert res.pw_mcc == pytest.approx(planted.mean(), abs=1e-12)  # the planted pairs are the matching
        assert res.shared_dec == 1.0

    def test_random_dictionaries_sit_at_the_chance_level(self):
        rng = np.random.default_rng(3)
        res = sae_stability(_dictionary(rng, 256, 64), _dictionary(rng, 256, 64), seed=0)
        assert res.pw_mcc < 0.5  # well below the 0.7 of a shared latent
        assert res.shared_dec <= 0.01
        assert res.chance_shared_dec <= 0.01
        assert res.pw_mcc == pytest.approx(res.chance_pw_mcc, abs=0.02)

    def test_chance_level_is_far_below_a_planted_share(self):
        mcc, shared = chance_level(256, 256, 64, seed=0)
        assert 0.2 < mcc < 0.5 and shared == 0.0
        rng = np.random.default_rng(4)
        w = _dictionary(rng, 256, 64)
        res = sae_stability(w, w + 0.3 * rng.standard_normal(w.shape), seed=0)
        assert res.chance_pw_mcc == mcc and res.chance_shared_dec == shared
        assert res.pw_mcc > res.chance_pw_mcc + 0.4

    def test_encoders_that_disagree_lower_the_shared_fraction(self):
        rng = np.random.default_rng(5)
        dec = _dictionary(rng, 100, 48)
        enc_a = _dictionary(rng, 100, 48)
        enc_b = enc_a.copy()
        enc_b[50:] = _dictionary(rng, 50, 48)  # half the encoders point elsewhere
        res = sae_stability(dec, dec, encoder_a=enc_a, encoder_b=enc_b, seed=0)
        assert res.shared_dec == 1.0
        assert res.shared_dec_enc == pytest.approx(0.5)
        assert res.n_shared_dec_enc == 50
        assert np.all(res.encoder_cosine[:50] == pytest.approx(1.0))
        assert np.all(res.encoder_cosine[50:] < SHARED_THRESHOLD)

    def test_without_encoders_the_encoder_criterion_is_nan(self):
        w = np.eye(4)
        res = sae_stability(w, w, chance=False)
        assert np.isnan(res.shared_dec_enc) and res.n_shared_dec_enc is None and res.encoder_cosine is None
        assert np.isnan(res.chance_pw_mcc) and np.isnan(res.act_mcc) and res.seed is None

    def test_rectangular_dictionaries_share_over_the_smaller_one(self):
        rng = np.random.default_rng(6)
        big = _dictionary(rng, 80, 64)
        small = big[rng.choice(80, 40, replace=False)]
        for x, y in ((small, big), (big, small)):
            res = sae_stability(x, y, seed=0)
            assert (res.n_a, res.n_b) == (x.shape[0], y.shape[0])
            assert res.a_index.size == 40
            assert res.shared_dec == 1.0 and res.pw_mcc == pytest.approx(1.0)

    def test_zero_rows_have_no_direction(self):
        w = np.eye(3)
        z = w.copy()
        z[2] = 0.0
        res = sae_stability(w, z, chance=False)
        assert res.n_zero_b == 1 and res.n_shared_dec == 2
        assert res.pw_mcc == pytest.approx(2 / 3)


class TestHungarian:
    @pytest.mark.parametrize("shape", [(5, 5), (4, 6), (6, 3)])
    def test_optimal_against_brute_force(self, shape):
        rng = np.random.default_rng(sum(shape))
        sim = rng.uniform(-1, 1, shape)
        rows, cols, values = hungarian(sim)
        n_r, n_c = shape
        if n_r <= n_c:
            best = max(sum(sim[i, j] for i, j in zip(range(n_r), p)) for p in itertools.permutations(range(n_c), n_r))
        else:
            best = max(sum(sim[i, j] for i, j in zip(p, range(n_c))) for p in itertools.permutations(range(n_r), n_c))
        assert values.sum() == pytest.approx(best, abs=1e-12)
        assert np.array_equal(values, sim[rows, cols])
        assert len(set(rows.tolist())) == len(set(cols.tolist())) == min(shape)
        r2, c2 = linear_sum_assignment(sim, maximize=True)
        assert values.sum() == pytest.approx(sim[r2, c2].sum(), abs=1e-12)

    def test_sorted_by_row(self):
        rows, _, _ = hungarian(np.random.default_rng(0).uniform(size=(7, 9)))
        assert np.array_equal(rows, np.arange(7))

    @pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(3), np.array([[np.nan, 1.0]])])
    def test_rejects_bad_input(self, bad):
        with pytest.raises(ValueError, match="similarity"):
            hungarian(bad)


class TestCorrelations:
    def test_sparse_correlations_equal_numpy(self):
        rng = np.random.default_rng(0)
        a, b = _codes(rng, 300, 12), _codes(rng, 300, 9)
        r, dead_a, dead_b = correlation_matrix(a, b, chunk_rows=70)
        want = np.corrcoef(a.toarray().T, b.toarray().T)[:12, 12:]
        assert np.allclose(r, want, atol=1e-10)
        assert not dead_a.any() and not dead_b.any()
        # dense input (and codes with negative values) take the dense path: the same numbers
        r_dense, _, _ = correlation_matrix(a.toarray(), b.toarray())
        assert np.allclose(r_dense, want, atol=1e-10)
        r_neg, _, _ = correlation_matrix(-a, b)
        assert np.allclose(r_neg, -want, atol=1e-10)

    def test_dead_latents_correlate_with_nothing(self):
        rng = np.random.default_rng(1)
        a = _codes(rng, 200, 6).tolil()
        a[:, 2] = 0.0
        a = a.tocsr()
        a.eliminate_zeros()
        r, dead_a, _ = correlation_matrix(a, a)
        assert dead_a.tolist() == [False, False, True, False, False, False]
        assert np.all(r[2] == 0) and np.all(r[:, 2] == 0)
        res = activation_stability(a, a)
        assert res.n_dead_a == res.n_dead_b == 1
        assert res.n_shared_act == 5 and res.act_mcc == pytest.approx(5 / 6)

    def test_permuted_scaled_codes_are_fully_shared(self):
        rng = np.random.default_rng(2)
        a = _codes(rng, 500, 40)
        perm = rng.permutation(40)
        res = activation_stability(a, a[:, perm] * 2.5)
        assert res.act_mcc == pytest.approx(1.0) and res.shared_act == 1.0
        assert np.array_equal(perm[res.b_index], res.a_index)

    def test_independent_codes_share_nothing(self):
        rng = np.random.default_rng(3)
        res = activation_stability(_codes(rng, 2000, 30), _codes(rng, 2000, 30))
        assert res.shared_act == 0.0 and res.act_mcc < 0.2

    def test_activation_side_of_sae_stability(self):
        rng = np.random.default_rng(4)
        w = _dictionary(rng, 20, 16)
        codes = _codes(rng, 400, 20)
        res = sae_stability(w, w, codes_a=codes, codes_b=codes, seed=0)
        assert res.act_mcc == pytest.approx(1.0) and res.shared_act == 1.0
        assert res.n_tokens == 400 and res.activation is not None
        assert res.activation.to_dict()["n_shared_act"] == 20

    def test_rejects_codes_on_other_rows(self):
        rng = np.random.default_rng(5)
        with pytest.raises(ValueError, match="rows"):
            correlation_matrix(_codes(rng, 50, 4), _codes(rng, 60, 4))


class TestResult:
    def test_deterministic_for_a_seed(self):
        rng = np.random.default_rng(6)
        x, y = _dictionary(rng, 64, 16), _dictionary(rng, 64, 16)
        one, two = sae_stability(x, y, seed=7), sae_stability(x, y, seed=7)
        np.testing.assert_equal(one.to_dict(), two.to_dict())  # NaN (no encoders, no codes) equal to NaN
        assert one.seed == 7
        other = sae_stability(x, y, seed=8)
        assert other.chance_pw_mcc != one.chance_pw_mcc
        assert other.pw_mcc == one.pw_mcc  # only the chance level depends on the seed
        assert chance_level(64, 64, 16, seed=7) == (one.chance_pw_mcc, one.chance_shared_dec)

    def test_to_dict_is_one_flat_row(self):
        w = np.eye(5)
        row = sae_stability(w, w, encoder_a=w, encoder_b=w, codes_a=sp.csr_matrix(np.eye(5)),
                            codes_b=sp.csr_matrix(np.eye(5)), seed=0).to_dict()
        for key in ("pw_mcc", "shared_dec", "shared_dec_enc", "chance_pw_mcc", "chance_shared_dec", "act_mcc",
                    "shared_act", "n_a", "n_b", "d", "threshold", "seed"):
            assert key in row
        assert not any(isinstance(v, np.ndarray) for v in row.values())

    def test_the_arrays_are_read_only(self):
        res = sae_stability(np.eye(3), np.eye(3), chance=False)
        with pytest.raises(ValueError):
            res.cosine[0] = 0.0

    def test_cosine_matrix(self):
        c = cosine_matrix([[2.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, -3.0]])
        assert np.allclose(c, [[1 / np.sqrt(2), 0.0], [0.0, 0.0]])


class TestErrors:
    def test_decoders_of_different_widths(self):
        with pytest.raises(ValueError, match="same residual width"):
            sae_stability(np.eye(3), np.eye(4))

    @pytest.mark.parametrize("threshold", [0, 1.5, -0.1, True, "0.7"])
    def test_threshold_outside_the_unit_interval(self, threshold):
        with pytest.raises(ValueError, match="threshold"):
            sae_stability(np.eye(3), np.eye(3), threshold=threshold)

    def test_one_encoder_without_the_other(self):
        with pytest.raises(ValueError, match="encoder_a"):
            sae_stability(np.eye(3), np.eye(3), encoder_a=np.eye(3))

    def test_encoder_of_the_wrong_shape(self):
        with pytest.raises(ValueError, match="one encoder row per latent"):
            sae_stability(np.eye(3), np.eye(3), encoder_a=np.eye(3), encoder_b=np.eye(3)[:2])

    def test_codes_of_the_wrong_width(self):
        codes = sp.csr_matrix(np.eye(4))
        with pytest.raises(ValueError, match="latents"):
            sae_stability(np.eye(3), np.eye(3), codes_a=codes, codes_b=codes)

    def test_non_finite_decoder(self):
        w = np.eye(3)
        w[0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            sae_stability(w, np.eye(3))
