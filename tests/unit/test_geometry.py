"""Tests for saesim.compare.geometry: dense oracles, the authors' code, planted answers, edge cases."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from scipy.spatial.distance import squareform
from scipy.stats import spearmanr

from saesim.compare import _permuted, geometry, subspace
from saesim.compare.geometry import (
    MEASURES,
    RSM_DECIMALS,
    DegenerateInputWarning,
    PreparedMeasure,
    SimilarityResult,
    linear_cka,
    prepare,
    procrustes,
    pwcca,
    rsa,
    similarity,
    svcca,
)
from tests.authors_reference import authors_rsa, authors_svcca

TOL = 1e-10
"""Agreement with float64 oracles computed along a different route."""

CCA_ORACLE_TOL = 1e-7
"""Agreement with the covariance / matrix-square-root CCA oracle (squares the condition number)."""

AUTHORS_TOL = 1e-8
"""Agreement with the authors' cca_core path (its 1e-10 ridge on rescaled covariances)."""

CONTROL_MAX = 0.95
"""A control transform the measure is not invariant to must score below this."""

SCORES_TOL = 1e-5
"""Batched float32 ``scores(perms)`` against the float64 ``score(perm)`` of each permutation."""


def cloud(seed, n=120, d=10, rank=None):
    """Gaussian rows, optionally of rank ``rank``."""
    rng = np.random.default_rng(seed)
    if rank is None:
        return rng.standard_normal((n, d))
    return rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d))


def unit_rows(z):
    """Rows scaled to unit norm, like SAE decoder rows."""
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def isometry(x, seed, d_out=None):
    """x mapped by an orthonormal map into d_out >= d dims, columns then shuffled."""
    d = x.shape[1]
    d_out = d_out or d
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d_out, d_out)))
    return (x @ q[:d])[:, rng.permutation(d_out)]


def pc_scores(z, k):
    u, s, _ = np.linalg.svd(z - z.mean(0), full_matrices=False)
    return u[:, :k] * s[:k]


def cca_oracle(a, b):
    """Canonical correlations from covariances and inverse matrix square roots, descending."""
    a, b = a - a.mean(0), b - b.mean(0)
    whiten_a = np.linalg.inv(scipy.linalg.sqrtm(a.T @ a))
    whiten_b = np.linalg.inv(scipy.linalg.sqrtm(b.T @ b))
    return np.linalg.svd(np.real(whiten_a @ (a.T @ b) @ whiten_b), compute_uv=False)


def pearson_rsm(z):
    return squareform(np.corrcoef(z), checks=False)


def scaled_to_total_variance(z, total):
    """z rescaled so that the sum of its squared centred entries is ``total``."""
    return z * np.sqrt(total / np.sum((z - z.mean(0)) ** 2))


