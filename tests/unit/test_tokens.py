"""Tests for saesim.extract.tokens: top activations vs brute force, contexts vs a per-latent loop."""

import numpy as np
import pytest
import scipy.sparse as sp

from saesim.extract.tokens import (
    TopActivations,
    activation_frequency,
    contexts,
    dead_mask,
    top_activations,
)

SEEDS = [0, 1, 2]


def tied_codes(seed, n_tokens=300, n_latents=40, density=0.05):
    """Non-negative sparse codes with many exact ties, a dead and a rare latent."""
    rng = np.random.default_rng(seed)
    dense = rng.integers(1, 4, size=(n_tokens, n_latents)).astype(np.float32)  # values 1..3: ties
    dense *= rng.random((n_tokens, n_latents)) < density
    dense[:, 0] = 0.0  # dead latent
    dense[:, 1] = 0.0
    dense[[7, 250], 1] = [2.0, 2.0]  # fires twice, tied
    return sp.csr_matrix(dense)


def oracle_top(codes, k, compat):
    """Brute force: per latent, stable argsort of the dense column by (-value, row)."""
    dense = codes.toarray()
    n_tokens, n_latents = dense.shape
    pos = np.full((n_latents, k), -1, dtype=np.int64)
    val = np.full((n_latents, k), np.nan, dtype=np.float32)
    for j in range(n_latents):
        col = dense[:, j]
        order = np.argsort(-col, kind="stable")  # ties -> lower row first
        if not compat:
            order = order[col[order] > 0]
        order = order[:k]
        pos[j, : order.size] = order
        val[j, : order.size] = col[order]
    return pos, val


class TestTopActivations:
    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("k", [1, 5, 12])
    @pytest.mark.parametrize("compat", [False, True])
    def test_matches_brute_force(self, seed, k, compat):
        codes = tied_codes(seed)
        top = top_activations(codes, k=k, compat=compat)
        pos, val = oracle_top(codes, k, compat)
        np.testing.assert_array_equal(top.pos, pos)
        np.testing.assert_array_equal(top.val, val)
        np.testing.assert_array_equal(top.n_active, (codes.toarray() > 0).sum(axis=0))

    def test_float64_codes_take_the_lexsort_path_and_agree(self):
        codes = tied_codes(0).astype(np.float64)
        top = top_activations(codes, k=5)
        pos, val = oracle_top(codes, 5, False)
        np.testing.assert_array_equal(top.pos, pos)
        np.testing.assert_array_equal(top.val, val)

    @pytest.mark.parametrize("n_tokens", [300, 2**40])  # 2^40 rows: too wide to pack, lexsort instead
    def test_packed_sort_orders_like_lexsort(self, n_tokens):
        from saesim.extract.tokens import _by_latent_value_row

        rng = np.random.default_rng(3)
        cols = np.sort(rng.integers(10, 60, 5000))
        rows = rng.integers(0, 300, 5000)
        data = np.concatenate([rng.random(4000), rng.integers(1, 3, 1000)]).astype(np.float32)
        data[:5] = [1e-40, 3e38, 1e-40, 0.5, 0.5]  # subnormal, huge, ties
        order = np.lexsort((rows, -data, cols))
        got = _by_latent_value_row(cols, rows, data, 10, 60, n_tokens)
        for got_part, expected in zip(got, (cols[order], rows[order], data[order])):
            np.testing.assert_array_equal(got_part, expected)

    @pytest.mark.parametrize("seed", SEEDS)
    def test_small_blocks_give_the_same_answer(self, seed):
        codes = tied_codes(seed)
        full = top_activations(codes, k=5)
        blocked = top_activations(codes, k=5, block_nnz=7)
        np.testing.assert_array_equal(full.pos, blocked.pos)
        np.testing.assert_array_equal(full.val, blocked.val)

    def test_only_firing_positions_by_default(self):
        top = top_activations(tied_codes(0), k=5)
        assert top.pos[0].tolist() == [-1] * 5 and np.isnan(top.val[0]).all()
        assert top.pos[1].tolist() == [7, 250, -1, -1, -1]
        assert top.active[1].tolist() == [True, True, False, False, False]

    def test_compat_pads_with_lowest_zero_rows(self):
        top = top_activations(tied_codes(0), k=5, compat=True)
        assert top.pos[0].tolist() == [0, 1, 2, 3, 4] and top.val[0].tolist() == [0.0] * 5
        assert top.pos[1].tolist() == [7, 250, 0, 1, 2]
        assert top.active[1].tolist() == [True, True, False, False, False]

    def test_compat_skips_rows_where_the_latent_fires(self):
        codes = sp.csr_matrix(np.array([[1.0], [0.0], [2.0], [0.0], [0.0]]))
        top = top_activations(codes, k=4, compat=True)
        assert top.pos[0].tolist() == [2, 0, 1, 3]

    def test_fewer_tokens_than_k(self):
        codes = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 0.0]]))
        assert top_activations(codes, k=3).pos.tolist() == [[0, -1, -1], [-1, -1, -1]]
        assert top_activations(codes, k=3, compat=True).pos.tolist() == [[0, 1, -1], [0, 1, -1]]

    def test_explicit_zeros_do_not_fire(self):
        codes = sp.csr_matrix((np.array([0.0, 3.0]), (np.array([0, 1]), np.array([0, 0]))), shape=(3, 1))
        top = top_activations(codes, k=2)
        assert top.pos.tolist() == [[1, -1]] and top.n_active.tolist() == [1]

    def test_dense_input_accepted(self):
        codes = tied_codes(1)
        np.testing.assert_array_equal(top_activations(codes.toarray(), k=3).pos, top_activations(codes, k=3).pos)

    def test_deterministic(self):
        a, b = top_activations(tied_codes(2), k=5), top_activations(tied_codes(2), k=5)
        np.testing.assert_array_equal(a.pos, b.pos)

    def test_negative_codes_rejected(self):
        with pytest.raises(ValueError, match="negative values"):
            top_activations(sp.csr_matrix(np.array([[-1.0, 1.0]])))

    @pytest.mark.parametrize("k", [0, -1, 2.5, True])
    def test_bad_k_rejected(self, k):
        with pytest.raises(ValueError, match="`k` must be a positive integer"):
            top_activations(tied_codes(0), k=k)

    def test_summary(self):
        summary = top_activations(tied_codes(0), k=5).summary()
        assert summary["dead"] >= 1 and summary["n_latents"] == 40


