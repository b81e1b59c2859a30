"""Tests for saesim.compare.match: pairing rules on hand-built best partners and oracles."""

import dataclasses
from collections import Counter

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from saesim.compare.corr import BestPartners
from saesim.compare.match import (
    DEDUP_RULES,
    RULES,
    HubCounts,
    Pairs,
    dedup,
    filter_pairs,
    hub_counts,
    pair,
    r_cut,
)

TOTAL_R_TOL = 1e-9
"""Tolerance on the total r of an assignment against linear_sum_assignment."""

SEEDS = [0, 1, 2, 3, 4, 5]


# --------------------------------------------------------------------------- builders


def _top(values: np.ndarray, m: int, compat: bool):
    """Top-m (index, value) per row of ``values``, value descending, ties to lower index.

    Without compat only values > 0 count (others -> -1 / nan), as in saesim.compare.corr.
    """
    n, k = values.shape
    v = np.where(values > 0, values, np.nan) if not compat else values
    filled = np.nan_to_num(v, nan=-np.inf)
    cols = np.broadcast_to(np.arange(k), (n, k))
    order = np.lexsort((cols, -filled), axis=-1)[:, :m]
    top_v = np.take_along_axis(filled, order, axis=1)
    top_i = np.where(np.isfinite(top_v), order, -1).astype(np.int64)
    top_v = np.where(np.isfinite(top_v), top_v, np.nan)
    pad = m - top_i.shape[1]
    if pad > 0:
        top_i = np.pad(top_i, ((0, 0), (0, pad)), constant_values=-1)
        top_v = np.pad(top_v, ((0, 0), (0, pad)), constant_values=np.nan)
    return top_i, top_v


def make_best(R, *, m=3, compat=False) -> BestPartners:
    """A BestPartners from a dense (n_a, n_b) correlation matrix, like saesim.compare.corr.

    Dead latents are rows / columns that are all nan. Without compat they get no
    partner and candidates hold only r > 0; with compat they count as r = 0 and
    plain argmax is used (a dead B latent points at A latent 0).
    """
    R = np.asarray(R, dtype=np.float64)
    dead_a = np.all(np.isnan(R), axis=1)
    dead_b = np.all(np.isnan(R), axis=0)
    values = np.nan_to_num(R, nan=0.0) if compat else R
    top_index, top_r = _top(values.T, m, compat)
    top_index_a, top_r_a = _top(values, m, compat)
    return BestPartners(
        index=top_index[:, 0].copy(),
        r=top_r[:, 0].copy(),
        index_a=top_index_a[:, 0].copy(),
        r_a=top_r_a[:, 0].copy(),
        dead_a=dead_a,
        dead_b=dead_b,
        top_index=top_index,
        top_r=top_r,
        top_index_a=top_index_a,
        top_r_a=top_r_a,
        n_tokens=100,
        compat=compat,
    )


def random_corr(seed, n_a, n_b, *, low=-0.3, n_dead_b=0):
    """Random correlation-like matrix with a few dead B latents (nan columns)."""
    rng = np.random.default_rng(seed)
    R = rng.uniform(low, 1.0, size=(n_a, n_b))
    if n_dead_b:
        R[:, rng.choice(n_b, size=n_dead_b, replace=False)] = np.nan
    return R


