"""Tests for saesim.compare.corr: best partners against dense oracles and planted answers."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from saesim.compare.corr import (
    BestPartners,
    CoactivationMoments,
    DeadLatentWarning,
    _r_bins,
    _top_m_unsorted,
    best_partners,
)

R_TOL = 1e-6
"""Tolerance on correlations against the dense oracle (the issue's contract)."""

COMPAT_R_TOL = 1e-5
"""fp32 tolerance for the authors' (fp32 torch) computation."""

BLOCK_SIZES = [None, 1, 7, 10_000]
"""Sparse-path blocks of B latents: automatic, one latent, uneven, all at once."""

RESULT_FIELDS = ("index", "r", "index_a", "r_a", "top_index", "top_r", "top_index_a", "top_r_a")


def topk_codes(n_tokens, n_latents, k, seed):
    """Random TopK-like non-negative sparse codes (k active latents per token)."""
    rng = np.random.default_rng(seed)
    cols = np.argsort(rng.random((n_tokens, n_latents)), axis=1)[:, :k]
    vals = rng.exponential(size=(n_tokens, k)).astype(np.float32)
    rows = np.repeat(np.arange(n_tokens), k)
    return sp.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(n_tokens, n_latents))


def correlated_pair(seed, n_tokens=2000, n_a=60, n_b=40, density=0.05):
    """Sparse A and B where many B latents copy (noisily) an A latent."""
    rng = np.random.default_rng(seed)
    a = sp.random(n_tokens, n_a, density=density, random_state=rng, format="csr", dtype=np.float64)
    source = rng.integers(0, n_a, size=n_b)
    b_dense = a[:, source].toarray() * rng.uniform(0.5, 2.0, size=n_b)
    noise = sp.random(n_tokens, n_b, density=density, random_state=rng, format="csr").toarray()
    b_dense = b_dense * (rng.random(b_dense.shape) > 0.2) + noise
    return a, sp.csr_matrix(b_dense), source