class TestSvcca:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("variance", [0.9, 0.99])
    def test_k_is_fewest_components_reaching_the_variance(self, seed, variance):
        x, y = unit_rows(cloud(seed, d=12)), unit_rows(cloud(seed + 10, d=9))
        result = svcca(x, y, variance=variance)
        for z, k in ((x, result.k_x), (y, result.k_y)):
            s = np.linalg.svd(z - z.mean(0), compute_uv=False)
            share = np.cumsum(s**2) / np.sum(s**2)
            assert k == int(np.argmax(share >= variance)) + 1
        assert result.extras["variance"] == variance

    @pytest.mark.parametrize("seed", [0, 3])
    def test_canonical_correlations_match_cca_of_kept_pc_scores(self, seed):
        x = cloud(seed, d=12)
        y = cloud(seed + 5, d=8) + 0.5 * x[:, :8]
        result = svcca(x, y, variance=0.95)
        rho = cca_oracle(pc_scores(x, result.k_x), pc_scores(y, result.k_y))
        assert result.canonical_correlations.shape == (min(result.k_x, result.k_y),)
        np.testing.assert_allclose(result.canonical_correlations, rho, atol=CCA_ORACLE_TOL)
        assert result.statistic == pytest.approx(rho.mean(), abs=CCA_ORACLE_TOL)

    def test_int_variance_keeps_that_many_components(self):
        result = svcca(cloud(6, d=10), cloud(7, d=10), variance=3)
        assert (result.k_x, result.k_y) == (3, 3)
        assert result.canonical_correlations.shape == (3,)

    def test_k_is_capped_at_rank_and_pairs_minus_one(self):
        wide = svcca(cloud(10, n=5, d=20), cloud(11, n=5, d=20), variance=1.0)
        assert (wide.k_x, wide.k_y) == (4, 4)
        low_rank = svcca(cloud(12, d=10, rank=3), cloud(13, d=10), variance=50)
        assert (low_rank.k_x, low_rank.k_y) == (3, 10)

    @pytest.mark.parametrize("seed", [0, 1])
    def test_isometric_copy_with_other_width_gives_one(self, seed):
        x = cloud(seed, d=6)
        result = svcca(x, 3.0 * isometry(x, seed + 1, d_out=11) - 2.0)
        assert result.k_x == result.k_y
        assert result.statistic == pytest.approx(1.0, abs=TOL)

    def test_full_variance_is_invariant_to_invertible_maps_but_not_to_nonlinear_ones(self):
        x = cloud(2, d=5)
        mixing = np.random.default_rng(3).standard_normal((5, 5))
        assert svcca(x, x @ mixing, variance=1.0).statistic == pytest.approx(1.0, abs=TOL)
        assert svcca(x, np.tanh(2 * x) ** 2, variance=1.0).statistic < CONTROL_MAX

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_compat_keeps_one_component_and_is_abs_corr_of_pc1(self, seed):
        x = unit_rows(cloud(seed, n=300, d=16))
        y = unit_rows(isometry(x, seed + 1, d_out=20) + 0.3 * cloud(seed + 2, n=300, d=20))
        result = svcca(x, y, compat=True)
        identity = abs(np.corrcoef(pc_scores(x, 1)[:, 0], pc_scores(y, 1)[:, 0])[0, 1])
        assert (result.k_x, result.k_y, result.compat) == (1, 1, True)
        assert result.statistic == pytest.approx(identity, abs=TOL)

    @pytest.mark.parametrize("total_variance", [None, 1.0, 0.9, 0.5])
    def test_compat_matches_the_authors_code(self, total_variance):
        """Unit rows (k = 1), and small total variances where the buggy rule keeps k > 1."""
        x, y = unit_rows(cloud(4, n=80, d=6)), unit_rows(cloud(5, n=80, d=9))
        if total_variance is not None:
            x, y = scaled_to_total_variance(x, total_variance), scaled_to_total_variance(y, total_variance)
        result = svcca(x, y, compat=True)
        assert result.statistic == pytest.approx(authors_svcca(x, y), abs=AUTHORS_TOL)
        if total_variance in (0.9, 0.5):
            assert result.k_x > 1 and result.k_y > 1

    def test_corrected_keeps_many_components_where_compat_keeps_one(self):
        x, y = unit_rows(cloud(8, n=500, d=32)), unit_rows(cloud(9, n=500, d=32))
        corrected, compat = svcca(x, y), svcca(x, y, compat=True)
        assert corrected.k_x > 25 and compat.k_x == 1
        assert corrected.statistic > 5 * compat.statistic

    def test_two_rows_give_one(self):
        result = svcca(cloud(0, n=2, d=3), cloud(1, n=2, d=4))
        assert (result.k_x, result.k_y) == (1, 1)
        assert result.statistic == pytest.approx(1.0, abs=TOL)

    def test_constant_column_changes_nothing(self):
        x, y = cloud(3, d=5), cloud(4, d=7)
        with_constant = np.column_stack([x, np.full(len(x), 2.5)])
        assert svcca(with_constant, y).statistic == pytest.approx(svcca(x, y).statistic, abs=TOL)

    def test_identical_rows_warn_and_give_nan(self):
        with pytest.warns(DegenerateInputWarning, match="svcca: all rows of x or of y are identical"):
            result = svcca(np.ones((6, 3)), cloud(0, n=6, d=3))
        assert np.isnan(result.statistic) and result.k_x == 0

    @pytest.mark.parametrize(
        "variance, error, match",
        [
            (1.5, ValueError, r"`variance` as a float .* must lie in \(0, 1\]"),
            (0.0, ValueError, r"`variance` as a float .* must lie in \(0, 1\]"),
            (0, ValueError, r"`variance` as an int is the number of components and must be >= 1"),
            ("all", ValueError, r"`variance` as a string must be 'ratio:R' with R > 0"),
            ("ratio:0", ValueError, r"`variance` as a string must be 'ratio:R' with R > 0"),
            ("ratio:x", ValueError, r"`variance` as a string must be 'ratio:R' with R > 0"),
            (None, TypeError, r"`variance` must be a float in \(0, 1\] .* an int >= 1"),
            (True, TypeError, r"`variance` must be a float"),
        ],
    )
    def test_bad_variance_is_named(self, variance, error, match):
        x = cloud(0, n=10, d=3)
        with pytest.raises(error, match=match):
            svcca(x, x, variance=variance)

    def test_compat_refuses_another_variance(self):
        x = cloud(0, n=10, d=3)
        with pytest.raises(ValueError, match=r"cannot be combined with compat=True"):
            svcca(x, x, variance=0.9, compat=True)