def authors_one_to_one(max_corr_inds, max_corr_vals, keep=None):
    """Literal re-implementation of the authors' run_expm filter chain (oracle).

    ``keep`` plays the junk/overlap filter (a bool per B latent). Then the
    authors' 1-1 block (Counter "count == 1" branch plus ``seen`` set, list
    membership), then ``val > 0.1``. Returns a list of (ind_A, ind_B, val).
    """
    max_corr_inds = [int(i) for i in max_corr_inds]
    filt_corr_ind_A = []
    filt_corr_ind_B = []
    for feat_B, feat_A in enumerate(max_corr_inds):
        if keep is None or keep[feat_B]:
            filt_corr_ind_A.append(feat_A)
            filt_corr_ind_B.append(feat_B)

    sorted_feat_counts = Counter(max_corr_inds).most_common()
    kept_modA_feats = [feat_ID for feat_ID, count in sorted_feat_counts if count == 1]
    oneToOne_A = []
    oneToOne_B = []
    seen = set()
    for ind_A, ind_B in zip(filt_corr_ind_A, filt_corr_ind_B):
        if ind_A in kept_modA_feats:
            oneToOne_A.append(ind_A)
            oneToOne_B.append(ind_B)
        elif ind_A not in seen:
            seen.add(ind_A)
            oneToOne_A.append(ind_A)
            oneToOne_B.append(ind_B)

    kept = []
    for ind_A, ind_B in zip(oneToOne_A, oneToOne_B):
        val = max_corr_vals[ind_B]
        if val > 0.1:
            kept.append((ind_A, ind_B, float(val)))
    return kept


def as_triples(pairs: Pairs):
    return [(int(a), int(b), float(r)) for a, b, r in zip(pairs.a, pairs.b, pairs.r)]


def candidate_gain(best: BestPartners, r_min: float) -> np.ndarray:
    """Dense (n_b, n_a) gain: r on candidate edges (both directions) with r > max(r_min, 0), else 0."""
    gain = np.zeros((best.n_b, best.n_a))
    for j in range(best.n_b):
        for i, r in zip(best.top_index[j], best.top_r[j]):
            if i >= 0 and r > max(r_min, 0):
                gain[j, i] = r
    for i in range(best.n_a):
        for j, r in zip(best.top_index_a[i], best.top_r_a[i]):
            if j >= 0 and r > max(r_min, 0):
                gain[j, i] = r
    return gain


@pytest.fixture
def hand_best():
    """5 A latents, 6 B latents; B 0,1,2 choose A 1 (r 0.3, 0.9, 0.9), B 3 -> A 4, B 4 -> A 0 (r 0.1), B 5 dead."""
    nan = np.nan
    R = np.array(
        [
            # B:  0     1     2     3     4     5
            [0.05, -0.1, 0.0, 0.2, 0.1, nan],  # A0
            [0.30, 0.9, 0.9, -0.1, 0.0, nan],  # A1
            [0.10, 0.2, 0.3, 0.1, -0.2, nan],  # A2
            [nan, nan, nan, nan, nan, nan],  # A3 dead
            [0.00, 0.1, 0.0, 0.8, 0.05, nan],  # A4
        ]
    )
    return make_best(R, m=3)


# --------------------------------------------------------------------------- pair