def dense_pearson(a, b):
    """Oracle: dense numpy Pearson matrix (n_a, n_b), nan for dead columns."""
    a = (a.toarray() if sp.issparse(a) else np.asarray(a)).astype(np.float64)
    b = (b.toarray() if sp.issparse(b) else np.asarray(b)).astype(np.float64)
    ac, bc = a - a.mean(0), b - b.mean(0)
    na, nb = np.sqrt((ac**2).sum(0)), np.sqrt((bc**2).sum(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (ac.T @ bc) / np.outer(na, nb)
    c[na == 0, :] = np.nan
    c[:, nb == 0] = np.nan
    return c


def oracle_best(c):
    """Per column of c: (index, r) of the max, -1/nan when the max is <= 0 or all nan."""
    filled = np.nan_to_num(c, nan=-np.inf)
    idx = filled.argmax(axis=0)
    r = filled.max(axis=0)
    none = ~(r > 0)
    return np.where(none, -1, idx), np.where(none, np.nan, r)


def oracle_top_m(c, m):
    """Per column of c: the m largest positive entries, r descending, ties to the lower row; -1/nan padded."""
    filled = np.nan_to_num(c, nan=-np.inf)
    index = np.full((c.shape[1], m), -1)
    r = np.full((c.shape[1], m), np.nan)
    for j in range(c.shape[1]):
        order = np.argsort(-filled[:, j], kind="stable")[:m]
        order = order[filled[order, j] > 0]
        index[j, :order.size] = order
        r[j, :order.size] = filled[order, j]
    return index, r


def assert_same_result(first, second, *, r_tol=0.0):
    """Identical partners and candidates; correlations equal to ``r_tol``."""
    for name in RESULT_FIELDS:
        if name.startswith(("index", "top_index")):
            np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)
        else:
            np.testing.assert_allclose(getattr(first, name), getattr(second, name), rtol=0, atol=r_tol,
                                       equal_nan=True, err_msg=name)


def authors_batched_correlation(a, b, batch_size=100):
    """Frozen re-implementation of the authors' correlation_fns.batched_correlation."""
    def normalize(x):
        x = torch.tensor(x, dtype=torch.float32)
        return (x - x.mean(dim=0)) / (x.std(dim=0) + 1e-8)

    za, zb = normalize(a), normalize(b)
    n_tokens = za.shape[0]
    max_vals, max_inds = [], []
    for start in range(0, zb.shape[1], batch_size):
        corr = za.T @ zb[:, start:start + batch_size] / n_tokens
        vals, inds = torch.max(corr, dim=0)
        max_vals.append(vals)
        max_inds.append(inds)
    return torch.cat(max_inds).numpy(), torch.cat(max_vals).numpy()


class TestBestPartners:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_matches_dense_pearson_oracle(self, seed):
        a, b, _ = correlated_pair(seed)
        best = best_partners(a, b)
        idx, r = oracle_best(dense_pearson(a, b))
        np.testing.assert_array_equal(best.index, idx)
        np.testing.assert_allclose(best.r, r, atol=R_TOL, equal_nan=True)

    @pytest.mark.parametrize("seed", [0, 3])
    def test_reverse_direction_matches_oracle(self, seed):
        a, b, _ = correlated_pair(seed)
        best = best_partners(a, b)
        idx, r = oracle_best(dense_pearson(a, b).T)
        np.testing.assert_array_equal(best.index_a, idx)
        np.testing.assert_allclose(best.r_a, r, atol=R_TOL, equal_nan=True)

    def test_topk_codes_match_oracle(self):
        a = topk_codes(3000, 200, 8, seed=10)
        b = topk_codes(3000, 150, 8, seed=11)
        best = best_partners(a, b)
        idx, r = oracle_best(dense_pearson(a, b))
        np.testing.assert_array_equal(best.index, idx)
        np.testing.assert_allclose(best.r, r, atol=R_TOL, equal_nan=True)

    def test_top_m_candidates_match_sorted_oracle(self):
        a, b, _ = correlated_pair(4)
        m = 5
        best = best_partners(a, b, m=m)
        c = np.nan_to_num(dense_pearson(a, b), nan=-np.inf)
        for j in range(b.shape[1]):
            order = np.argsort(-c[:, j], kind="stable")[:m]
            positive = c[order, j] > 0
            np.testing.assert_array_equal(best.top_index[j][positive], order[positive])
            assert np.all(best.top_index[j][~positive] == -1)
            np.testing.assert_allclose(best.top_r[j][positive], c[order, j][positive], atol=R_TOL)
        assert best.top_index.shape == (b.shape[1], m)
        np.testing.assert_array_equal(best.top_index[:, 0], best.index)

    @pytest.mark.parametrize("seed", [0, 5])
    def test_sparse_and_dense_paths_agree(self, seed):
        a, b, _ = correlated_pair(seed)
        sparse_result = best_partners(a, b, m=4)
        dense_result = best_partners(a.toarray(), b.toarray(), m=4)
        assert sparse_result.backend == "sparse" and dense_result.backend.startswith("dense")
        for name in ("index", "index_a", "top_index", "top_index_a"):
            np.testing.assert_array_equal(getattr(sparse_result, name), getattr(dense_result, name))
        for name in ("r", "r_a", "top_r", "top_r_a"):
            np.testing.assert_allclose(
                getattr(sparse_result, name), getattr(dense_result, name), atol=R_TOL, equal_nan=True
            )

    def test_dense_path_small_blocks_equal_one_block(self):
        a, b, _ = correlated_pair(6)
        one = best_partners(a, b, backend="dense", block_size=10_000)
        many = best_partners(a, b, backend="dense", block_size=7)
        np.testing.assert_array_equal(one.index_a, many.index_a)
        np.testing.assert_array_equal(one.top_index_a, many.top_index_a)

    def test_recovers_planted_permutation(self):
        a = topk_codes(5000, 128, 6, seed=1)
        perm = np.random.default_rng(2).permutation(128)
        noisy = a[:, perm].multiply(np.random.default_rng(3).uniform(0.5, 1.5, size=a[:, perm].shape))
        best = best_partners(a, sp.csr_matrix(noisy))
        np.testing.assert_array_equal(best.index, perm)
        np.testing.assert_array_equal(best.index_a[perm], np.arange(128))

    def test_dead_latents_have_and_are_no_partner(self):
        a, b, _ = correlated_pair(7)
        a, b = a.tolil(), b.tolil()
        a[:, 3] = 0
        b[:, 5] = 0
        with pytest.warns(DeadLatentWarning, match="1 latents of A and 1 of B are dead"):
            best = best_partners(a.tocsr(), b.tocsr())
        assert best.dead_a[3] and best.dead_b[5]
        assert best.dead_a.sum() == 1 and best.dead_b.sum() == 1
        assert best.index[5] == -1 and np.isnan(best.r[5])
        assert 3 not in best.index and 3 not in best.top_index
        assert best.index_a[3] == -1

    def test_constant_nonzero_latent_is_dead(self):
        a, b, _ = correlated_pair(8)
        a = a.toarray()
        a[:, 0] = 2.5
        with pytest.warns(DeadLatentWarning):
            best = best_partners(sp.csr_matrix(a), b)
        assert best.dead_a[0]

    def test_best_r_not_positive_means_no_partner(self):
        # B latent fires exactly where A's never do: all correlations negative.
        a = np.zeros((10, 2))
        a[:5, 0] = 1.0
        a[:5, 1] = [1, 2, 3, 4, 5]
        b = np.zeros((10, 1))
        b[5:, 0] = [1, 2, 1, 2, 1]
        for codes in ((sp.csr_matrix(a), sp.csr_matrix(b)), (a, b)):
            best = best_partners(*codes)
            assert best.index[0] == -1 and np.isnan(best.r[0])
            assert best.mean_r() != best.mean_r()  # nan: nobody has a partner

    def test_compat_reproduces_authors_batched_correlation(self):
        a, b, _ = correlated_pair(9, n_tokens=800, n_a=50, n_b=230)
        a, b = a.toarray(), b.toarray()
        a[:, 4] = 0  # dead columns: r = 0 in the authors' code
        b[:, 7] = 0
        b[:, 8] = 0
        ref_index, ref_r = authors_batched_correlation(a, b)
        with pytest.warns(DeadLatentWarning, match="compat"):
            best = best_partners(sp.csr_matrix(a), sp.csr_matrix(b), compat=True)
        np.testing.assert_array_equal(best.index, ref_index)
        np.testing.assert_allclose(best.r, ref_r, atol=COMPAT_R_TOL)
        assert best.index[7] == 0 and best.r[7] == 0.0  # the dead-to-index-0 quirk
        np.testing.assert_allclose(best.mean_r(), ref_r.mean(), atol=COMPAT_R_TOL)

    def test_compat_reverse_equals_authors_with_swapped_arguments(self):
        a, b, _ = correlated_pair(10, n_tokens=600)
        ref_index, ref_r = authors_batched_correlation(b.toarray(), a.toarray())
        best = best_partners(a, b, compat=True)
        np.testing.assert_array_equal(best.index_a, ref_index)
        np.testing.assert_allclose(best.r_a, ref_r, atol=COMPAT_R_TOL)

    def test_reversed_equals_swapped_call(self):
        a, b, _ = correlated_pair(11)
        forward = best_partners(a, b, m=3)
        swapped = best_partners(b, a, m=3)
        rev = forward.reversed()
        np.testing.assert_array_equal(rev.index, swapped.index)
        np.testing.assert_array_equal(rev.top_index, swapped.top_index)
        np.testing.assert_allclose(rev.r, swapped.r, atol=R_TOL, equal_nan=True)
        assert rev.reversed() == forward or np.array_equal(rev.reversed().index, forward.index)

    def test_deterministic(self):
        a, b, _ = correlated_pair(12)
        first, second = best_partners(a, b), best_partners(a.copy(), b.copy())
        np.testing.assert_array_equal(first.top_index, second.top_index)
        np.testing.assert_array_equal(first.top_r, second.top_r)

    def test_chunk_rows_do_not_change_the_answer(self):
        a, b, _ = correlated_pair(13)
        whole = best_partners(a, b)
        chunked = best_partners(a, b, chunk_rows=333)
        np.testing.assert_array_equal(whole.index, chunked.index)
        np.testing.assert_allclose(whole.r, chunked.r, atol=1e-12, equal_nan=True)

    def test_ties_go_to_lower_index(self):
        a = np.zeros((6, 3))
        a[[0, 2], 1] = 1.0
        a[[0, 2], 2] = 1.0  # latents 1 and 2 identical
        a[[1, 3], 0] = 1.0
        b = a[:, [2]].copy()
        best = best_partners(sp.csr_matrix(a), sp.csr_matrix(b))
        assert best.index[0] == 1
        np.testing.assert_array_equal(best.top_index[0, :2], [1, 2])

    def test_one_token_all_dead(self):
        with pytest.warns(DeadLatentWarning):
            best = best_partners(sp.csr_matrix(np.ones((1, 3))), sp.csr_matrix(np.ones((1, 2))))
        assert np.all(best.index == -1) and best.dead_a.all() and best.dead_b.all()

    def test_all_dead_matrices(self):
        with pytest.warns(DeadLatentWarning):
            best = best_partners(sp.csr_matrix((20, 4)), sp.csr_matrix((20, 3)))
        assert np.all(best.index == -1) and np.all(best.index_a == -1)
        assert np.isnan(best.mean_r())

    def test_summary_counts(self):
        a, b, _ = correlated_pair(14)
        summary = best_partners(a, b).summary()
        assert summary["n_latents_a"] == 60 and summary["n_latents_b"] == 40
        assert 0 < summary["unique_partners_a"] <= summary["with_partner_b"] <= 40

    def test_mismatched_rows_error(self):
        with pytest.raises(ValueError, match=r"`codes_b` has 9 rows but `codes_a` has 10"):
            best_partners(np.ones((10, 2)), np.ones((9, 2)))

    @pytest.mark.parametrize("bad", [np.nan, np.inf])
    def test_non_finite_error(self, bad):
        a = np.ones((5, 2))
        a[2, 1] = bad
        with pytest.raises(ValueError, match=r"`codes_a` contains 1 NaN or infinite"):
            best_partners(a, np.ones((5, 2)))
        with pytest.raises(ValueError, match=r"`codes_b` contains 1 NaN or infinite"):
            best_partners(sp.csr_matrix(np.ones((5, 2))), sp.csr_matrix(a))

    def test_not_2d_error(self):
        with pytest.raises(ValueError, match=r"`codes_a` must be 2-D"):
            best_partners(np.ones(5), np.ones((5, 2)))

    def test_negative_codes_need_dense_backend(self):
        a = sp.csr_matrix(np.array([[1.0, -1.0], [0.0, 2.0], [3.0, 0.0]]))
        with pytest.raises(ValueError, match="sparse backend needs non-negative codes"):
            best_partners(a, a, backend="sparse")
        best = best_partners(a, a)  # auto falls back to the dense path
        assert best.backend.startswith("dense")
        np.testing.assert_array_equal(best.index, [0, 1])

    @pytest.mark.parametrize("block_size", BLOCK_SIZES)
    def test_top_m_both_directions_match_oracle(self, block_size):
        # ~150 co-firing A latents per B latent: the histogram pruning is active
        a = topk_codes(3000, 200, 8, seed=40)
        b = topk_codes(3000, 150, 8, seed=41)
        m = 6
        best = best_partners(a, b, m=m, block_size=block_size)
        c = dense_pearson(a, b)
        for (index, r), (want_index, want_r) in (
            ((best.top_index, best.top_r), oracle_top_m(c, m)),
            ((best.top_index_a, best.top_r_a), oracle_top_m(c.T, m)),
        ):
            np.testing.assert_array_equal(index, want_index)
            np.testing.assert_allclose(r, want_r, atol=R_TOL, equal_nan=True)

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_block_sizes_do_not_change_the_answer(self, seed):
        a, b, _ = correlated_pair(seed, n_b=90)
        whole = best_partners(a, b, m=5, block_size=10_000)
        for block_size in BLOCK_SIZES:
            assert_same_result(best_partners(a, b, m=5, block_size=block_size), whole)

    def test_chunk_rows_and_blocks_together_equal_one_shot(self):
        a, b, _ = correlated_pair(15)
        whole = best_partners(a, b, m=4)
        chunked = best_partners(a, b, m=4, chunk_rows=333, block_size=3)
        assert_same_result(chunked, whole, r_tol=1e-12)

    @pytest.mark.parametrize("seed", [3, 4])
    @pytest.mark.parametrize("block_size", [None, 5])
    def test_recovers_planted_permutation_with_blocks(self, seed, block_size):
        rng = np.random.default_rng(seed)
        a = topk_codes(4000, 300, 12, seed=seed)
        perm = rng.permutation(300)
        b = a[:, perm].multiply(rng.uniform(0.5, 1.5, size=(4000, 300))).tocsr()
        best = best_partners(a, b, m=3, block_size=block_size)
        np.testing.assert_array_equal(best.index, perm)
        np.testing.assert_array_equal(best.index_a[perm], np.arange(300))
        assert np.all(best.r > 0.5) and np.all(best.top_r[:, 0] >= np.nan_to_num(best.top_r[:, 1], nan=-1))

    def test_ties_across_blocks_go_to_lower_index(self):
        # B latents 2 and 6 are identical copies of A latent 1: A latent 1 picks 2, in another block
        a, _, _ = correlated_pair(16, n_a=10)
        b = a[:, [4, 3, 1, 0, 5, 7, 1, 8]].tocsr()
        for block_size in (1, 3, None):
            best = best_partners(a, b, m=3, block_size=block_size)
            assert best.index_a[1] == 2 and best.top_index_a[1, 0] == 2 and best.top_index_a[1, 1] == 6
            assert best.top_r_a[1, 0] == best.top_r_a[1, 1]
            assert best.index[2] == best.index[6] == 1

    def test_ties_within_a_pruned_latent_go_to_lower_index(self):
        # B latent 0 co-fires with 300 A latents; A latents 250 and 17 are identical and the best
        rng = np.random.default_rng(17)
        a = topk_codes(2000, 300, 20, seed=17).toarray()
        a[:, 250] = a[:, 17]
        b = (a[:, [17]] * 2.0 + 0.2 * a[:, rng.integers(0, 300, 40)].sum(1, keepdims=True))
        best = best_partners(sp.csr_matrix(a), sp.csr_matrix(b), m=4)
        assert best.top_index[0, 0] == 17 and best.top_index[0, 1] == 250
        assert best.top_r[0, 0] == best.top_r[0, 1]
        idx, r = oracle_top_m(dense_pearson(a, b), 4)
        np.testing.assert_array_equal(best.top_index, idx)

    def test_latents_that_never_cofire_have_no_partner(self):
        # B latent 1 fires only where no A latent does; A latent 2 fires only where no B latent does
        a = np.zeros((12, 3))
        a[:6, 0] = [1, 2, 3, 1, 2, 3]
        a[:6, 1] = [3, 1, 2, 0, 0, 1]
        a[9:, 2] = [1, 2, 4]
        b = np.zeros((12, 2))
        b[:6, 0] = a[:6, 0] * 2
        b[6:9, 1] = [1, 3, 2]
        best = best_partners(sp.csr_matrix(a), sp.csr_matrix(b), m=2)
        assert best.index.tolist() == [0, -1] and np.isnan(best.r[1])
        assert np.all(best.top_index[1] == -1) and np.all(np.isnan(best.top_r[1]))
        assert best.index_a[2] == -1 and np.all(best.top_index_a[2] == -1)
        idx, r = oracle_best(dense_pearson(a, b))
        np.testing.assert_array_equal(best.index, idx)
        np.testing.assert_allclose(best.r, r, atol=R_TOL, equal_nan=True)

    def test_dead_latents_are_nobody_candidate_in_any_block(self):
        a, b, _ = correlated_pair(18)
        a, b = a.toarray(), b.toarray()
        a[:, 5] = 3.0  # constant: dead, but co-fires with everything
        a[:, 6] = 0.0
        b[:, 2] = 0.0
        for block_size in (None, 4):
            with pytest.warns(DeadLatentWarning, match="2 latents of A and 1 of B are dead"):
                best = best_partners(sp.csr_matrix(a), sp.csr_matrix(b), m=5, block_size=block_size)
            assert not np.isin([5, 6], best.top_index).any()
            assert not np.isin(2, best.top_index_a).any()
            assert np.all(best.top_index[2] == -1) and np.all(best.top_index_a[[5, 6]] == -1)
            idx, r = oracle_best(dense_pearson(a, b))
            np.testing.assert_array_equal(best.index, idx)

    def test_more_candidates_than_latents_are_padded(self):
        a, b, _ = correlated_pair(19, n_a=4, n_b=3, density=0.3)
        best = best_partners(a, b, m=6)
        assert best.top_index.shape == (3, 6) and best.top_index_a.shape == (4, 6)
        assert np.all(best.top_index[:, 4:] == -1) and np.all(np.isnan(best.top_r_a[:, 3:]))
        idx, r = oracle_top_m(dense_pearson(a, b), 6)
        np.testing.assert_array_equal(best.top_index, idx)

    def test_duplicate_entries_count_as_their_sum(self):
        a, b, _ = correlated_pair(23)
        rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
        order = np.argsort(np.r_[rows, rows], kind="stable")  # each stored value split in two halves
        duplicated = sp.csr_matrix(
            (np.r_[a.data, a.data][order] / 2, np.r_[a.indices, a.indices][order], 2 * a.indptr), shape=a.shape
        )
        assert not duplicated.has_canonical_format
        before = duplicated.data.copy()
        assert_same_result(best_partners(duplicated, b), best_partners(a, b), r_tol=1e-12)
        np.testing.assert_array_equal(duplicated.data, before)  # the input is not modified

    def test_float32_and_float64_codes_agree(self):
        a = topk_codes(2000, 120, 6, seed=21)
        b = topk_codes(2000, 90, 6, seed=22)
        assert_same_result(best_partners(a, b), best_partners(a.astype(np.float64), b.astype(np.float64)))

    def test_bad_options(self):
        a = sp.csr_matrix(np.eye(3))
        with pytest.raises(ValueError, match=r"`m` must be a positive integer; got 0. .*candidates per latent"):
            best_partners(a, a, m=0)
        with pytest.raises(ValueError, match=r"`backend` must be one of"):
            best_partners(a, a, backend="gpu")
        with pytest.raises(ValueError, match="compat=True. runs on the dense path"):
            best_partners(a, a, compat=True, backend="sparse")
        with pytest.raises(ValueError, match="no token rows"):
            best_partners(sp.csr_matrix((0, 3)), sp.csr_matrix((0, 3)))
        with pytest.raises(ValueError, match=r"`block_size` must be a positive integer; got 0. .*B latents per block"):
            best_partners(a, a, block_size=0)
        with pytest.raises(ValueError, match=r"`chunk_rows` must be a positive integer; got -1. .*token rows per sparse product"):
            best_partners(a, a, chunk_rows=-1)


class TestTopMUnsorted:
    """The exact segment-wise top-m behind the sparse path, against a full sort."""

    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("contiguous", [False, True])
    def test_matches_full_sort_with_ties_and_non_positive_values(self, seed, contiguous):
        rng = np.random.default_rng(seed)
        n_segments, m, n_bins = 30, 4, 16
        segment = rng.integers(0, n_segments, 5000)
        segment[segment == 7] = 8  # an empty segment
        index = np.arange(segment.size)
        rng.shuffle(index)
        value = np.round(rng.uniform(-0.3, 1.0, segment.size), 2)  # many ties, some r <= 0
        value[segment == 9] = -0.5  # a segment without positive values
        if contiguous:
            order = np.argsort(segment, kind="stable")
            segment, index, value = segment[order], index[order], value[order]
            indptr = np.r_[0, np.cumsum(np.bincount(segment, minlength=n_segments))]
        top_index, top_value = _top_m_unsorted(
            None if contiguous else segment, index, value, _r_bins(value, n_bins), n_segments, m, n_bins,
            indptr=indptr if contiguous else None,
        )
        for s in range(n_segments):
            members = np.flatnonzero((segment == s) & (value > 0))
            order = members[np.lexsort((index[members], -value[members]))][:m]
            np.testing.assert_array_equal(top_index[s, :order.size], index[order])
            np.testing.assert_array_equal(top_value[s, :order.size], value[order])
            assert np.all(top_index[s, order.size:] == -1) and np.all(np.isnan(top_value[s, order.size:]))


class TestCoactivationMoments:
    def _one_shot(self, a, b):
        return CoactivationMoments(a.shape[1], b.shape[1]).update(a, b).result()

    def test_chunked_updates_equal_one_shot(self):
        a, b, _ = correlated_pair(20)
        chunked = CoactivationMoments(60, 40)
        for start in range(0, 2000, 300):
            chunked.update(a[start:start + 300], b[start:start + 300])
        one, many = self._one_shot(a, b), chunked.result()
        np.testing.assert_allclose(one.r.toarray(), many.r.toarray(), atol=1e-12)
        assert one.n_tokens == many.n_tokens == 2000

    @pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
    def test_merge_in_any_order_equals_one_shot(self, order):
        a, b, _ = correlated_pair(21)
        parts = [CoactivationMoments(60, 40).update(a[s:s + 700], b[s:s + 700]) for s in (0, 700, 1400)]
        merged = parts[order[0]].merge(parts[order[1]]).merge(parts[order[2]])
        np.testing.assert_allclose(merged.result().r.toarray(), self._one_shot(a, b).r.toarray(), atol=1e-12)

    def test_merge_with_empty_accumulator(self):
        a, b, _ = correlated_pair(22)
        full = CoactivationMoments(60, 40).update(a, b)
        merged = CoactivationMoments(60, 40).merge(full)
        np.testing.assert_allclose(merged.result().r.toarray(), full.result().r.toarray())

    def test_result_matches_oracle_on_cofiring_pairs(self):
        a, b, _ = correlated_pair(23)
        r = self._one_shot(a, b).r.tocoo()
        oracle = dense_pearson(a, b)
        np.testing.assert_allclose(r.data, oracle[r.row, r.col], atol=R_TOL)

    def test_result_before_update_errors(self):
        with pytest.raises(RuntimeError, match=r"before any update\(\)"):
            CoactivationMoments(3, 3).result()

    def test_shape_errors(self):
        with pytest.raises(ValueError, match=r"`codes_a` has 2 latents but the accumulator was built for 3"):
            CoactivationMoments(3, 3).update(np.ones((4, 2)), np.ones((4, 3)))
        with pytest.raises(ValueError, match="cannot merge moments for 2x3"):
            CoactivationMoments(3, 3).merge(CoactivationMoments(2, 3))
        with pytest.raises(ValueError, match="negative values"):
            CoactivationMoments(1, 1).update(-np.ones((4, 1)), np.ones((4, 1)))

    def test_update_returns_self(self):
        acc = CoactivationMoments(1, 1)
        assert acc.update(np.ones((2, 1)), np.ones((2, 1))) is acc


def test_best_partners_is_frozen():
    a, b, _ = correlated_pair(30)
    best = best_partners(a, b)
    assert isinstance(best, BestPartners)
    with pytest.raises(Exception):
        best.n_tokens = 3  # type: ignore[misc]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        best_partners(a, b)  # no dead latents here: no warning
