"""Tests for saesim.compare.nulls: fast nulls equal brute force, p-values are valid and never 0."""

import numpy as np
import pytest
from scipy.stats import kstest

from saesim.compare.geometry import MEASURES, DegenerateInputWarning, prepare, similarity
from saesim.compare.nulls import (
    NULL_ATOL,
    PERM_CHUNK,
    TIE_RTOL,
    NullDistribution,
    PermutationResult,
    p_value,
    permutation_test,
    permutation_tests,
    random_subset_null,
)
from tests.authors_reference import authors_p_value

NULL_TOL = 1e-10
"""A float64 null (random subsets) against recomputing every draw from scratch."""

KS_MIN_PVALUE = 1e-3
"""Lenient threshold for the KS test of uniform p-values under independence."""

SMALL_P = 0.01
"""Independent data must not give a p-value at or below this."""

CASES = [
    ("svcca", {}),
    ("svcca", {"compat": True}),
    ("svcca", {"variance": 3}),
    ("rsa", {}),
    ("linear_cka", {}),
    ("procrustes", {}),
]


def independent(seed, n=40, d_x=6, d_y=8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d_x)), rng.standard_normal((n, d_y))


def planted(seed, n=80, d_x=6, d_y=9, noise=0.1):
    """y is a rotated, zero-padded, column-shuffled noisy copy of x."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d_x))
    q, _ = np.linalg.qr(rng.standard_normal((d_y, d_y)))
    y = (x @ q[:d_x])[:, rng.permutation(d_y)] + noise * rng.standard_normal((n, d_y))
    return x, y


HUB_SIZES = np.array([1, 1, 2, 2, 3, 3, 4, 5, 6, 7])
"""Group sizes of the planted many-to-1 pairings: 10 hub partners, 34 pairs."""

N_SEEDS = 200
"""Independent replicates of the p-value uniformity checks."""

ALPHA = 0.05
"""Level of the fraction-of-small-p-values check."""

MAX_NULL_RATE = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / N_SEEDS)
"""Upper binomial bound (3 sd) of the fraction p <= ALPHA of N_SEEDS valid p-values (~0.096)."""

MIN_SHUFFLE_RATE = 0.3
"""The row shuffle must call at least this fraction of the hub-structured null data significant."""

GROUP_CASES = [("svcca", {}), ("svcca", {"compat": True}), ("svcca", {"variance": 3}),
               ("svcca", {"variance": "ratio:4"}), ("rsa", {}), ("linear_cka", {}), ("procrustes", {}),
               ("pwcca", {})]


def hubs(seed, d_a=6, d_b=8, spread=0.3, planted=False):
    """A many-to-1 pairing with no correspondence: the pairs of one hub group share their A row,
    and their B rows are near-duplicates of a group centre drawn independently of A (pairs that
    chose the same partner look alike). ``planted``: the centres are a rotated copy of the A rows.
    Returns (x, y, groups) with groups = the A partner (latent index) of each pair."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(HUB_SIZES.size), HUB_SIZES)
    partners = rng.permutation(1000)[:HUB_SIZES.size]  # latent indices, not 0..m-1
    a = rng.standard_normal((HUB_SIZES.size, d_a))
    if planted:
        q, _ = np.linalg.qr(rng.standard_normal((d_b, d_b)))
        centres = a @ q[:d_a]
    else:
        centres = rng.standard_normal((HUB_SIZES.size, d_b))
    order = rng.permutation(group.size)  # pairs in no particular order
    group = group[order]
    return a[group], centres[group] + spread * rng.standard_normal((group.size, d_b)), partners[group]


def brute_force_group_null(x, y, groups, metric, n_perm, seed, group_side="x", **options):
    """The documented recipe: partners numbered by first appearance; draw i gives group perm[j]
    partner j's row (hub row i = c[argsort(perm)[g_i]]), recomputed from scratch."""
    hub = x if group_side == "x" else y
    labels = list(dict.fromkeys(groups.tolist()))  # first appearance order
    g = np.array([labels.index(label) for label in groups])
    c = np.array([hub[list(groups).index(label)] for label in labels])
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(n_perm):
        moved = c[np.argsort(rng.permutation(len(labels)))[g]]
        pair = (moved, y) if group_side == "x" else (x, moved)
        null.append(similarity(*pair, metric, **options).statistic)
    return np.array(null)