class TestPair:
    def test_many_to_one_keeps_every_chooser_above_cut(self, hand_best):
        pairs = pair(hand_best, rule="many_to_one")
        assert as_triples(pairs) == [(1, 0, 0.3), (1, 1, 0.9), (1, 2, 0.9), (4, 3, 0.8)]
        assert pairs.n_unique_a == 2 and not pairs.is_one_to_one

    def test_cut_is_strict(self, hand_best):
        # B 4's best is A 0 with r = 0.1 exactly: dropped at r_min=0.1, kept below it.
        assert 4 not in pair(hand_best, rule="many_to_one", r_min=0.1).b
        assert 4 in pair(hand_best, rule="many_to_one", r_min=0.0999).b

    def test_no_cut_keeps_all_with_partner_and_skips_dead(self, hand_best):
        pairs = pair(hand_best, rule="many_to_one", r_min=-np.inf)
        assert pairs.b.tolist() == [0, 1, 2, 3, 4]  # B 5 is dead: no partner
        assert pairs.stages == (("best_partners", 5),)

    def test_nonpositive_r_never_pairs_without_compat(self):
        best = make_best([[-0.5, 0.0], [-0.1, 0.2]], m=2)
        pairs = pair(best, rule="many_to_one", r_min=-np.inf)
        assert as_triples(pairs) == [(1, 1, 0.2)]

    def test_first_index_keeps_lowest_b_not_highest_r(self, hand_best):
        pairs = pair(hand_best, rule="first_index", r_min=0.0)
        # A 1 is chosen by B 0 (r 0.3), B 1 and B 2 (r 0.9): the authors keep B 0.
        assert as_triples(pairs) == [(1, 0, 0.3), (4, 3, 0.8), (0, 4, 0.1)]

    def test_first_index_dedups_before_the_cut(self):
        # B 0 chooses A 0 with r 0.05, B 1 chooses A 0 with r 0.9: B 0 claims A 0, then is cut.
        best = make_best([[0.05, 0.9], [0.01, 0.2]], m=2)
        assert pair(best, rule="first_index").n_pairs == 0
        assert as_triples(pair(best, rule="max_corr")) == [(0, 1, 0.9)]

    def test_first_index_compat_dead_b_claims_a0(self):
        # compat: dead B 0 points at A 0 with r = 0 and blocks B 2's real partner A 0.
        nan = np.nan
        R = np.array([[nan, 0.2, 0.9], [nan, 0.5, 0.1]])
        best = make_best(R, m=2, compat=True)
        assert best.index.tolist() == [0, 1, 0] and best.r[0] == 0.0
        assert as_triples(pair(best, rule="first_index")) == [(1, 1, 0.5)]
        assert as_triples(pair(best, rule="max_corr")) == [(1, 1, 0.5), (0, 2, 0.9)]
        many = pair(best, rule="many_to_one", r_min=-np.inf)
        assert (0, 0, 0.0) in as_triples(many)  # dead B 0 -> A 0, r = 0 (authors' quirk)
        assert 0 not in pair(best, rule="many_to_one").b  # removed by r > 0.1

    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("compat", [False, True])
    def test_first_index_equals_authors_loop(self, seed, compat):
        R = random_corr(seed, n_a=6, n_b=50, low=-0.2, n_dead_b=4)
        best = make_best(R, m=2, compat=compat)
        expected = authors_one_to_one(best.index, best.r)
        got = as_triples(pair(best, rule="first_index"))
        assert sorted(got, key=lambda t: (t[1], t[0])) == sorted(expected, key=lambda t: (t[1], t[0]))
        assert len(expected) > 0

    def test_max_corr_ties_go_to_lower_b(self, hand_best):
        pairs = pair(hand_best, rule="max_corr")
        # A 1: B 1 and B 2 both r = 0.9 -> B 1.
        assert as_triples(pairs) == [(1, 1, 0.9), (4, 3, 0.8)]

    def test_mutual_needs_both_directions(self, hand_best):
        # A 1's best B is B 1 (tie with B 2, lower index); A 4's best is B 3; A 0's best is B 3, not B 4.
        assert as_triples(pair(hand_best, rule="mutual", r_min=-np.inf)) == [(1, 1, 0.9), (4, 3, 0.8)]

    def test_hungarian_beats_greedy(self):
        # B 0: A0 0.9, A1 0.8; B 1: A0 0.85. Greedy takes (A0, B0) = 0.9; optimum 0.8 + 0.85.
        best = make_best([[0.9, 0.85], [0.8, 0.0]], m=2)
        pairs = pair(best, rule="hungarian")
        assert as_triples(pairs) == [(1, 0, 0.8), (0, 1, 0.85)]
        assert pairs.stages == (("candidates", 3), ("hungarian", 2))

    def test_hungarian_leaves_unmatched_out(self, hand_best):
        pairs = pair(hand_best, rule="hungarian")
        assert pairs.is_one_to_one
        assert 3 not in pairs.a and 5 not in pairs.b  # dead latents
        assert np.all(pairs.r > 0.1)

    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("shape", [(12, 12), (20, 9), (7, 25)])
    def test_hungarian_is_optimal_against_linear_sum_assignment(self, seed, shape):
        n_a, n_b = shape
        best = make_best(random_corr(seed, n_a, n_b, low=-0.5, n_dead_b=1), m=3)
        gain = candidate_gain(best, r_min=0.1)
        rows, cols = linear_sum_assignment(gain, maximize=True)
        pairs = pair(best, rule="hungarian", r_min=0.1)
        assert pairs.is_one_to_one
        assert np.all(gain[pairs.b, pairs.a] == pairs.r)  # only candidate edges, with their r
        assert abs(pairs.r.sum() - gain[rows, cols].sum()) < TOTAL_R_TOL

    def test_hungarian_compat_ignores_nonpositive_edges(self):
        nan = np.nan
        R = np.array([[nan, -0.2, 0.5], [nan, -0.3, 0.4]])
        best = make_best(R, m=3, compat=True)
        pairs = pair(best, rule="hungarian", r_min=-np.inf)
        assert as_triples(pairs) == [(0, 2, 0.5)]

    def test_hungarian_without_candidates_raises(self, hand_best):
        empty = dataclasses.replace(
            hand_best,
            top_index=hand_best.top_index[:, :0],
            top_r=hand_best.top_r[:, :0],
            top_index_a=hand_best.top_index_a[:, :0],
            top_r_a=hand_best.top_r_a[:, :0],
        )
        with pytest.raises(ValueError, match=r"no top-m candidates \(m = 0\).*m=8"):
            pair(empty, rule="hungarian")
        assert pair(empty, rule="many_to_one").n_pairs == 4  # other rules don't need candidates

    @pytest.mark.parametrize("rule", RULES)
    def test_a_to_b_is_the_reversed_problem_reported_as_a_b(self, rule):
        best = make_best(random_corr(7, n_a=15, n_b=9, n_dead_b=1), m=3)
        got = pair(best, rule=rule, direction="a_to_b")
        rev = pair(best.reversed(), rule=rule)
        assert sorted(zip(got.a.tolist(), got.b.tolist())) == sorted(zip(rev.b.tolist(), rev.a.tolist()))
        assert got.direction == "a_to_b"
        assert got.a.max() < best.n_a and got.b.max() < best.n_b

    def test_a_to_b_many_to_one_lets_b_repeat(self, hand_best):
        pairs = pair(hand_best, rule="many_to_one", direction="a_to_b", r_min=-np.inf)
        # Each live A latent chooses its best B: A0 -> B3, A1 -> B1, A2 -> B2, A4 -> B3.
        assert sorted(zip(pairs.a.tolist(), pairs.b.tolist())) == [(0, 3), (1, 1), (2, 2), (4, 3)]

    @pytest.mark.parametrize("rule", ["mutual", "hungarian"])
    def test_symmetric_rules_ignore_direction(self, rule):
        best = make_best(random_corr(3, n_a=14, n_b=11), m=4)
        ab, ba = pair(best, rule=rule, direction="a_to_b"), pair(best, rule=rule)
        assert np.array_equal(ab.a, ba.a) and np.array_equal(ab.b, ba.b)

    @pytest.mark.parametrize("rule", RULES)
    def test_pairs_sorted_by_b_then_a_and_one_to_one_unless_many(self, rule):
        best = make_best(random_corr(11, n_a=10, n_b=30), m=3)
        pairs = pair(best, rule=rule, r_min=0.2)
        assert np.array_equal(np.lexsort((pairs.a, pairs.b)), np.arange(pairs.n_pairs))
        assert np.all(pairs.r > 0.2)
        assert pairs.is_one_to_one == (rule != "many_to_one")

    def test_result_is_frozen(self, hand_best):
        pairs = pair(hand_best, rule="many_to_one")
        with pytest.raises(dataclasses.FrozenInstanceError):
            pairs.rule = "x"
        with pytest.raises(ValueError, match="read-only"):
            pairs.a[0] = 3

    def test_unknown_rule_lists_valid_rules(self, hand_best):
        expected = "`rule` must be one of 'many_to_one', 'first_index', .*'hungarian'; got '1-1'"
        with pytest.raises(ValueError, match=expected):
            pair(hand_best, rule="1-1")

    @pytest.mark.parametrize("bad", [np.nan, np.inf, "0.1", None, True])
    def test_bad_r_min_raises(self, hand_best, bad):
        with pytest.raises(ValueError, match="`r_min` must be"):
            pair(hand_best, rule="many_to_one", r_min=bad)

    def test_unknown_direction_raises(self, hand_best):
        with pytest.raises(ValueError, match="`direction` must be one of 'b_to_a', 'a_to_b'"):
            pair(hand_best, rule="mutual", direction="many_a_1_b")

    def test_not_best_partners_raises(self):
        with pytest.raises(TypeError, match="`best` must be a saesim.compare.corr.BestPartners"):
            pair(np.zeros(3), rule="mutual")