def pwcca_oracle(a, b):
    """PWCCA straight from Morcos et al. (2018), Eq. (2), via covariance-whitened CCA.

    Canonical weights ``w_i = Sigma_aa^{-1/2} u_i`` of the side with fewer columns give the
    canonical variates ``h_i = A_c w_i`` (normalised); ``alpha_i = sum_j |<h_i, a_j>|`` over its
    centred columns ``a_j``; PWCCA = sum alpha_i rho_i / sum alpha_i.
    """
    if a.shape[1] > b.shape[1]:
        a, b = b, a
    a, b = a - a.mean(0), b - b.mean(0)
    whiten_a = np.real(np.linalg.inv(scipy.linalg.sqrtm(a.T @ a)))
    whiten_b = np.real(np.linalg.inv(scipy.linalg.sqrtm(b.T @ b)))
    u, rho, _ = np.linalg.svd(whiten_a @ (a.T @ b) @ whiten_b, full_matrices=False)
    variates = a @ (whiten_a @ u)
    variates /= np.linalg.norm(variates, axis=0)
    alpha = np.abs(variates.T @ a).sum(axis=1)
    return float(np.sum(alpha * rho) / alpha.sum())


class TestDimensionPolicy:
    @pytest.mark.parametrize("n, ratio, expected", [(120, 10, 12), (120, 12.5, 9), (120, 200, 1), (30, 1, 30)])
    def test_ratio_keeps_n_over_ratio_components(self, n, ratio, expected):
        x, y = cloud(0, n=n, d=9), cloud(1, n=n, d=12)
        result = svcca(x, y, variance=f"ratio:{ratio}")
        # capped at the rank (9 for x) and n - 1
        assert result.k_x == min(expected, 9, n - 1)
        assert result.k_y == min(expected, 12, n - 1)
        assert result.n_pairs == n
        assert result.extras["variance"] == f"ratio:{ratio:g}"
        assert result.extras["pairs_per_dim"] == pytest.approx(n / max(result.k_x, result.k_y))

    def test_ratio_equals_the_same_fixed_k(self):
        x, y = cloud(0, n=200, d=30), cloud(1, n=200, d=40)
        assert svcca(x, y, variance="ratio:20").statistic == pytest.approx(svcca(x, y, variance=10).statistic,
                                                                            abs=TOL)

    def test_few_pairs_per_dimension_inflate_unrelated_clouds(self):
        # Why the ratio policy exists: unrelated clouds look similar when k is close to n.
        x, y = cloud(0, n=60, d=50), cloud(1, n=60, d=50)
        assert svcca(x, y, variance=1.0).statistic > 0.6
        assert svcca(x, y, variance="ratio:10").statistic < svcca(x, y, variance=1.0).statistic

    def test_ratio_counts_a_hub_sides_distinct_rows(self):
        # Many-to-1: 240 pairs on 40 distinct hub rows. The hub side keeps 40 / 5 = 8 dimensions,
        # the other side 240 / 5 = 48; the score is the oracle's on those bases.
        rng = np.random.default_rng(3)
        hubs = rng.integers(0, 40, size=240)
        hubs[:40] = np.arange(40)  # every partner is used
        x = cloud(0, n=40, d=30)[hubs]
        y = cloud(1, n=240, d=60)
        y[:, :30] += x
        result = svcca(x, y, variance="ratio:5")
        assert (result.k_x, result.k_y) == (8, 48)

        def kept_basis(z, k):
            u = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)[0]
            return u[:, :k]

        oracle = np.linalg.svd(kept_basis(x, 8).T @ kept_basis(y, 48), compute_uv=False).mean()
        assert result.statistic == pytest.approx(oracle, abs=TOL)

    def test_distinct_rows_are_counted_exactly(self):
        rng = np.random.default_rng(4)
        z = rng.integers(0, 2, size=(200, 3)).astype(np.float64)  # many exact repeats
        assert subspace.n_distinct_rows(z) == len({tuple(row) for row in z})
        assert subspace.n_distinct_rows(z[:1]) == 1
        z[1] = z[0] + 1e-12  # different bytes, a different row
        assert subspace.n_distinct_rows(z[:2]) == 2

    def test_ratio_refused_in_compat_mode(self):
        x = cloud(0, n=20, d=3)
        with pytest.raises(ValueError, match=r"cannot be combined with compat=True"):
            svcca(x, x, variance="ratio:5", compat=True)