def brute_force_null(x, y, metric, n_perm, seed, **options):
    """The documented recipe: the i-th rng.permutation(n), recomputed from scratch."""
    rng = np.random.default_rng(seed)
    return np.array([similarity(x, y[rng.permutation(len(y))], metric, **options).statistic
                     for _ in range(n_perm)])


class TestPValue:
    @pytest.mark.parametrize("score, expected", [(0.9, 1 / 5), (0.25, 3 / 5), (0.0, 5 / 5)])
    def test_is_one_plus_hits_over_one_plus_draws(self, score, expected):
        assert p_value(score, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(expected)

    def test_is_never_zero(self):
        assert p_value(1e9, np.zeros(999)) == pytest.approx(1e-3)

    def test_ties_count_as_reaching_the_score(self):
        assert p_value(0.3, [0.1, 0.3, 0.5]) == pytest.approx(3 / 4)
        assert p_value(0.3 * (1 + 1e-15), [0.1, 0.3, 0.5]) == pytest.approx(3 / 4)

    @pytest.mark.parametrize("score", [0.9, 0.3, 0.2, -1.0])
    def test_compat_is_the_authors_estimator(self, score):
        null = np.array([0.1, 0.2, 0.3])
        assert p_value(score, null, compat=True) == authors_p_value(score, null)
        assert p_value(0.9, null, compat=True) == 0.0

    def test_nan_score_gives_nan_and_nan_draws_are_dropped(self):
        assert np.isnan(p_value(np.nan, [0.1, 0.2]))
        assert p_value(0.15, [0.1, np.nan, 0.2]) == pytest.approx(2 / 3)

    @pytest.mark.parametrize(
        "null, match",
        [([], r"`null` must be a non-empty 1-D array"), ([[0.1, 0.2]], r"got shape \(1, 2\)"),
         ([np.nan, np.nan], r"`null` has no finite values")],
    )
    def test_unusable_null_is_named(self, null, match):
        with pytest.raises(ValueError, match=match):
            p_value(0.5, null)


class TestPermutationTest:
    @pytest.mark.parametrize("metric, options", CASES)
    @pytest.mark.parametrize("shape", [(40, 6, 8), (12, 15, 20)])
    def test_fast_null_equals_brute_force(self, metric, options, shape):
        n, d_x, d_y = shape
        x, y = planted(0, n=n, d_x=d_x, d_y=d_y, noise=2.0)
        result = permutation_test(x, y, metric, n_perm=25, seed=3, **options)
        np.testing.assert_allclose(result.null, brute_force_null(x, y, metric, 25, 3, **options),
                                   rtol=0, atol=NULL_ATOL)
        assert result.score == similarity(x, y, metric, **options).statistic

    @pytest.mark.parametrize("metric", ["rsa", "svcca", "linear_cka"])
    def test_fast_null_equals_brute_force_with_tied_values(self, metric):
        rng = np.random.default_rng(2)
        x, y = rng.integers(0, 3, size=(30, 6)), rng.integers(0, 3, size=(30, 5))
        assert np.ptp(x, axis=1).min() > 0 and np.ptp(y, axis=1).min() > 0  # no constant row
        result = permutation_test(x, y, metric, n_perm=25, seed=4)
        np.testing.assert_allclose(result.null, brute_force_null(x, y, metric, 25, 4), rtol=0, atol=NULL_ATOL)

    @pytest.mark.parametrize("metric, options", [("svcca", {}), ("rsa", {}), ("linear_cka", {}), ("pwcca", {})])
    def test_chunks_of_permutations_keep_the_draw_order(self, metric, options):
        x, y = planted(1, n=30, noise=2.0)
        n_perm = PERM_CHUNK + 5  # a full chunk and a partial one
        result = permutation_test(x, y, metric, n_perm=n_perm, seed=6, **options)
        np.testing.assert_allclose(result.null, brute_force_null(x, y, metric, n_perm, 6, **options),
                                   rtol=0, atol=NULL_ATOL)

    @pytest.mark.parametrize("metric", sorted(MEASURES))
    def test_ties_and_p_values_are_those_of_a_float64_null(self, metric):
        # 4 pairs: 1 permutation in 24 is the identity, and others tie with it too.
        x, y = independent(3, n=4, d_x=3, d_y=5)
        result = permutation_test(x, y, metric, n_perm=99, seed=2)
        prepared, rng = prepare(x, y, metric), np.random.default_rng(2)
        float64_null = np.array([prepared.score(rng.permutation(4)) for _ in range(99)])
        assert np.sum(np.abs(float64_null - result.score) <= TIE_RTOL * abs(result.score)) >= 4
        assert result.p_value == p_value(result.score, float64_null)
        assert result.p_value_for(result.score, compat=True) == p_value(result.score, float64_null, compat=True)

    def test_statistic_no_permutation_changes_gives_p_one(self):
        # k = n - 1 on both sides: every canonical correlation is 1 whatever the pairing.
        x, y = independent(1, n=10, d_x=12, d_y=15)
        result = permutation_test(x, y, "svcca", n_perm=50, seed=0, variance=1.0)
        assert (result.observed.k_x, result.observed.k_y) == (9, 9)
        assert np.all(result.null >= result.score * (1 - TIE_RTOL))
        assert result.p_value == 1.0

    @pytest.mark.parametrize("metric, options", CASES)
    @pytest.mark.parametrize("seed", [0, 1])
    def test_planted_copy_gets_the_smallest_p_value(self, metric, options, seed):
        x, y = planted(seed)
        result = permutation_test(x, y, metric, n_perm=99, seed=seed, **options)
        assert result.p_value == pytest.approx(1 / 100)
        assert result.z > 5
        if metric in ("linear_cka", "procrustes") or (metric, options) == ("svcca", {}):
            assert result.score > 0.95  # measures invariant to the planted rotation

    @pytest.mark.parametrize("metric, options", CASES)
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_independent_data_do_not_give_small_p_values(self, metric, options, seed):
        x, y = independent(seed, n=60)
        assert permutation_test(x, y, metric, n_perm=199, seed=seed, **options).p_value > SMALL_P

    @pytest.mark.parametrize("metric", sorted(MEASURES))
    def test_p_values_are_uniform_under_independence(self, metric):
        p = [permutation_test(*independent(seed, n=12, d_x=3, d_y=4), metric, n_perm=49, seed=seed).p_value
             for seed in range(200)]
        assert kstest(p, "uniform").pvalue > KS_MIN_PVALUE
        assert 0.4 < np.mean(p) < 0.6

    def test_same_seed_gives_the_same_null(self):
        x, y = independent(2)
        first = permutation_test(x, y, "rsa", n_perm=10, seed=7)
        np.testing.assert_array_equal(first.null, permutation_test(x, y, "rsa", n_perm=10, seed=7).null)
        np.testing.assert_array_equal(
            first.null, permutation_test(x, y, "rsa", n_perm=10, seed=np.random.default_rng(7)).null)
        assert not np.array_equal(first.null, permutation_test(x, y, "rsa", n_perm=10, seed=8).null)

    def test_result_fields_and_tidy_row(self):
        x, y = planted(3, noise=1.0)
        result = permutation_test(x, y, "svcca", n_perm=20, seed=5, variance=0.9)
        assert isinstance(result, PermutationResult)
        assert (result.metric, result.kind, result.n_perm, result.seed, result.n_pairs) == ("svcca", "shuffle", 20,
                                                                                           5, 80)
        assert result.null.shape == (20,)
        assert result.null_mean == pytest.approx(result.null.mean())
        assert result.null_std == pytest.approx(result.null.std(ddof=1))
        assert result.z == pytest.approx((result.score - result.null.mean()) / result.null.std(ddof=1))
        assert result.score == result.observed.statistic
        row = result.to_dict()
        assert "null" not in row
        assert (row["k_x"], row["k_y"], row["variance"]) == (result.observed.k_x, result.observed.k_y, 0.9)
        assert row["p_value"] == result.p_value and row["seed"] == 5

    def test_generator_seed_is_recorded_as_none(self):
        x, y = independent(0)
        assert permutation_test(x, y, "linear_cka", n_perm=3, seed=np.random.default_rng(0)).seed is None

    def test_options_pass_through_and_authors_p_value_is_available(self):
        x, y = planted(4)
        result = permutation_test(x, y, "svcca", n_perm=30, seed=0, compat=True)
        assert (result.observed.compat, result.observed.k_x, result.observed.k_y) == (True, 1, 1)
        assert result.p_value_for(result.score, compat=True) == authors_p_value(result.score, result.null)
        assert result.p_value_for(result.score) == result.p_value

    def test_two_pairs_tie_with_every_permutation(self):
        x, y = independent(0, n=2)
        result = permutation_test(x, y, "svcca", n_perm=10, seed=0)
        assert result.score == pytest.approx(1.0)
        assert result.p_value == 1.0

    def test_degenerate_input_warns_and_gives_nan(self):
        x, y = independent(0, n=10)
        with pytest.warns(DegenerateInputWarning, match="linear_cka"):
            result = permutation_test(np.ones_like(x), y, "linear_cka", n_perm=5)
        assert np.isnan(result.score) and np.isnan(result.p_value) and np.all(np.isnan(result.null))

    def test_unknown_metric_lists_the_valid_names(self):
        x, y = independent(0)
        with pytest.raises(ValueError, match=r"`metric` must be one of 'linear_cka', 'procrustes', 'pwcca', 'rsa', 'svcca'; "
                                             r"got 'cca'"):
            permutation_test(x, y, "cca")

    def test_foreign_option_is_refused(self):
        x, y = independent(0)
        with pytest.raises(TypeError, match=r"'linear_cka' got unknown option\(s\) compat"):
            permutation_test(x, y, "linear_cka", compat=True)

    @pytest.mark.parametrize("n_perm, error, match", [
        (0, ValueError, r"`n_perm` must be a positive integer; got 0. Use e.g."),
        (-3, ValueError, r"`n_perm` must be a positive integer; got -3"),
        (2.5, TypeError, r"`n_perm` must be a positive integer; got 2.5 \(float\)"),
    ])
    def test_bad_n_perm_is_named(self, n_perm, error, match):
        x, y = independent(0)
        with pytest.raises(error, match=match):
            permutation_test(x, y, "rsa", n_perm=n_perm)

    def test_bad_rows_and_seed_are_named(self):
        x, y = independent(0)
        with pytest.raises(ValueError, match=r"`y` has 39 rows but `x` has 40"):
            permutation_test(x, y[:-1], "svcca")
        bad = y.copy()
        bad[0, 0] = np.inf
        with pytest.raises(ValueError, match=r"`y` contains NaN or infinite values"):
            permutation_test(x, bad, "procrustes")
        with pytest.raises(TypeError, match=r"`seed` must be an int"):
            permutation_test(x, y, "rsa", seed="zero")


class TestGroupNull:
    @pytest.mark.parametrize("metric, options", GROUP_CASES)
    @pytest.mark.parametrize("group_side", ["x", "y"])
    def test_null_equals_brute_force(self, metric, options, group_side):
        x, y, groups = hubs(0)
        if group_side == "y":
            x, y = y, x
        result = permutation_test(x, y, metric, n_perm=15, seed=3, groups=groups, group_side=group_side,
                                  **options)
        expected = brute_force_group_null(x, y, groups, metric, 15, 3, group_side=group_side, **options)
        np.testing.assert_allclose(result.null, expected, rtol=0, atol=NULL_TOL)
        assert result.score == similarity(x, y, metric, **options).statistic
        assert (result.kind, result.n_groups) == ("group", HUB_SIZES.size)

    @pytest.mark.parametrize("metric", ["svcca", "rsa", "linear_cka"])
    def test_null_equals_brute_force_with_wide_rows_and_tied_values(self, metric):
        rng = np.random.default_rng(5)
        groups = rng.integers(0, 6, size=14)
        x = rng.integers(0, 3, size=(6, 20))[groups]  # wider than the pairs, integer (tied) entries
        y = rng.integers(0, 3, size=(14, 25))
        assert np.ptp(x, axis=1).min() > 0 and np.ptp(y, axis=1).min() > 0
        result = permutation_test(x, y, metric, n_perm=15, seed=1, groups=groups)
        np.testing.assert_allclose(result.null, brute_force_group_null(x, y, groups, metric, 15, 1),
                                   rtol=0, atol=NULL_TOL)

    @pytest.mark.parametrize("options", [{"variance": 4}, {"variance": 0.99}, {"compat": True}])
    def test_rank_deficient_hub_rows_take_the_exact_route(self, options):
        # The hub rows span 2 of their 6 dimensions: the covariance (eigh) route cannot resolve the
        # zero singular values and must hand over to the SVD; the null is still the brute force's.
        x, y, groups = hubs(2)
        x = x[:, :2] @ np.random.default_rng(0).standard_normal((2, 6))
        result = permutation_test(x, y, "svcca", n_perm=15, seed=2, groups=groups, **options)
        expected = brute_force_group_null(x, y, groups, "svcca", 15, 2, **options)
        np.testing.assert_allclose(result.null, expected, rtol=0, atol=NULL_TOL)

    @pytest.mark.parametrize("metric, options", GROUP_CASES)
    def test_groups_of_size_one_give_the_row_shuffle(self, metric, options):
        x, y = planted(2, n=30, noise=2.0)
        labels = np.random.default_rng(0).permutation(100)[:30]  # one distinct partner per pair
        shuffle = permutation_test(x, y, metric, n_perm=40, seed=4, **options)
        group = permutation_test(x, y, metric, n_perm=40, seed=4, groups=labels, **options)
        np.testing.assert_allclose(group.null, shuffle.null, rtol=0, atol=NULL_ATOL)
        assert group.p_value == shuffle.p_value
        assert (group.kind, group.n_groups, shuffle.kind, shuffle.n_groups) == ("group", 30, "shuffle", None)

    @pytest.mark.parametrize("metric, options", [("svcca", {}), ("svcca", {"compat": True}), ("rsa", {}),
                                                 ("linear_cka", {})])
    def test_shuffle_is_too_low_for_hubs_and_the_group_null_is_valid(self, metric, options):
        # No correspondence, but pairs sharing a hub are alike on both sides: the row shuffle breaks
        # that and calls most replicates significant; the group null's p-values are uniform.
        shuffle_p, group_p = [], []
        for seed in range(N_SEEDS):
            x, y, groups = hubs(seed)
            shuffle_p.append(permutation_test(x, y, metric, n_perm=49, seed=seed, **options).p_value)
            group_p.append(permutation_test(x, y, metric, n_perm=49, seed=seed, groups=groups, **options).p_value)
        shuffle_p, group_p = np.array(shuffle_p), np.array(group_p)
        assert np.mean(shuffle_p <= ALPHA) > MIN_SHUFFLE_RATE
        assert kstest(shuffle_p, "uniform").pvalue < KS_MIN_PVALUE
        assert np.mean(group_p <= ALPHA) <= MAX_NULL_RATE
        assert kstest(group_p, "uniform").pvalue > KS_MIN_PVALUE
        assert 0.4 < np.mean(group_p) < 0.6

    @pytest.mark.parametrize("metric, options", [("svcca", {}), ("rsa", {}), ("linear_cka", {}),
                                                 ("procrustes", {})])
    @pytest.mark.parametrize("seed", [0, 1])
    def test_planted_correspondence_still_gets_a_small_p_value(self, metric, options, seed):
        x, y, groups = hubs(seed, spread=0.05, planted=True)
        result = permutation_test(x, y, metric, n_perm=99, seed=seed, groups=groups, **options)
        assert result.p_value <= SMALL_P
        assert result.z > 3

    def test_same_seed_gives_the_same_null(self):
        x, y, groups = hubs(4)
        first = permutation_test(x, y, "rsa", n_perm=10, seed=7, groups=groups)
        np.testing.assert_array_equal(first.null, permutation_test(x, y, "rsa", n_perm=10, seed=7, groups=groups).null)
        np.testing.assert_array_equal(
            first.null, permutation_test(x, y, "rsa", n_perm=10, seed=np.random.default_rng(7), groups=groups).null)
        assert not np.array_equal(first.null, permutation_test(x, y, "rsa", n_perm=10, seed=8, groups=groups).null)

    def test_tidy_row_names_the_null(self):
        x, y, groups = hubs(1)
        row = permutation_test(x, y, "linear_cka", n_perm=5, seed=0, groups=groups).to_dict()
        assert (row["kind"], row["n_groups"], row["n_pairs"]) == ("group", HUB_SIZES.size, HUB_SIZES.sum())
        assert permutation_test(x, y, "linear_cka", n_perm=5, seed=0).to_dict()["n_groups"] is None

    def test_degenerate_input_warns_and_gives_nan(self):
        x, y, groups = hubs(0)
        with pytest.warns(DegenerateInputWarning, match="linear_cka"):
            result = permutation_test(np.ones_like(x), y, "linear_cka", n_perm=5, groups=groups)
        assert np.isnan(result.score) and np.all(np.isnan(result.null))

    def test_bad_groups_are_named(self):
        x, y, groups = hubs(0)
        with pytest.raises(ValueError, match=r"`groups` must be a 1-D array with one hub-partner label per pair "
                                             r"\(34\); got shape \(33,\)"):
            permutation_test(x, y, "rsa", groups=groups[:-1])
        with pytest.raises(ValueError, match=r"`groups` must be a 1-D array .* got shape \(34, 1\)"):
            permutation_test(x, y, "rsa", groups=groups[:, None])
        with pytest.raises(ValueError, match=r"`groups` must hold integer labels .* got dtype float64"):
            permutation_test(x, y, "rsa", groups=groups.astype(float))
        with pytest.raises(ValueError, match=r"but their `y` rows differ; pairs sharing a label must share their "
                                             r"`y` row"):
            permutation_test(x, y, "rsa", groups=groups, group_side="y")
        with pytest.raises(ValueError, match=r"`group_side` must be 'x' or 'y' .* got 'a'"):
            permutation_test(x, y, "rsa", groups=groups, group_side="a")


class TestRandomSubsetNull:
    @staticmethod
    def dictionaries(seed=0):
        rng = np.random.default_rng(seed)
        return rng.standard_normal((200, 6)), rng.standard_normal((300, 9))

    @pytest.mark.parametrize("metric, options", [("linear_cka", {}), ("svcca", {"compat": True}), ("rsa", {})])
    def test_draws_follow_the_documented_recipe(self, metric, options):
        w_a, w_b = self.dictionaries()
        result = random_subset_null(w_a, w_b, 30, metric, n_draw=8, seed=1, **options)
        rng = np.random.default_rng(1)
        expected = []
        for _ in range(8):
            rows_a = rng.choice(200, size=30, replace=False)
            rows_b = rng.choice(300, size=30, replace=False)
            expected.append(similarity(w_a[rows_a], w_b[rows_b], metric, **options).statistic)
        np.testing.assert_allclose(result.null, expected, rtol=0, atol=NULL_TOL)

    def test_same_seed_gives_the_same_null(self):
        w_a, w_b = self.dictionaries()
        first = random_subset_null(w_a, w_b, 30, "procrustes", n_draw=10, seed=2)
        np.testing.assert_array_equal(first.null, random_subset_null(w_a, w_b, 30, "procrustes", n_draw=10,
                                                                     seed=2).null)
        assert not np.array_equal(first.null, random_subset_null(w_a, w_b, 30, "procrustes", n_draw=10,
                                                                 seed=3).null)

    def test_fields_p_value_and_z_of_an_observed_score(self):
        w_a, w_b = self.dictionaries()
        result = random_subset_null(w_a, w_b, 30, "svcca", n_draw=20, seed=1, variance=0.9)
        assert isinstance(result, NullDistribution)
        assert (result.kind, result.n_draw, result.n_pairs, result.seed) == ("random_subset", 20, 30, 1)
        assert result.null_mean == pytest.approx(result.null.mean())
        assert result.null_std == pytest.approx(result.null.std(ddof=1))
        assert result.p_value_for(1.0) == pytest.approx(1 / 21)
        assert result.p_value_for(-1.0) == 1.0
        assert result.z_for(result.null_mean) == pytest.approx(0.0)
        row = result.to_dict()
        assert "null" not in row and row["variance"] == 0.9 and row["kind"] == "random_subset"

    def test_planted_pairs_beat_the_subset_null(self):
        w_a, w_b = self.dictionaries()
        x, y = planted(5, n=30)
        observed = similarity(x, y, "linear_cka").statistic
        assert random_subset_null(w_a, w_b, 30, "linear_cka", n_draw=50, seed=0).p_value_for(observed) == \
            pytest.approx(1 / 51)

    @pytest.mark.parametrize(
        "kwargs, error, match",
        [
            ({"n": 250}, ValueError, r"`n`=250 rows cannot be drawn without replacement .* use n <= 200"),
            ({"n": 2, "metric": "rsa"}, ValueError, r"`n` must be an integer >= 3; got 2. 'rsa' needs at least 3 rows"),
            ({"n": 10, "n_draw": 0}, ValueError, r"`n_draw` must be a positive integer; got 0"),
            ({"n": 10.0}, TypeError, r"`n` must be an integer >= \d+; got 10.0 \(float\)"),
            ({"n": 10, "metric": "cka"}, ValueError, r"`metric` must be one of"),
        ],
    )
    def test_bad_arguments_are_named(self, kwargs, error, match):
        w_a, w_b = self.dictionaries()
        kwargs = {"metric": "linear_cka", **kwargs}
        with pytest.raises(error, match=match):
            random_subset_null(w_a, w_b, kwargs.pop("n"), kwargs.pop("metric"), **kwargs)

    def test_bad_dictionaries_are_named(self):
        w_a, w_b = self.dictionaries()
        with pytest.raises(ValueError, match=r"`w_a` must be 2-D \(latents x dims\); got shape \(200,\)"):
            random_subset_null(w_a[:, 0], w_b, 10, "rsa")
        w_b[5, 5] = np.nan
        with pytest.raises(ValueError, match=r"`w_b` contains NaN or infinite values"):
            random_subset_null(w_a, w_b, 10, "rsa")


class TestPermutationTests:
    MEASURES = [("svcca", {"variance": "ratio:4"}), ("rsa", {}), ("svcca", {"compat": True}),
                ("linear_cka", {}), ("pwcca", {})]

    @pytest.mark.parametrize("grouped", [False, True])
    def test_each_result_is_the_single_measure_test(self, grouped):
        x, y, groups = hubs(3)
        null = {"groups": groups} if grouped else {}
        together = permutation_tests(x, y, self.MEASURES, n_perm=30, seed=5, **null)
        for (metric, options), result in zip(self.MEASURES, together):
            alone = permutation_test(x, y, metric, n_perm=30, seed=5, **null, **options)
            # Equal up to rounding: the shared draw may reach the same eigenvectors another way.
            np.testing.assert_allclose(result.null, alone.null, rtol=0, atol=1e-12)
            assert (result.metric, result.score, result.p_value, result.kind) == (
                alone.metric, alone.score, alone.p_value, alone.kind)

    def test_shared_draws_match_the_brute_force(self):
        x, y, groups = hubs(1)
        together = permutation_tests(x, y, self.MEASURES[:3], n_perm=12, seed=0, groups=groups)
        for (metric, options), result in zip(self.MEASURES[:3], together):
            expected = brute_force_group_null(x, y, groups, metric, 12, 0, **options)
            np.testing.assert_allclose(result.null, expected, rtol=0, atol=NULL_TOL)

    def test_bad_measures_are_named(self):
        x, y = independent(0)
        with pytest.raises(ValueError, match=r"`measures` is empty"):
            permutation_tests(x, y, [])
        with pytest.raises(ValueError, match=r"`metric` must be one of"):
            permutation_tests(x, y, [("rsa", {}), ("cca", {})])
