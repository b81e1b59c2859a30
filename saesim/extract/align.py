"""Pair the tokens of models with different tokenizers by identical character spans.

Each model tokenises the same texts with its own tokenizer (:func:`saesim.extract.data.tokenize`).
A position enters the comparison when a token of every model covers the *identical* character span
of the text (fast-tokenizer offset mappings): padding and special tokens are never candidates, and a
span that two tokens of one model share (a multi-byte character split by a byte-level BPE) is
ambiguous and dropped, never guessed. Causal tokenizers that put the leading space inside the word
token (SentencePiece's ``▁world``, byte-level BPE's ``Ġworld``) therefore pair only tokens that read
exactly the same text before them. Tokenizers that segment identically (MiniLM's WordPiece and
MPNet's, ids shifted by 4) keep every position.

:func:`alignment_report` says what the pairing leaves out: each model's kept fraction, the most
frequent dropped token strings and the kept fraction by token-frequency band.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence

import numpy as np

from saesim.extract.data import TokenGrid, TokenizerMismatchError, tokenizer_name

__all__ = ["FREQUENCY_BANDS", "align_grids", "alignment_report", "token_spans"]

logger = logging.getLogger(__name__)

FREQUENCY_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("≥ 1000", 1000, None), ("100–999", 100, 1000), ("10–99", 10, 100), ("< 10", 1, 10),
)
"""Bands of a token's count in the corpus (in its own model's tokenisation) for :func:`alignment_report`."""


def token_spans(tokenizer, texts: Sequence[str], grid: TokenGrid, *, max_length: int) -> np.ndarray:
    """Character span ``(start, end)`` of every position of ``grid`` in its text.

    ``grid`` must be :func:`~saesim.extract.data.tokenize` of ``texts`` by ``tokenizer`` at
    ``max_length``; the texts are encoded again with offset mappings and the ids checked.

    Returns
    -------
    ndarray of int64, shape (N, S, 2)
        Padding and special tokens have ``(0, 0)``.

    Raises
    ------
    TokenizerMismatchError
        ``tokenizer`` is not a fast tokenizer (no offset mapping), or its ids differ from the grid's
        (the grid was made from other texts or another tokenizer).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TokenizerMismatchError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)} is not a fast tokenizer, so it gives no character offsets; tokens of models "
            "with different tokenizers are paired by character span. Load it with `use_fast=True`."
        )
    name = tokenizer_name(tokenizer)
    enc = tokenizer(list(texts), padding="longest", truncation=True, max_length=max_length, padding_side="right",
                    return_offsets_mapping=True, return_tensors="np")
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    if ids.shape != grid.ids.shape or not np.array_equal(ids, grid.ids):
        raise TokenizerMismatchError(
            f"the grid of tokenizer {grid.tokenizer} is not {name}'s tokenisation of these {len(texts)} texts "
            f"at max_length {max_length}; tokenise the same texts with each model's own tokenizer."
        )
    return np.asarray(enc["offset_mapping"], dtype=np.int64)


def _candidates(grid: TokenGrid) -> np.ndarray:
    """Positions that may enter the comparison: real tokens that are not special tokens."""
    special = np.asarray(grid.special_ids, dtype=np.int64)
    return (grid.attention_mask == 1) & ~np.isin(grid.ids, special)


def _unique_spans(spans: np.ndarray, candidate: np.ndarray) -> dict[tuple[int, int], int]:
    """Span -> position for one document's candidates, without empty or repeated spans."""
    positions = np.flatnonzero(candidate)
    keys = [(int(s), int(e)) for s, e in spans[positions]]
    counts = collections.Counter(keys)
    return {key: int(p) for key, p in zip(keys, positions) if counts[key] == 1 and key[1] > key[0]}