class TestPwcca:
    @pytest.mark.parametrize("n, d_x, d_y", [(200, 6, 9), (300, 12, 8), (150, 5, 5)])
    def test_matches_the_paper_formula(self, n, d_x, d_y):
        x, y = cloud(0, n=n, d=d_x), cloud(1, n=n, d=d_y)
        m = min(d_x, d_y)
        y[:, :m] += 0.7 * x[:, :m] @ np.random.default_rng(2).standard_normal((m, m))
        result = pwcca(x, y)
        assert result.statistic == pytest.approx(pwcca_oracle(x, y), abs=CCA_ORACLE_TOL)
        assert result.k_x == d_x and result.k_y == d_y and result.n_pairs == n
        assert result.extras["weighted_side"] == ("x" if d_x <= d_y else "y")

    def test_weighting_differs_from_the_plain_mean(self):
        x, y = cloud(0, n=200, d=6), cloud(1, n=200, d=6)
        y[:, 0] += 3 * x[:, 0] * 1.0
        x[:, 0] *= 10  # the well-correlated direction carries most of x
        plain = np.mean(cca_oracle(x, y))
        assert pwcca(x, y).statistic > plain + 0.1

    def test_invariant_to_isometry_and_is_one_on_itself(self):
        x = cloud(0, n=100, d=6)
        assert pwcca(x, isometry(x, 1, d_out=9)).statistic == pytest.approx(1.0, abs=1e-8)

    def test_range_and_degenerate(self):
        x, y = cloud(0, n=50, d=4), cloud(1, n=50, d=5)
        assert 0.0 <= pwcca(x, y).statistic <= 1.0
        with pytest.warns(DegenerateInputWarning):
            assert np.isnan(pwcca(np.ones((10, 3)), y[:10]).statistic)

    def test_in_the_registry(self):
        assert MEASURES["pwcca"].options == ("variance",)
        assert MEASURES["pwcca"].higher_is_similar


class TestRsa:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_matches_scipy_spearman_of_the_rsm_upper_triangles(self, seed):
        x, y = cloud(seed, n=40, d=7), cloud(seed + 1, n=40, d=5)
        y[:, :3] += x[:, :3]
        oracle = spearmanr(pearson_rsm(x), pearson_rsm(y)).statistic
        assert rsa(x, y).statistic == pytest.approx(oracle, abs=TOL)

    def test_exact_ties_get_average_ranks_like_scipy(self):
        x = np.round(cloud(3, n=30, d=4))
        y = np.round(cloud(4, n=30, d=4)) + x
        tied_x, tied_y = np.round(pearson_rsm(x), RSM_DECIMALS), np.round(pearson_rsm(y), RSM_DECIMALS)
        assert len(np.unique(tied_x)) < len(tied_x)
        oracle = spearmanr(tied_x, tied_y).statistic
        assert rsa(x, y).statistic == pytest.approx(oracle, abs=TOL)

    @pytest.mark.parametrize("decimals", [12, 2, 0])
    def test_average_ranks_equal_scipy_rankdata_of_the_rounded_values(self, decimals):
        rng = np.random.default_rng(decimals)
        values = np.concatenate([rng.uniform(-1, 1, 5000), np.full(7, 0.25), [-1.0, 1.0, 1.0]])
        values = rng.permutation(values)
        expected = scipy.stats.rankdata(np.round(values, decimals))
        np.testing.assert_array_equal(geometry._average_ranks(values, decimals), expected)

    def test_average_ranks_too_wide_to_pack_fall_back_to_scipy(self):
        # 1e15 * 2 needs 51 bits; with 2^14 indices the packed key would need 65.
        values = np.linspace(-1.0, 1.0, 2**14 + 1)
        expected = scipy.stats.rankdata(np.round(values, 15))
        np.testing.assert_array_equal(geometry._average_ranks(values, 15), expected)
        assert geometry._average_ranks(np.zeros(0), 12).shape == (0,)

    def test_matches_the_authors_code(self):
        x, y = cloud(5, n=50, d=6), cloud(6, n=50, d=8)
        y[:, :6] += x
        assert rsa(x, y).statistic == pytest.approx(authors_rsa(x, y), abs=TOL)

    def test_permuted_scaled_shifted_columns_give_one(self):
        x = cloud(5, n=50, d=8)
        y = 3.0 * x[:, np.random.default_rng(0).permutation(8)] + 1.0
        assert rsa(x, y).statistic == pytest.approx(1.0, abs=TOL)

    def test_high_dimensional_rotation_is_near_one_but_low_dimensional_is_not(self):
        """Row-centring is not rotation invariant; it hardly matters when d is large."""
        wide, narrow = cloud(7, n=80, d=64), cloud(8, n=80, d=3)
        assert rsa(wide, isometry(wide, 9, d_out=70)).statistic > 0.97
        assert rsa(narrow, isometry(narrow, 10)).statistic < CONTROL_MAX

    def test_two_rows_are_refused(self):
        with pytest.raises(ValueError, match="have 2 paired rows; at least 3 are needed"):
            rsa(cloud(0, n=2), cloud(1, n=2))

    def test_constant_column_is_allowed(self):
        x = cloud(1, n=20, d=4)
        x[:, 2] = 3.0
        assert np.isfinite(rsa(x, cloud(2, n=20, d=5)).statistic)

    def test_constant_row_warns_and_gives_nan(self):
        x = cloud(1, n=20, d=4)
        x[3] = 2.0
        with pytest.warns(DegenerateInputWarning, match="rsa: a row of x or of y is constant"):
            assert np.isnan(rsa(x, cloud(2, n=20, d=4)).statistic)