# --------------------------------------------------------------------------- dedup / composition


class TestDedup:
    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("compat", [False, True])
    def test_junk_then_first_index_then_cut_equals_authors_chain(self, seed, compat):
        best = make_best(random_corr(seed, n_a=8, n_b=60, low=-0.2, n_dead_b=3), m=2, compat=compat)
        junk_ok = np.random.default_rng(100 + seed).random(best.n_b) < 0.6  # per B latent
        pairs = pair(best, rule="many_to_one", r_min=-np.inf)
        pairs = filter_pairs(pairs, junk_ok[pairs.b], stage="junk")
        pairs = dedup(pairs, "first_index")
        pairs = r_cut(pairs, r_min=0.1)
        expected = authors_one_to_one(best.index, best.r, keep=junk_ok)
        assert as_triples(pairs) == sorted(expected, key=lambda t: (t[1], t[0]))
        assert [s for s, _ in pairs.stages] == ["best_partners", "junk", "first_index", "r>0.1"]
        assert pairs.rule == "first_index" and pairs.r_min == 0.1

    def test_without_filter_equals_pair_first_index(self):
        best = make_best(random_corr(5, n_a=6, n_b=40), m=2)
        chained = r_cut(dedup(pair(best, rule="many_to_one", r_min=-np.inf), "first_index"), r_min=0.1)
        direct = pair(best, rule="first_index")
        assert as_triples(chained) == as_triples(direct)
        assert chained.stages == direct.stages

    def test_max_corr_keeps_best_r_ties_to_lower_chooser(self):
        p = Pairs(a=[1, 1, 1, 0], b=[0, 1, 2, 3], r=[0.4, 0.7, 0.7, 0.2], rule="many_to_one",
                  direction="b_to_a", r_min=-np.inf, n_a=2, n_b=4)
        assert as_triples(dedup(p, "max_corr")) == [(1, 1, 0.7), (0, 3, 0.2)]

    def test_a_to_b_walks_a_latents(self):
        # direction a_to_b: choosers are A latents; A 0 and A 2 both chose B 5.
        p = Pairs(a=[2, 0, 1], b=[5, 5, 3], r=[0.9, 0.3, 0.5], rule="many_to_one",
                  direction="a_to_b", r_min=-np.inf, n_a=3, n_b=6)
        assert as_triples(dedup(p, "first_index")) == [(1, 3, 0.5), (0, 5, 0.3)]
        assert as_triples(dedup(p, "max_corr")) == [(1, 3, 0.5), (2, 5, 0.9)]

    @pytest.mark.parametrize("seed", SEEDS[:3])
    def test_hungarian_on_arbitrary_pairs_is_optimal(self, seed):
        rng = np.random.default_rng(seed)
        n_a, n_b, n = 9, 11, 40
        a, b = rng.integers(0, n_a, n), rng.integers(0, n_b, n)
        keys = np.unique(a * n_b + b)
        a, b = keys // n_b, keys % n_b
        r = rng.uniform(-0.2, 1, size=a.size)
        p = Pairs(a=a, b=b, r=r, rule="candidates", direction="b_to_a", r_min=-np.inf, n_a=n_a, n_b=n_b)
        got = dedup(p, "hungarian")
        gain = np.zeros((n_b, n_a))
        gain[b, a] = np.maximum(r, 0)
        rows, cols = linear_sum_assignment(gain, maximize=True)
        assert got.is_one_to_one and got.rule == "hungarian"
        assert abs(got.r.sum() - gain[rows, cols].sum()) < TOTAL_R_TOL

    @pytest.mark.parametrize("seed", [73, 185])
    def test_hungarian_with_tied_r_is_optimal(self, seed):
        # r rounded to 2 decimals: many exact ties. A square formulation made LAPJVsp's
        # augmenting row reduction crawl (seconds) on these two instances.
        rng = np.random.default_rng(seed)
        n_b, n_a = rng.integers(20, 300, 2)
        n = rng.integers(0, n_a * n_b // 4 + 1)
        b, a = rng.integers(0, n_b, n), rng.integers(0, n_a, n)
        keys = np.unique(a * n_b + b)
        a, b = keys // n_b, keys % n_b
        r = np.round(rng.uniform(-0.3, 1, a.size), 2)
        p = Pairs(a=a, b=b, r=r, rule="candidates", direction="b_to_a", r_min=-np.inf, n_a=n_a, n_b=n_b)
        got = dedup(p, "hungarian")
        gain = np.zeros((n_b, n_a))
        gain[b, a] = np.maximum(r, 0)
        rows, cols = linear_sum_assignment(gain, maximize=True)
        assert got.is_one_to_one
        assert abs(got.r.sum() - gain[rows, cols].sum()) < TOTAL_R_TOL

    def test_repeated_chooser_raises(self):
        p = Pairs(a=[0, 1], b=[2, 2], r=[0.5, 0.6], rule="x", direction="b_to_a", r_min=-np.inf, n_a=2, n_b=3)
        with pytest.raises(ValueError, match="repeated B latents.*'hungarian'"):
            dedup(p, "first_index")

    def test_unknown_rule_lists_valid(self):
        p = Pairs(a=[0], b=[0], r=[0.5], rule="x", direction="b_to_a", r_min=-np.inf, n_a=1, n_b=1)
        with pytest.raises(ValueError, match="one of " + ", ".join(repr(r) for r in DEDUP_RULES)):
            dedup(p, "mutual")

    def test_input_unchanged(self):
        p = Pairs(a=[0, 0], b=[0, 1], r=[0.5, 0.6], rule="x", direction="b_to_a", r_min=-np.inf, n_a=1, n_b=2)
        dedup(p, "first_index")
        assert p.n_pairs == 2 and p.stages == ()


class TestRCut:
    def test_strict_and_drops_nan(self):
        p = Pairs(a=[0, 1, 2], b=[0, 1, 2], r=[0.1, np.nan, 0.2], rule="x", direction="b_to_a",
                  r_min=-np.inf, n_a=3, n_b=3)
        cut = r_cut(p, r_min=0.1)
        assert as_triples(cut) == [(2, 2, 0.2)] and cut.stages == (("r>0.1", 1),)

    def test_minus_inf_is_a_no_op(self):
        p = Pairs(a=[0], b=[0], r=[-0.5], rule="x", direction="b_to_a", r_min=-np.inf, n_a=1, n_b=1)
        assert r_cut(p, r_min=-np.inf) is p

    def test_records_the_tighter_cut(self):
        p = Pairs(a=[0, 1], b=[0, 1], r=[0.3, 0.6], rule="x", direction="b_to_a", r_min=0.5, n_a=2, n_b=2)
        assert r_cut(p, r_min=0.1).r_min == 0.5

    def test_bad_r_min_raises(self):
        p = Pairs(a=[0], b=[0], r=[0.5], rule="x", direction="b_to_a", r_min=-np.inf, n_a=1, n_b=1)
        with pytest.raises(ValueError, match="`r_min` must be finite"):
            r_cut(p, r_min=np.nan)


class TestFilterPairs:
    def test_keeps_masked_and_records_stage(self, hand_best):
        p = pair(hand_best, rule="many_to_one")
        q = filter_pairs(p, p.b != 1, stage="overlap")
        assert q.b.tolist() == [0, 2, 3] and q.stages[-1] == ("overlap", 3)
        assert p.n_pairs == 4  # unchanged

    @pytest.mark.parametrize("mask", [[True, False], np.ones(4), np.ones((4, 1), dtype=bool)])
    def test_wrong_mask_raises(self, hand_best, mask):
        p = pair(hand_best, rule="many_to_one")
        with pytest.raises(ValueError, match=r"`mask` must be a boolean array of shape \(4,\)"):
            filter_pairs(p, mask, stage="junk")

    def test_empty_stage_raises(self, hand_best):
        p = pair(hand_best, rule="many_to_one")
        with pytest.raises(ValueError, match="`stage` must be a non-empty string"):
            filter_pairs(p, np.ones(4, dtype=bool), stage="")


class TestHubCounts:
    def test_counts_choosers_per_a(self, hand_best):
        hubs = hub_counts(hand_best)
        assert isinstance(hubs, HubCounts)
        assert hubs.counts.tolist() == [1, 3, 0, 0, 1]  # B 5 dead: counted nowhere
        assert hubs.top(2) == [(1, 3), (0, 1)]  # tie between A 0 and A 4 -> lower index
        assert hubs.n_unique == 3 and hubs.unique_fraction == pytest.approx(3 / 6)
        assert hubs.target_fraction == pytest.approx(3 / 5)

    def test_compat_dead_b_count_for_a0(self):
        nan = np.nan
        best = make_best(np.array([[nan, nan, 0.1], [nan, nan, 0.5]]), m=1, compat=True)
        assert hub_counts(best).counts.tolist() == [2, 1]
        assert hub_counts(best).top(5) == Counter(best.index.tolist()).most_common(5)

    def test_a_to_b_counts_per_b(self, hand_best):
        hubs = hub_counts(hand_best, direction="a_to_b")
        assert hubs.counts.tolist() == [0, 1, 1, 2, 0, 0] and hubs.n_choosers == 5

    def test_accepts_filtered_pairs(self, hand_best):
        p = pair(hand_best, rule="many_to_one")
        assert hub_counts(p).counts.tolist() == [0, 3, 0, 0, 1]
        assert hub_counts(dedup(p, "first_index")).counts.max() == 1

    def test_top_frame_and_errors(self, hand_best):
        hubs = hub_counts(hand_best)
        assert hubs.to_frame()["latent"].tolist() == [1, 0, 4]
        with pytest.raises(ValueError, match="`n` must be a non-negative integer"):
            hubs.top(-1)


class TestPairs:
    def test_rows_index_decoders(self, hand_best):
        p = pair(hand_best, rule="max_corr")
        W_a = np.arange(5 * 2).reshape(5, 2)
        W_b = np.arange(6 * 3).reshape(6, 3)
        X, Y = p.rows(W_a, W_b)
        assert np.array_equal(X, W_a[[1, 4]]) and np.array_equal(Y, W_b[[1, 3]])

    def test_rows_wrong_shape_raises(self, hand_best):
        p = pair(hand_best, rule="max_corr")
        with pytest.raises(ValueError, match=r"`W_b` must be a 2-D decoder with one row per latent \(6 rows\)"):
            p.rows(np.zeros((5, 2)), np.zeros((3, 6)))

    def test_frame_and_summary(self, hand_best):
        p = pair(hand_best, rule="first_index")
        df = p.to_frame()
        assert list(df.columns) == ["a", "b", "r"] and len(df) == p.n_pairs
        s = p.summary()
        assert s["n_pairs"] == 2 and s["n_after_first_index"] == 3 and s["n_after_r>0.1"] == 2

    def test_mismatched_lengths_raise(self):
        with pytest.raises(ValueError, match="same length"):
            Pairs(a=[0, 1], b=[0], r=[0.5], rule="x", direction="b_to_a", r_min=0.1, n_a=2, n_b=2)