def loop_contexts(top, ids, decode, row_doc, row_pos, left, right):
    """Oracle: the authors' per-latent loop (one decode per token, windows within the doc)."""
    n, k = top.pos.shape
    tokens = np.full((n, k), "", dtype=object)
    windows = np.full((n, k), "", dtype=object)
    for j in range(n):
        for s in range(k):
            r = top.pos[j, s]
            if r < 0:
                continue
            d, p = row_doc[r], row_pos[r]
            tokens[j, s] = decode(int(ids[d, p]))
            lo, hi = max(0, p - left), min(ids.shape[1], p + right)
            windows[j, s] = "".join(decode(int(t)) for t in ids[d, lo:hi]).replace("\n", "\\n")
    return tokens, windows


VOCAB = ["<pad>", "the", " cat", "\n", " sat", " on", "mat", "\n\n", " dog", "."]


class CountingDecoder:
    def __init__(self):
        self.calls = []

    def __call__(self, token_id):
        self.calls.append(token_id)
        return VOCAB[token_id]


def grid_and_codes(seed, n_docs=6, seq_len=9, n_latents=25):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(VOCAB), size=(n_docs, seq_len))
    keep = rng.random((n_docs, seq_len)) < 0.8
    row_doc, row_pos = np.nonzero(keep)
    codes = sp.random(row_doc.size, n_latents, density=0.15, random_state=rng, format="csr", dtype=np.float32)
    return ids, row_doc.astype(np.int64), row_pos.astype(np.int64), codes