class TestLinearCka:
    @pytest.mark.parametrize("n, d_x, d_y", [(60, 9, 4), (12, 30, 25)])
    def test_equals_the_kernel_form(self, n, d_x, d_y):
        x, y = cloud(0, n=n, d=d_x), cloud(2, n=n, d=d_y)
        y[:, 0] += x[:, 0]
        centring = np.eye(n) - 1.0 / n
        k, l = centring @ x @ x.T @ centring, centring @ y @ y.T @ centring
        oracle = np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))
        assert linear_cka(x, y).statistic == pytest.approx(oracle, abs=TOL)

    def test_isometry_scale_and_shift_give_one(self):
        x = cloud(3, d=6)
        assert linear_cka(x, 2.0 * isometry(x, 4, d_out=9) + 5.0).statistic == pytest.approx(1.0, abs=TOL)

    def test_anisotropic_scaling_is_a_control(self):
        x = cloud(4, d=5)
        assert linear_cka(x, x * np.array([10.0, 1.0, 1.0, 1.0, 0.1])).statistic < CONTROL_MAX

    def test_two_rows_give_one(self):
        assert linear_cka(cloud(0, n=2, d=3), cloud(1, n=2, d=5)).statistic == pytest.approx(1.0, abs=TOL)

    def test_constant_column_changes_nothing(self):
        x, y = cloud(3, d=5), cloud(4, d=7)
        with_constant = np.column_stack([x, np.full(len(x), -1.0)])
        assert linear_cka(with_constant, y).statistic == pytest.approx(linear_cka(x, y).statistic, abs=TOL)

    def test_constant_input_warns_and_gives_nan(self):
        with pytest.warns(DegenerateInputWarning, match="linear_cka: x or y has no variance"):
            assert np.isnan(linear_cka(np.ones((5, 3)), cloud(3, n=5, d=3)).statistic)


class TestProcrustes:
    @pytest.mark.parametrize("n, d_x, d_y", [(120, 6, 6), (120, 4, 7), (10, 25, 30)])
    def test_equals_scipy_orthogonal_procrustes_on_zero_padded_inputs(self, n, d_x, d_y):
        x, y = cloud(0, n=n, d=d_x), cloud(1, n=n, d=d_y)
        y[:, :d_x] += x
        width = max(d_x, d_y)
        padded = []
        for z in (x, y):
            centred = z - z.mean(0)
            padded.append(np.pad(centred / np.linalg.norm(centred), ((0, 0), (0, width - z.shape[1]))))
        rotation, _ = scipy.linalg.orthogonal_procrustes(padded[0], padded[1])
        distance = np.linalg.norm(padded[0] @ rotation - padded[1])
        result = procrustes(x, y)
        assert result.statistic == pytest.approx(1.0 - distance**2 / 2.0, abs=TOL)
        assert result.extras["distance"] == pytest.approx(distance, abs=1e-8)

    def test_rotated_padded_scaled_copy_gives_one_and_distance_zero(self):
        x = cloud(2, d=5)
        result = procrustes(x, 4.0 * isometry(x, 3, d_out=8) - 1.0)
        assert result.statistic == pytest.approx(1.0, abs=TOL)
        assert result.extras["distance"] == pytest.approx(0.0, abs=1e-6)

    def test_anisotropic_scaling_is_a_control(self):
        x = cloud(4, d=5)
        assert procrustes(x, x * np.array([10.0, 1.0, 1.0, 1.0, 0.1])).statistic < CONTROL_MAX

    def test_constant_column_changes_nothing(self):
        x, y = cloud(3, d=5), cloud(4, d=7)
        with_constant = np.column_stack([x, np.full(len(x), 7.0)])
        assert procrustes(with_constant, y).statistic == pytest.approx(procrustes(x, y).statistic, abs=TOL)

    def test_constant_input_warns_and_gives_nan(self):
        with pytest.warns(DegenerateInputWarning, match="procrustes: x or y has no variance"):
            assert np.isnan(procrustes(cloud(3, n=5, d=3), np.zeros((5, 2))).statistic)


class TestPrepare:
    @pytest.mark.parametrize(
        "measure, options",
        [("svcca", {}), ("svcca", {"compat": True}), ("svcca", {"variance": 2}),
         ("svcca", {"variance": "ratio:4"}), ("pwcca", {}), ("pwcca", {"variance": 0.9}),
         ("pwcca", {"variance": "ratio:5"}), ("rsa", {}), ("linear_cka", {}), ("procrustes", {})],
    )
    @pytest.mark.parametrize("n, d_x, d_y", [(40, 6, 9), (12, 20, 15)])
    def test_permuted_score_equals_recomputation(self, measure, options, n, d_x, d_y):
        if measure == "pwcca" and options and n < d_x:
            pytest.skip("k_x + k_y > n - 1: canonical correlations tie at 1, PWCCA weights are not unique")
        x, y = cloud(0, n=n, d=d_x), cloud(1, n=n, d=d_y)
        y[:, :min(d_x, d_y)] += x[:, :min(d_x, d_y)]
        prepared = prepare(x, y, measure, **options)
        rng = np.random.default_rng(2)
        for _ in range(5):
            perm = rng.permutation(n)
            assert prepared.score(perm) == pytest.approx(similarity(x, y[perm], measure, **options).statistic,
                                                         abs=TOL)

    @pytest.mark.parametrize("measure", sorted(MEASURES))
    def test_unpermuted_score_is_the_observed_statistic(self, measure):
        x, y = cloud(3, n=30, d=4), cloud(4, n=30, d=5)
        prepared = prepare(x, y, measure)
        assert prepared.n_pairs == 30
        assert prepared.score() == prepared.result().statistic == similarity(x, y, measure).statistic

    def test_unknown_option_names_the_accepted_ones(self):
        x = cloud(0, n=10, d=3)
        with pytest.raises(TypeError, match=r"'rsa' got unknown option\(s\) compat; it accepts: none"):
            prepare(x, x, "rsa", compat=True)
        with pytest.raises(TypeError, match=r"it accepts: variance, compat"):
            prepare(x, x, "svcca", k=3)


