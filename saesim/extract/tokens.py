"""Top-activating positions, top tokens and context windows of every latent.

For each latent of one SAE (one column of the token-by-latent codes) find
the ``k`` token rows where it fires most strongly, then read off the token at
each of those rows and a small context window around it (the paper's
``[pos - 2, pos + 2)``), for the junk filter and the semantic-subspace labels.

Everything is vectorised over latents: one ``lexsort`` of the non-zero entries
by (latent, -value, row) per block of columns, no Python loop over latents
(the authors' code ran two ``topk`` and ten ``decode`` calls per latent *per
layer pair*, authors_pipeline.md §4 item 18). Each distinct token id is
decoded once (a vocabulary-level cache), not once per (latent, position).

Two modes:

* default — only rows where the latent fires (value > 0) are candidates; ties
  are broken by (-value, row), so results are deterministic. A latent firing
  on fewer than ``k`` rows gets ``-1`` / ``nan`` padding.
* ``compat=True`` — the authors' ``torch.topk`` over *all* rows, zeros
  included: a latent with fewer than ``k`` firing rows is padded with
  zero-valued rows. ``torch.topk``'s order among equal values is
  implementation-defined (it differs between CPU and CUDA and between
  versions); we use the deterministic equivalent (-value, row), so the zero
  rows chosen are the lowest-numbered rows where the latent does not fire.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024), Sec. 3.2 and 4.2.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from saesim.validation import check_codes, check_positive_int

__all__ = [
    "DEFAULT_BLOCK_NNZ",
    "DEFAULT_TOP_K",
    "TopActivations",
    "TopContexts",
    "activation_frequency",
    "contexts",
    "dead_mask",
    "top_activations",
]

DEFAULT_TOP_K = 5
"""Top positions kept per latent (the paper's top-5)."""

DEFAULT_BLOCK_NNZ = 1 << 24
"""Non-zero entries sorted at once in :func:`top_activations` (bounds scratch memory)."""

DEFAULT_LEFT = 2
DEFAULT_RIGHT = 2


@dataclass(frozen=True)
class TopActivations:
    """The top-``k`` rows of every latent.

    Attributes
    ----------
    pos : ndarray of int64, shape (n_latents, k)
        Row indices into the codes, best first; -1 where padded.
    val : ndarray of float32, shape (n_latents, k)
        The code values at those rows; nan where padded (0.0 for the
        zero-valued rows that ``compat`` admits).
    n_active : ndarray of int64, shape (n_latents,)
        Rows where each latent fires (value > 0), over all rows.
    n_tokens : int
        Number of rows of the codes.
    compat : bool
        Whether zero-valued rows were admitted (the authors' ``torch.topk``).
    """

    pos: np.ndarray
    val: np.ndarray
    n_active: np.ndarray
    n_tokens: int
    compat: bool = False

    @property
    def k(self) -> int:
        """Slots per latent."""
        return int(self.pos.shape[1])

    @property
    def n_latents(self) -> int:
        """Number of latents (columns of the codes)."""
        return int(self.pos.shape[0])

    @property
    def active(self) -> np.ndarray:
        """bool (n_latents, k): the slot holds a row where the latent fires (> 0)."""
        return (self.pos >= 0) & (np.nan_to_num(self.val, nan=0.0) > 0)

    def summary(self) -> dict:
        """Counts for a tidy table row."""
        return {
            "n_tokens": self.n_tokens,
            "n_latents": self.n_latents,
            "k": self.k,
            "dead": int((self.n_active == 0).sum()),
            "fewer_than_k": int((self.n_active < self.k).sum()),
            "compat": self.compat,
        }


@dataclass(frozen=True)
class TopContexts:
    """Decoded top tokens and context windows of every latent.

    Attributes
    ----------
    top_tokens : ndarray of str (object), shape (n_latents, k)
        ``decode(id)`` of the token at each top row, exactly as decoded
        (newlines kept); "" where padded.
    token_ids : ndarray of int64, shape (n_latents, k)
        Those token ids; -1 where padded.
    windows : ndarray of str (object), shape (n_latents, k)
        Concatenated per-token decodes of positions ``[pos - left, pos + right)``
        of the same document, clipped at its edges, with each newline shown as
        the two characters ``\\n`` (the authors' labels); "" where padded.
    active : ndarray of bool, shape (n_latents, k)
        Whether the latent fires (> 0) at that slot.
    doc, position : ndarray of int64, shape (n_latents, k)
        Document and position in the token grid of each slot; -1 where padded.
    left, right : int
        The window bounds used.
    """

    top_tokens: np.ndarray
    token_ids: np.ndarray
    windows: np.ndarray
    active: np.ndarray
    doc: np.ndarray
    position: np.ndarray
    left: int = DEFAULT_LEFT
    right: int = DEFAULT_RIGHT

    @property
    def n_latents(self) -> int:
        return int(self.top_tokens.shape[0])

    def to_top_tokens(self):
        """The :class:`saesim.compare.filters.TopTokens` view used by the pair filters."""
        from saesim.compare.filters import TopTokens

        return TopTokens(strings=self.top_tokens, ids=self.token_ids, active=self.active)


def _as_csc(codes, name: str) -> sp.csc_matrix:
    checked = check_codes(codes, name=name)
    matrix = sp.csc_matrix(checked)
    matrix.sum_duplicates()
    if matrix.nnz and matrix.data.min() < 0:
        raise ValueError(
            f"`{name}` has negative values (min {matrix.data.min():.3g}); SAE codes are non-negative "
            "(TopK, JumpReLU, ReLU). Pass the codes from saesim.extract.saes.encode."
        )
    return matrix


def top_activations(
    codes,
    *,
    k: int = DEFAULT_TOP_K,
    compat: bool = False,
    block_nnz: int = DEFAULT_BLOCK_NNZ,
) -> TopActivations:
    """Top-``k`` activating rows of every latent (vectorised, deterministic).

    Parameters
    ----------
    codes : scipy.sparse matrix or ndarray, shape (n_tokens, n_latents)
        Non-negative codes; rows are token positions (as kept in the
        TokenGrid), columns latents.
    k : int, default 5
        Rows kept per latent.
    compat : bool, default False
        Reproduce the authors' ``torch.topk`` over all rows, zeros included
        (see the module notes for the tie order).
    block_nnz : int, default 2**24
        Non-zero entries sorted at once (memory bound); results do not
        depend on it.

    Returns
    -------
    TopActivations
        ``pos`` (row indices, -1 padded), ``val`` (nan padded), ``n_active``.

    Raises
    ------
    ValueError
        If ``codes`` is not 2-D, has non-finite or negative values, or ``k``
        is not a positive integer.

    Notes
    -----
    Entries are ordered by (latent, -value, row) with one ``np.lexsort`` per
    block of columns; the rank of an entry within its latent is its offset
    from the latent's first entry, and ranks ``< k`` are scattered into the
    output. Cost ``O(nnz log nnz)``; the codes are never densified.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> codes = sp.csr_matrix([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    >>> top = top_activations(codes, k=2)
    >>> top.pos.tolist(), top.n_active.tolist()
    ([[1, -1], [2, 0]], [1, 3])
    """
    k = check_positive_int(k, "k")
    check_positive_int(block_nnz, "block_nnz")
    csc = _as_csc(codes, "codes")
    n_tokens, n_latents = csc.shape
    pos = np.full((n_latents, k), -1, dtype=np.int64)
    val = np.full((n_latents, k), np.nan, dtype=np.float32)
    indptr = csc.indptr.astype(np.int64)
    n_active = np.zeros(n_latents, dtype=np.int64)

    lo = 0
    while lo < n_latents:
        hi = int(np.searchsorted(indptr, indptr[lo] + block_nnz, side="right")) - 1
        hi = min(max(hi, lo + 1), n_latents)
        start, stop = indptr[lo], indptr[hi]
        data = csc.data[start:stop]
        rows = csc.indices[start:stop].astype(np.int64)
        cols = np.repeat(np.arange(lo, hi, dtype=np.int64), np.diff(indptr[lo : hi + 1]))
        fires = data > 0
        data, rows, cols = data[fires], rows[fires], cols[fires]
        counts = np.bincount(cols - lo, minlength=hi - lo)
        n_active[lo:hi] = counts
        cols, rows, data = _by_latent_value_row(cols, rows, data, lo, hi, n_tokens)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        rank = np.arange(cols.size, dtype=np.int64) - first
        keep = rank < k
        pos[cols[keep], rank[keep]] = rows[keep]
        val[cols[keep], rank[keep]] = data[keep]
        lo = hi

    if compat:
        _fill_zero_rows(pos, val, n_active, n_tokens, k)
    return TopActivations(pos=pos, val=val, n_active=n_active, n_tokens=int(n_tokens), compat=compat)


def _by_latent_value_row(cols, rows, data, lo: int, hi: int, n_tokens: int):
    """Entries ordered by (latent, -value, row): ``np.lexsort((rows, -data, cols))``.

    Positive float32 values order like their bit patterns, so when latent,
    inverted value bits and row fit in 64 bits (offline: 13 + 32 + 18) one
    uint64 sort replaces the lexsort, several times faster, same order.
    """
    row_bits = max(1, (max(n_tokens, 1) - 1).bit_length())
    col_bits = max(1, (hi - lo - 1).bit_length())
    if data.dtype != np.float32 or col_bits + 32 + row_bits > 64:
        order = np.lexsort((rows, -data, cols))
        return cols[order], rows[order], data[order]
    key = (cols - lo).astype(np.uint64) << np.uint64(32 + row_bits)
    key |= (~data.view(np.uint32)).astype(np.uint64) << np.uint64(row_bits)
    key |= rows.astype(np.uint64)
    key.sort()
    cols = (key >> np.uint64(32 + row_bits)).astype(np.int64) + lo
    rows = (key & np.uint64((1 << row_bits) - 1)).astype(np.int64)
    data = (~((key >> np.uint64(row_bits)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)).view(np.float32)
    return cols, rows, data


def _fill_zero_rows(pos, val, n_active, n_tokens, k) -> None:
    """Pad latents firing on < k rows with the lowest rows where they are 0 (in place)."""
    short = np.flatnonzero(n_active < k)
    if short.size == 0 or n_tokens == 0:
        return
    n_cand = min(n_tokens, 2 * k)  # fewer than k rows are taken, so this holds >= k free rows (or all)
    cand = np.arange(n_cand, dtype=np.int64)
    for block in np.array_split(short, max(1, short.size // 65_536 + 1)):
        if block.size == 0:
            continue
        nb = block.size
        taken_rows = pos[block]  # (nb, k), -1 padded
        taken_key = (np.arange(nb)[:, None] * n_cand + taken_rows)[(taken_rows >= 0) & (taken_rows < n_cand)]
        cand_key = np.arange(nb)[:, None] * n_cand + cand[None, :]
        is_taken = np.isin(cand_key, taken_key)  # (nb, n_cand)
        free_order = np.argsort(is_taken, axis=1, kind="stable")  # free rows first, ascending
        free_rows = np.take_along_axis(np.broadcast_to(cand, (nb, n_cand)), free_order, axis=1)
        n_free = n_cand - is_taken.sum(axis=1)
        slot = np.arange(k)[None, :] - n_active[block][:, None]  # index into free rows
        ok = (slot >= 0) & (slot < n_free[:, None])
        picked = np.take_along_axis(free_rows, np.clip(slot, 0, n_cand - 1), axis=1)
        sub_pos = pos[block]
        sub_val = val[block]
        sub_pos[ok] = picked[ok]
        sub_val[ok] = 0.0
        pos[block] = sub_pos
        val[block] = sub_val


def contexts(
    top: TopActivations,
    ids,
    decode: Callable[[int], str],
    *,
    row_doc=None,
    row_pos=None,
    left: int = DEFAULT_LEFT,
    right: int = DEFAULT_RIGHT,
    valid=None,
    decode_cache: MutableMapping[int, str] | None = None,
) -> TopContexts:
    """Top tokens and context windows of every latent's top rows.

    Parameters
    ----------
    top : TopActivations
        From :func:`top_activations`.
    ids : ndarray of int, shape (n_docs, seq_len) or (n_tokens,)
        Token ids of the grid (a 1-D array is one document).
    decode : callable int -> str
        Decodes one token id (e.g. ``tokenizer.decode``). Called once per
        distinct id.
    row_doc, row_pos : ndarray of int64, shape (n_tokens,), optional
        Document and position of each codes row (the TokenGrid's map of kept
        positions). Omitted, a row is the flat index ``doc * seq_len + pos``
        into ``ids`` (every position kept, as under ``compat``).
    left, right : int, default 2
        The window is positions ``[pos - left, pos + right)`` of the same
        document, clipped to it (the paper's ``[pos - 2, pos + 2)``).
    valid : ndarray of bool, shape like ``ids``, optional
        Positions allowed in windows (e.g. the attention mask, to leave out
        padding). Default: all.
    decode_cache : dict, optional
        A vocabulary-level cache ``id -> str``, filled and reused (share it
        across the layers of one model).

    Returns
    -------
    TopContexts

    Raises
    ------
    ValueError
        If the rows of ``top`` do not fit ``ids`` / ``row_doc`` / ``row_pos``.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> ids = np.array([[5, 6, 7, 8]])
    >>> top = top_activations(sp.csr_matrix([[0.0], [0.0], [1.0], [0.0]]), k=1)
    >>> contexts(top, ids, lambda i: f"<{i}>").windows.tolist()
    [['<5><6><7><8>']]
    """
    if not isinstance(top, TopActivations):
        raise TypeError(f"`top` must be a TopActivations from top_activations(); got {type(top).__name__}.")
    for name, value in (("left", left), ("right", right)):
        check_positive_int(value, name, minimum=0)
    if left + right < 1:
        raise ValueError("`left + right` must be at least 1 (the window must contain the top token).")
    grid = np.asarray(ids)
    if grid.ndim == 1:
        grid = grid[None, :]
    if grid.ndim != 2 or not np.issubdtype(grid.dtype, np.integer):
        raise ValueError(
            f"`ids` must be an integer array of shape (n_docs, seq_len) or (n_tokens,); got {grid.shape} {grid.dtype}."
        )
    n_docs, seq_len = grid.shape
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.ndim == 1:
            valid = valid[None, :]
        if valid.shape != grid.shape:
            raise ValueError(f"`valid` has shape {valid.shape} but `ids` has {grid.shape}; pass the grid's mask.")

    pos = top.pos
    used = pos >= 0
    rows = pos[used]
    if (row_doc is None) != (row_pos is None):
        raise ValueError("Give both `row_doc` and `row_pos` (the TokenGrid's row map), or neither.")
    if row_doc is None:
        if rows.size and rows.max() >= n_docs * seq_len:
            raise ValueError(
                f"`top` refers to row {rows.max()} but `ids` has only {n_docs * seq_len} positions; pass "
                "`row_doc`/`row_pos` when the codes rows are the grid's kept positions."
            )
        doc_u, pos_u = np.divmod(rows, seq_len)
    else:
        row_doc = np.asarray(row_doc, dtype=np.int64)
        row_pos = np.asarray(row_pos, dtype=np.int64)
        if row_doc.shape != row_pos.shape or row_doc.ndim != 1:
            raise ValueError(
                f"`row_doc` and `row_pos` must be 1-D of equal length; got {row_doc.shape}, {row_pos.shape}."
            )
        if row_doc.size != top.n_tokens:
            raise ValueError(
                f"`row_doc` has {row_doc.size} rows but the codes had {top.n_tokens}; both must come "
                "from the same TokenGrid (rerun with the same profile)."
            )
        doc_u, pos_u = row_doc[rows], row_pos[rows]
        if rows.size and (doc_u.min() < 0 or doc_u.max() >= n_docs or pos_u.min() < 0 or pos_u.max() >= seq_len):
            raise ValueError(f"`row_doc`/`row_pos` point outside `ids` of shape {grid.shape}.")

    offsets = np.arange(-left, right, dtype=np.int64)
    q = pos_u[:, None] + offsets[None, :]
    inside = (q >= 0) & (q < seq_len)
    q_clip = np.clip(q, 0, seq_len - 1)
    if valid is not None:
        inside &= valid[doc_u[:, None], q_clip]
    win_ids = np.where(inside, grid[doc_u[:, None], q_clip], -1)
    top_ids_u = grid[doc_u, pos_u].astype(np.int64)

    # vocabulary-level decode: each distinct id once
    vocab = np.unique(np.concatenate([top_ids_u, win_ids[inside]]))
    cache = {} if decode_cache is None else decode_cache
    strings = np.empty(vocab.size, dtype=object)
    for i, token in enumerate(vocab.tolist()):
        text = cache.get(token)
        if text is None:
            text = decode(int(token))
            if not isinstance(text, str):
                raise TypeError(f"`decode` must return str; got {type(text).__name__} for id {token}.")
            cache[token] = text
        strings[i] = text
    escaped = np.array([s.replace("\n", "\\n") for s in strings], dtype=object) if vocab.size else strings

    window_u = np.full(rows.size, "", dtype=object)
    if vocab.size:
        lookup = np.searchsorted(vocab, np.where(inside, win_ids, vocab[0]))
        pieces = np.where(inside, escaped[lookup], "")
        for j in range(offsets.size):
            window_u = window_u + pieces[:, j]
        top_str_u = strings[np.searchsorted(vocab, top_ids_u)]
    else:
        top_str_u = np.empty(0, dtype=object)

    shape = pos.shape
    top_tokens = np.full(shape, "", dtype=object)
    windows = np.full(shape, "", dtype=object)
    token_ids = np.full(shape, -1, dtype=np.int64)
    doc = np.full(shape, -1, dtype=np.int64)
    position = np.full(shape, -1, dtype=np.int64)
    top_tokens[used] = top_str_u
    windows[used] = window_u
    token_ids[used] = top_ids_u
    doc[used] = doc_u
    position[used] = pos_u
    return TopContexts(
        top_tokens=top_tokens,
        token_ids=token_ids,
        windows=windows,
        active=top.active,
        doc=doc,
        position=position,
        left=int(left),
        right=int(right),
    )


def activation_frequency(codes) -> np.ndarray:
    """Fraction of token rows where each latent fires (> 0).

    Parameters
    ----------
    codes : scipy.sparse matrix or ndarray, shape (n_tokens, n_latents)

    Returns
    -------
    ndarray of float64, shape (n_latents,)
    """
    checked = check_codes(codes, name="codes")
    n_tokens, n_latents = checked.shape
    if n_tokens == 0:
        raise ValueError("`codes` has no rows; activation frequencies need at least one token.")
    if sp.issparse(checked):
        csr = sp.csr_matrix(checked)
        csr.sum_duplicates()
        counts = np.bincount(csr.indices[csr.data > 0], minlength=n_latents)
    else:
        counts = (checked > 0).sum(axis=0)
    return counts.astype(np.float64) / n_tokens


def dead_mask(codes) -> np.ndarray:
    """bool (n_latents,): latents that never fire (> 0) on these rows."""
    return activation_frequency(codes) == 0