class TestContexts:
    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("left, right", [(2, 2), (0, 1), (3, 1)])
    def test_matches_per_latent_loop(self, seed, left, right):
        ids, row_doc, row_pos, codes = grid_and_codes(seed)
        top = top_activations(codes, k=5)
        decoder = CountingDecoder()
        ctx = contexts(top, ids, decoder, row_doc=row_doc, row_pos=row_pos, left=left, right=right)
        tokens, windows = loop_contexts(top, ids, VOCAB.__getitem__, row_doc, row_pos, left, right)
        assert ctx.top_tokens.tolist() == tokens.tolist()
        assert ctx.windows.tolist() == windows.tolist()
        used = top.pos >= 0
        np.testing.assert_array_equal(ctx.token_ids[used], ids[row_doc[top.pos[used]], row_pos[top.pos[used]]])
        assert (ctx.token_ids[~used] == -1).all()

    def test_each_distinct_id_decoded_once(self):
        ids, row_doc, row_pos, codes = grid_and_codes(0)
        decoder = CountingDecoder()
        contexts(top_activations(codes, k=5), ids, decoder, row_doc=row_doc, row_pos=row_pos)
        assert len(decoder.calls) == len(set(decoder.calls))

    def test_decode_cache_is_reused(self):
        ids, row_doc, row_pos, codes = grid_and_codes(0)
        top = top_activations(codes, k=5)
        cache, decoder = {}, CountingDecoder()
        contexts(top, ids, decoder, row_doc=row_doc, row_pos=row_pos, decode_cache=cache)
        n_first = len(decoder.calls)
        contexts(top, ids, decoder, row_doc=row_doc, row_pos=row_pos, decode_cache=cache)
        assert n_first > 0 and len(decoder.calls) == n_first

    def test_flat_rows_without_row_map(self):
        ids = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
        codes = sp.csr_matrix(np.eye(8, dtype=np.float32)[:, [4, 3]])  # latent 0 fires at row 4 = (1, 0)
        ctx = contexts(top_activations(codes, k=1), ids, VOCAB.__getitem__)
        assert ctx.top_tokens[:, 0].tolist() == [" on", " sat"]
        # doc 1 starts at row 4: its window does not bleed into doc 0, and doc 0's stops at its end
        assert ctx.windows[:, 0].tolist() == [" onmat", " cat\\n sat"]
        assert ctx.doc[:, 0].tolist() == [1, 0] and ctx.position[:, 0].tolist() == [0, 3]

    def test_newlines_escaped_in_windows_only(self):
        ids = np.array([[1, 2, 3, 7]])
        codes = sp.csr_matrix(np.array([[0.0], [0.0], [1.0], [0.0]]))
        ctx = contexts(top_activations(codes, k=1), ids, VOCAB.__getitem__)
        assert ctx.top_tokens[0, 0] == "\n"
        assert ctx.windows[0, 0] == "the cat\\n\\n\\n"  # [pos - 2, pos + 2) = positions 0..3

    def test_valid_mask_drops_padding_from_windows(self):
        ids = np.array([[1, 2, 0, 0]])
        valid = np.array([[True, True, False, False]])
        codes = sp.csr_matrix(np.array([[0.0], [1.0], [0.0], [0.0]]))
        top = top_activations(codes, k=1)
        assert contexts(top, ids, VOCAB.__getitem__).windows[0, 0] == "the cat<pad>"
        assert contexts(top, ids, VOCAB.__getitem__, valid=valid).windows[0, 0] == "the cat"

    def test_to_top_tokens_for_filters(self):
        ids, row_doc, row_pos, codes = grid_and_codes(1)
        ctx = contexts(top_activations(codes, k=5), ids, VOCAB.__getitem__, row_doc=row_doc, row_pos=row_pos)
        tt = ctx.to_top_tokens()
        assert tt.strings.shape == (codes.shape[1], 5)
        np.testing.assert_array_equal(tt.active, ctx.active)

    def test_row_map_length_mismatch(self):
        ids, row_doc, row_pos, codes = grid_and_codes(0)
        with pytest.raises(ValueError, match="same TokenGrid"):
            contexts(top_activations(codes, k=2), ids, VOCAB.__getitem__, row_doc=row_doc[:-1], row_pos=row_pos[:-1])

    def test_only_one_of_row_doc_row_pos(self):
        ids, row_doc, _, codes = grid_and_codes(0)
        with pytest.raises(ValueError, match="both `row_doc` and `row_pos`"):
            contexts(top_activations(codes, k=2), ids, VOCAB.__getitem__, row_doc=row_doc)

    def test_rows_beyond_grid(self):
        codes = sp.csr_matrix(np.ones((10, 1), dtype=np.float32))
        with pytest.raises(ValueError, match="only 4 positions"):
            contexts(top_activations(codes, k=10), np.zeros((1, 4), dtype=np.int64), VOCAB.__getitem__)

    def test_not_top_activations(self):
        with pytest.raises(TypeError, match="TopActivations"):
            contexts(np.zeros((2, 2)), np.zeros((1, 4), dtype=np.int64), VOCAB.__getitem__)

    def test_dead_latents_give_empty_strings(self):
        ids, row_doc, row_pos, codes = grid_and_codes(0)
        codes = sp.hstack([codes, sp.csr_matrix((codes.shape[0], 1))]).tocsr()
        ctx = contexts(top_activations(codes, k=3), ids, VOCAB.__getitem__, row_doc=row_doc, row_pos=row_pos)
        assert ctx.top_tokens[-1].tolist() == ["", "", ""] and ctx.windows[-1].tolist() == ["", "", ""]


class TestFrequency:
    def test_frequency_and_dead_mask(self):
        codes = tied_codes(0)
        dense = codes.toarray()
        np.testing.assert_allclose(activation_frequency(codes), (dense > 0).mean(axis=0))
        np.testing.assert_array_equal(dead_mask(codes), (dense > 0).sum(axis=0) == 0)
        np.testing.assert_allclose(activation_frequency(dense), (dense > 0).mean(axis=0))

    def test_no_rows(self):
        with pytest.raises(ValueError, match="no rows"):
            activation_frequency(sp.csr_matrix((0, 3)))


def test_result_type():
    assert isinstance(top_activations(tied_codes(0), k=2), TopActivations)