def align_grids(grid: TokenGrid, tokenizer, others, *, texts: Sequence[str], max_length: int,
                names: tuple[str, ...] | None = None, min_kept: float = 0.0) -> TokenGrid:
    """Keep the positions whose character span is a token of every model, paired in text order.

    Parameters
    ----------
    grid : TokenGrid
        The first model's grid of ``texts`` (its tokenizer names the result).
    tokenizer : transformers fast tokenizer
        The tokenizer that made ``grid``.
    others : sequence of (TokenGrid, tokenizer)
        The other models' grids of the same texts, with their tokenizers. Grids of ``grid``'s own
        tokenizer are skipped.
    texts : sequence of str
        The texts every grid was made from.
    max_length : int
        The truncation length the grids were made with (a span past one model's cut has no token
        there, so it is dropped).
    names : tuple of str, optional
        Names of the models for messages (first = ``grid``'s).
    min_kept : float, default 0.0
        Smallest fraction of each model's candidate tokens (real, non-special) that must be paired.

    Returns
    -------
    TokenGrid
        ``grid`` with ``keep`` reduced to the paired positions and one view per other tokenizer (same
        ``n_tokens``; row ``t`` of every view is the same span of the same text).

    Raises
    ------
    TokenizerMismatchError
        ``compat`` grids (they keep every position), grids of other texts, a slow tokenizer, or a
        model whose kept fraction is below ``min_kept`` (naming both tokenizers and the fraction).
    """
    others = [(g, tok) for g, tok in others if g.tokenizer != grid.tokenizer]
    names = tuple(names) if names is not None else tuple(f"model {i}" for i in range(len(others) + 1))
    if not others:
        return grid
    if grid.compat or any(g.compat for g, _ in others):
        raise TokenizerMismatchError(
            f"`compat` grids keep every position (padding and special tokens included), so grids of different "
            f"tokenizers ({grid.tokenizer} and {', '.join(g.tokenizer for g, _ in others)}) cannot be paired; "
            "run models with different tokenizers with compat: false."
        )
    texts = list(texts)
    grids = [grid] + [g for g, _ in others]
    for g in grids:
        if g.n_docs != len(texts):
            raise TokenizerMismatchError(
                f"the grid of {g.tokenizer} has {g.n_docs} documents but there are {len(texts)} texts; tokenise "
                "the same texts with every model's tokenizer."
            )
    spans = [token_spans(tok, texts, g, max_length=max_length) for g, tok in [(grid, tokenizer), *others]]
    candidates = [_candidates(g) for g in grids]
    keeps = [np.zeros_like(g.keep) for g in grids]
    for doc in range(grid.n_docs):
        maps = [_unique_spans(spans[v][doc], candidates[v][doc]) for v in range(len(grids))]
        common = set(maps[0]).intersection(*maps[1:])
        if not common:
            continue
        order = sorted(common)
        for v, mapping in enumerate(maps):
            positions = np.array([mapping[span] for span in order])
            if np.any(np.diff(positions) <= 0):  # spans out of text order: no tokenizer does this
                raise TokenizerMismatchError(
                    f"document {doc}: the tokens of {names[v]} ({grids[v].tokenizer}) are not in text order; "
                    "their rows cannot be paired with another model's."
                )
            keeps[v][doc, positions] = True
    for v, g in enumerate(grids):
        kept = float(keeps[v].sum() / max(candidates[v].sum(), 1))
        if kept < min_kept:
            partners = ", ".join(f"{names[u]} ({grids[u].tokenizer})" for u in range(len(grids)) if u != v)
            raise TokenizerMismatchError(
                f"only {kept:.1%} of the tokens of {names[v]} ({g.tokenizer}) cover the same character span as a "
                f"token of {partners}; the profile asks for at least {min_kept:.0%} (data.min_aligned). These "
                "tokenizers segment the text too differently to pair their tokens; compare other models or "
                "lower data.min_aligned."
            )
    views = tuple(
        TokenGrid(ids=g.ids, attention_mask=g.attention_mask, keep=keeps[v + 1], tokenizer=g.tokenizer,
                  special_ids=g.special_ids, compat=g.compat)
        for v, (g, _) in enumerate(others)
    )
    logger.info("aligned grids by character span: %d of %d candidate tokens of %s kept", int(keeps[0].sum()),
                int(candidates[0].sum()), grid.tokenizer)
    return TokenGrid(ids=grid.ids, attention_mask=grid.attention_mask, keep=keeps[0], tokenizer=grid.tokenizer,
                     special_ids=grid.special_ids, compat=grid.compat, others=views)


def alignment_report(grid: TokenGrid, tokenizers: dict, *, names: dict | None = None, top: int = 20) -> dict:
    """What the span alignment of ``grid`` kept and dropped, for every view.

    Parameters
    ----------
    grid : TokenGrid
        An aligned grid (:func:`align_grids`).
    tokenizers : dict
        Tokenizer name (:func:`~saesim.extract.data.tokenizer_name`) -> tokenizer, for every view.
    names : dict, optional
        Tokenizer name -> model name, for the report.
    top : int, default 20
        How many of the most frequent dropped token strings to list.

    Returns
    -------
    dict
        ``{"n_aligned": int, "models": [...]}``; per model: ``tokenizer``, ``model``,
        ``n_candidates`` (real, non-special tokens), ``n_kept``, ``kept_fraction``, ``top_dropped``
        (list of ``[token string, count]``) and ``bands`` (list of ``{band, n_tokens,
        kept_fraction}`` by the token's corpus count, :data:`FREQUENCY_BANDS`).
    """
    models = []
    for view in (grid, *grid.others):
        tok = tokenizers[view.tokenizer]
        cand = _candidates(view)
        ids = view.ids[cand]
        kept = view.keep[cand]
        dropped = collections.Counter(ids[~kept].tolist())
        top_dropped = [[str(tok.convert_ids_to_tokens(int(i))), int(n)] for i, n in dropped.most_common(top)]
        uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        freq = counts[inverse]
        bands = []
        for label, lo, hi in FREQUENCY_BANDS:
            sel = (freq >= lo) & (freq < hi if hi is not None else True)
            bands.append({"band": label, "n_tokens": int(sel.sum()),
                          "kept_fraction": float(kept[sel].mean()) if sel.any() else None})
        models.append({
            "tokenizer": view.tokenizer, "model": (names or {}).get(view.tokenizer, view.tokenizer),
            "n_candidates": int(cand.sum()), "n_kept": int(view.n_tokens),
            "kept_fraction": float(view.n_tokens / max(int(cand.sum()), 1)),
            "top_dropped": top_dropped, "bands": bands,
        })
    return {"n_aligned": int(grid.n_tokens), "models": models}