def permutations(n, count, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(count)])


def looped_scores(prepared, perms):
    return np.array([prepared.score(perm) for perm in perms])


def paired(n=60, d_x=8, d_y=11, repeats=None, seed=0):
    """Related clouds; ``repeats`` ("x" or "y") makes that side repeat rows, as a many-to-1 pairing."""
    x, y = cloud(seed, n=n, d=d_x), cloud(seed + 1, n=n, d=d_y)
    y[:, :min(d_x, d_y)] += x[:, :min(d_x, d_y)]
    rows = np.random.default_rng(seed + 2).integers(0, n // 3, n)
    if repeats == "x":
        x = x[rows]
    elif repeats == "y":
        y = y[rows]
    return x, y


class TestScores:
    @pytest.mark.parametrize(
        "measure, options",
        [("svcca", {}), ("svcca", {"variance": 0.9}), ("svcca", {"variance": 3}),
         ("svcca", {"variance": "ratio:4"}), ("svcca", {"compat": True}), ("pwcca", {}),
         ("pwcca", {"variance": "ratio:5"}), ("rsa", {}), ("linear_cka", {}), ("procrustes", {})],
    )
    @pytest.mark.parametrize("repeats", [None, "x", "y"])
    def test_batch_equals_looped_float64_scores(self, measure, options, repeats):
        x, y = paired(repeats=repeats)
        prepared = prepare(x, y, measure, **options)
        perms = permutations(60, 9)
        np.testing.assert_allclose(prepared.scores(perms), looped_scores(prepared, perms), rtol=0, atol=SCORES_TOL)

    @pytest.mark.parametrize("repeats", [None, "x"])
    @pytest.mark.parametrize("measure, options", [("svcca", {"variance": 140}), ("pwcca", {"variance": 140}),
                                                  ("procrustes", {})])
    def test_batch_equals_looped_scores_at_large_k(self, measure, options, repeats):
        # k >= 128: SVCCA takes the singular values from the Gram matrix's eigenvalues; Procrustes
        # sums 160 singular values.
        x, y = paired(n=450, d_x=160, d_y=170, repeats=repeats)
        x, y = unit_rows(x), unit_rows(y)
        prepared = prepare(x, y, measure, **options)
        if options:
            assert (prepared.result().k_x, prepared.result().k_y) == (140, 140)
        perms = permutations(450, 6)
        np.testing.assert_allclose(prepared.scores(perms), looped_scores(prepared, perms), rtol=0, atol=SCORES_TOL)

    @pytest.mark.parametrize("d, repeats, kernel", [(4, None, "partial"), (64, None, "PermutedInner"),
                                                    (64, "y", "partial")])
    def test_linear_cka_kernels_agree_with_float64(self, d, repeats, kernel):
        # Few pairs against d_x d_y: permuted Gram matrices; otherwise (also when y repeats its
        # rows, so that the products run over 30 distinct rows) permuted products.
        x, y = paired(n=90, d_x=d, d_y=d + 3, repeats=repeats)
        prepared = prepare(x, y, "linear_cka")
        perms = permutations(90, 7)
        np.testing.assert_allclose(prepared.scores(perms), looped_scores(prepared, perms), rtol=0, atol=SCORES_TOL)
        assert type(prepared._numerators).__name__ == kernel

    @pytest.mark.parametrize("n", [30, 150])
    def test_rsa_batch_with_tied_correlations(self, n):
        rng = np.random.default_rng(2)
        x, y = rng.integers(0, 3, size=(n, 6)), rng.integers(0, 3, size=(n, 5))
        keep = (np.ptp(x, axis=1) > 0) & (np.ptp(y, axis=1) > 0)  # no constant row
        x, y = x[keep], y[keep]
        prepared = prepare(x, y, "rsa")
        perms = permutations(len(x), 8)
        np.testing.assert_allclose(prepared.scores(perms), looped_scores(prepared, perms), rtol=0, atol=SCORES_TOL)

    @pytest.mark.parametrize("scratch_bytes", [1, 40_000])
    @pytest.mark.parametrize("measure", ["svcca", "pwcca", "linear_cka", "procrustes"])
    def test_batches_of_products_keep_the_order(self, monkeypatch, measure, scratch_bytes):
        # 1 byte: one permutation per product batch; 40 kB: batches of 10, the last one partial.
        monkeypatch.setattr(_permuted, "SCRATCH_BYTES", scratch_bytes)  # the batched kernels read it per product
        x, y = paired(repeats="x")
        prepared = prepare(x, y, measure)
        perms = permutations(60, 25)
        np.testing.assert_allclose(prepared.scores(perms), looped_scores(prepared, perms), rtol=0, atol=SCORES_TOL)

    def test_one_permutation_and_a_list(self):
        x, y = paired()
        prepared = prepare(x, y, "svcca")
        perm = np.random.default_rng(0).permutation(60)
        assert prepared.scores([perm.tolist()]).shape == (1,)
        assert prepared.scores([perm])[0] == pytest.approx(prepared.score(perm), abs=SCORES_TOL)

    @pytest.mark.parametrize("measure", sorted(MEASURES))
    def test_degenerate_input_gives_nan(self, measure):
        with pytest.warns(DegenerateInputWarning):
            prepared = prepare(np.ones((12, 4)), cloud(0, n=12, d=3), measure)
        assert np.all(np.isnan(prepared.scores(permutations(12, 3))))

    def test_rsa_with_all_correlations_tied_gives_nan(self):
        with pytest.warns(DegenerateInputWarning, match="tied"):
            prepared = prepare(np.eye(3), cloud(0, n=3, d=4), "rsa")
        assert np.all(np.isnan(prepared.scores(permutations(3, 4))))

    @pytest.mark.parametrize("perms", [np.arange(12), np.zeros((2, 11), dtype=int), np.zeros((2, 12))])
    def test_bad_permutations_are_named(self, perms):
        prepared = prepare(cloud(0, n=12, d=3), cloud(1, n=12, d=3), "linear_cka")
        with pytest.raises(ValueError, match=r"`perms` must be a 2-D integer array of shape \(B, 12\)"):
            prepared.scores(perms)

    def test_default_scores_loop_score(self):
        class FirstIndex(PreparedMeasure):
            measure, n_pairs, degenerate = "rsa", 3, False

            def score(self, perm=None):
                return 0.0 if perm is None else float(perm[0])

        np.testing.assert_array_equal(FirstIndex().scores([[2, 0, 1], [1, 2, 0]]), [2.0, 1.0])


class TestSimilarity:
    @pytest.mark.parametrize(
        "measure, function", [("svcca", svcca), ("rsa", rsa), ("linear_cka", linear_cka), ("procrustes", procrustes)]
    )
    def test_dispatches_by_name(self, measure, function):
        x, y = cloud(0, n=25, d=4), cloud(1, n=25, d=6)
        assert similarity(x, y, measure) == function(x, y)

    def test_unknown_measure_lists_the_valid_names(self):
        x = cloud(0, n=10, d=3)
        with pytest.raises(ValueError, match=r"`measure` must be one of 'linear_cka', 'procrustes', 'pwcca', 'rsa', 'svcca'; "
                                             r"got 'cca'"):
            similarity(x, x, "cca")

    @pytest.mark.parametrize("measure", sorted(MEASURES))
    def test_mismatched_rows_are_named(self, measure):
        x = cloud(0, n=10, d=3)
        with pytest.raises(ValueError, match=r"`y` has 9 rows but `x` has 10"):
            similarity(x, x[:9], measure)

    @pytest.mark.parametrize("measure", sorted(MEASURES))
    def test_nan_is_refused(self, measure):
        x = cloud(0, n=10, d=3)
        bad = x.copy()
        bad[4, 1] = np.nan
        with pytest.raises(ValueError, match=r"`x` contains NaN or infinite values"):
            similarity(bad, x, measure)


class TestMeasures:
    @pytest.mark.parametrize("measure", sorted(MEASURES))
    def test_registry_matches_results_and_ranges(self, measure):
        info = MEASURES[measure]
        assert info.name == measure and info.higher_is_similar
        lo, hi = info.value_range
        for seed in range(3):
            result = similarity(cloud(seed, n=30, d=4), cloud(seed + 5, n=30, d=6), measure)
            assert (result.higher_is_similar, result.value_range) == (info.higher_is_similar, info.value_range)
            assert lo <= result.statistic <= hi


class TestSimilarityResult:
    def test_is_frozen_and_converts_to_a_tidy_row(self):
        result = svcca(cloud(0, n=30, d=4), cloud(1, n=30, d=5))
        with pytest.raises(AttributeError):
            result.statistic = 0.0
        row = result.to_dict()
        assert row == {
            "measure": "svcca", "statistic": result.statistic, "n_pairs": 30, "higher_is_similar": True,
            "value_min": 0.0, "value_max": 1.0, "compat": False, "k_x": result.k_x, "k_y": result.k_y,
            "variance": 0.99, "pairs_per_dim": 30 / max(result.k_x, result.k_y),
        }

    def test_rows_of_different_measures_share_columns(self):
        x = cloud(0, n=30, d=4)
        rows = [similarity(x, x, measure).to_dict() for measure in sorted(MEASURES)]
        shared = set.intersection(*(set(row) for row in rows))
        assert {"measure", "statistic", "n_pairs", "k_x", "k_y", "compat"} <= shared
        assert isinstance(svcca(x, x), SimilarityResult)


def test_corrected_and_authors_svcca_of_one_record_share_one_svd(monkeypatch):
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((60, 9)), rng.standard_normal((60, 7))
    expected = (svcca(x, y).statistic, svcca(x, y, compat=True).statistic)
    subspace.FACTOR_CACHE.clear()
    calls = []
    real_svd = np.linalg.svd

    def counting_svd(a, *args, **kwargs):
        if a.shape[0] == 60:  # the PCA step (the canonical step decomposes k_x x k_y products)
            calls.append(a.shape)
        return real_svd(a, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "svd", counting_svd)
    got = (svcca(x.copy(), y.copy()).statistic, svcca(x.copy(), y.copy(), compat=True).statistic)
    assert got == expected
    assert sorted(calls) == [(60, 7), (60, 9)]  # each side decomposed once, by content
    basis = subspace.pca_basis(x, 0.99, False)
    kept = basis.copy()
    basis[:] = 0.0  # callers get a copy, the memo stays intact
    np.testing.assert_array_equal(subspace.pca_basis(x, 0.99, False), kept)
    x2 = x.copy()
    x2[0, 0] += 1e-9  # different content, different decomposition
    svcca(x2, y)
    assert len(calls) == 3


def test_a_cache_of_ones_own_gives_the_same_scores_and_clears():
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((520, 9)), rng.standard_normal((520, 7))  # >= 500 rows: RSA's ranks are cached too
    cache = subspace.FactorCache()
    for measure in sorted(MEASURES):
        assert similarity(x, y, measure, cache=cache).statistic == similarity(x, y, measure).statistic
        assert prepare(x, y, measure, cache=cache).score() == prepare(x, y, measure).score()
    assert len(cache.svd.results) == 2 and len(cache.rsm_ranks.results) == 2  # one entry per side, by content
    cache.clear()
    assert not cache.svd.results and not cache.rsm_ranks.results


@pytest.mark.parametrize("n_rows", [12, 40, 90])
def test_wide_pca_step_through_the_gram_matches_the_svd(n_rows):
    # Concept subspaces have fewer pairs than decoder dimensions; their PCA step uses the Gram matrix.
    rng = np.random.default_rng(n_rows)
    z = rng.standard_normal((n_rows, 5)) @ rng.standard_normal((5, 120)) * 3 + rng.standard_normal((n_rows, 120))
    subspace.FACTOR_CACHE.clear()
    u, s = subspace.centred_svd(z)
    u_ref, s_ref, _ = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    rank = n_rows - 1  # centring removes one dimension
    np.testing.assert_allclose(s[:rank], s_ref[:rank], rtol=1e-9)
    assert np.all(s[rank:] == 0.0)
    for k in (1, 5, rank):
        np.testing.assert_allclose(u[:, :k] @ u[:, :k].T, u_ref[:, :k] @ u_ref[:, :k].T, atol=1e-9)
    y = z[:, ::-1] + 0.5 * rng.standard_normal(z.shape)
    reference = np.mean(np.linalg.svd(u_ref[:, :5].T @ np.linalg.svd(y - y.mean(0), full_matrices=False)[0][:, :5],
                                      compute_uv=False))
    assert svcca(z, y, variance=5).statistic == pytest.approx(reference, abs=1e-10)


def test_pwcca_batched_null_falls_back_draw_by_draw_when_the_svd_fails(monkeypatch):
    """float32's batched SVD may not converge on an ill-conditioned draw (seen on real SAE decoders): the
    chunk is then scored draw by draw on the exact float64 path, not abandoned."""
    import torch

    from saesim.compare.geometry import prepare

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 12))
    y = x @ rng.normal(size=(12, 10)) + 0.5 * rng.normal(size=(120, 10))
    measure = prepare(x, y, "pwcca")
    perms = np.stack([rng.permutation(120) for _ in range(6)])
    batched = measure.scores(perms)

    def failing(*args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.svd: (Batch element 3): The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svd", failing)
    fallback = measure.scores(perms)
    np.testing.assert_allclose(fallback, [measure.score(p) for p in perms], rtol=0, atol=0)
    np.testing.assert_allclose(fallback, batched, atol=1e-4)  # float32 batched against float64 exact
