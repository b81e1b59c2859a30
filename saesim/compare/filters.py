"""Pair filters: non-concept ("junk") tokens, top-token overlap, correlation cut.

Each filter is a pure function returning a boolean mask over pairs (True =
keep), so filters compose by ``&`` and each is tested on its own. This also
rules out the authors' for-else bug, where the keyword filter's result was
silently replaced by the unfiltered pairing (authors_pipeline.md finding 2).

Two modes:

* ``compat=True`` — the authors' rule: take each latent's top-5 positions over
  all positions (zeros included), decode each token on its own, reject the pair
  if any of the 10 strings is *exactly* in the junk list, otherwise keep it
  only if the two string sets share an exact string.
* default (corrected) — only positions where the latent fires count; tokens
  are normalised (NFKC, WordPiece ``##`` removed, whitespace stripped and
  collapsed, lower-cased); a token is non-concept when it is a special token
  of the tokenizer, empty after normalisation, or made only of punctuation and
  symbols (plus anything in an extra junk list); a latent needs at least
  ``min_active`` firing positions; overlap is on normalised strings.

References
----------
Lan et al., arXiv:2410.06981, Sec. 3.2 and App. A.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

__all__ = [
    "JUNK_LISTS",
    "SaeLayer",
    "TopTokens",
    "correlation_mask",
    "junk_overlap_mask",
    "is_nonconcept_token",
    "normalise_token",
]

JUNK_LISTS: dict[str, tuple[str, ...]] = {
    # main_results_nbs/getScores_pythia
    "authors_pythia": (".", "\\n", "\n", "", " ", "-", "<bos>", ",", "!", "?", "<|endoftext|>", "|bos|"),
    # main_results_nbs/getScores_gemma and run_pipeline/run_expm_fns.py (nonconc_words)
    "authors_gemma": (".", "\\n", "\n", "", " ", "-", ",", "!", "?", "<|endoftext|>", "<bos>", "|bos|", "<pad>"),
    # _old_code/.../loop_gemma_rmvJunk_1_1 and the early filt_by_semantics_*
    "authors_early": (".", " \n", " ", "-", "<bos>", ",", "!", "?"),
}
"""The authors' junk lists, verbatim (authors_pipeline.md §2.4)."""

DEFAULT_MIN_ACTIVE = 2
"""Corrected mode: firing positions a latent needs before its top tokens are trusted."""


@dataclass(frozen=True)
class TopTokens:
    """Decoded top-activating tokens of every latent of one SAE.

    Attributes
    ----------
    strings : ndarray of str, shape (n_latents, k)
        ``tokenizer.decode([id])`` of each top position; "" where padded.
    ids : ndarray of int64, shape (n_latents, k)
        The token ids; -1 where padded.
    active : ndarray of bool, shape (n_latents, k)
        Whether the latent fires (> 0) at that position. Under the authors'
        rule the top-k may include zero-valued positions (active False).
    """

    strings: np.ndarray
    ids: np.ndarray
    active: np.ndarray
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """What is derived from these tokens alone (filter sets, top-k views), computed once."""

    def __post_init__(self):
        shapes = {self.strings.shape, self.ids.shape, self.active.shape}
        if len(shapes) != 1 or self.strings.ndim != 2:
            raise ValueError(
                f"`strings`, `ids` and `active` must share one (n_latents, k) shape; got "
                f"{self.strings.shape}, {self.ids.shape}, {self.active.shape}."
            )

    @property
    def n_latents(self) -> int:
        return int(self.strings.shape[0])


@lru_cache(maxsize=2**16)
def normalise_token(token: str) -> str:
    """NFKC, drop WordPiece '##', collapse whitespace, strip, lower-case (memoised: a vocabulary repeats)."""
    token = unicodedata.normalize("NFKC", token)
    if token.startswith("##"):
        token = token[2:]
    return " ".join(token.split()).lower()


def is_nonconcept_token(token: str, token_id: int, *, special_ids=frozenset(), extra_junk=frozenset()) -> bool:
    """Whether a decoded token carries no concept (corrected rule).

    Special ids, tokens that are empty after normalisation, and tokens made
    only of punctuation/symbol characters are non-concept; so is any token
    whose normalised form is in ``extra_junk``.
    """
    if int(token_id) in special_ids:
        return True
    norm = normalise_token(token)
    if not norm or norm in extra_junk:
        return True
    return all(unicodedata.category(ch)[0] in "PSZ" for ch in norm)


def junk_overlap_mask(
    a: np.ndarray,
    b: np.ndarray,
    top_a: TopTokens,
    top_b: TopTokens,
    *,
    compat: bool = False,
    junk_list: str | tuple[str, ...] = "authors_gemma",
    special_ids=(),
    min_active: int = DEFAULT_MIN_ACTIVE,
    require_overlap: bool = True,
) -> np.ndarray:
    """Keep pairs whose latents are concept-like and share a top token.

    Parameters
    ----------
    a, b : ndarray of int, shape (n_pairs,)
        Latent indices of the pairs in A and B.
    top_a, top_b : TopTokens
        Top tokens of every latent of A and B (k columns, the paper uses 5).
    compat : bool, default False
        The authors' exact-string rule (see module notes).
    junk_list : str or tuple of str, default "authors_gemma"
        A key of :data:`JUNK_LISTS` or an explicit list. Under ``compat`` it is
        the list of exact strings; in corrected mode its normalised entries
        extend the punctuation/whitespace/special-token classes.
    special_ids : iterable of int
        The tokenizer's special ids (``tokenizer.all_special_ids``), corrected mode.
    min_active : int, default 2
        Corrected mode: a latent firing on fewer top positions fails.
    require_overlap : bool, default True
        Also require a shared top token (the authors always did).

    Returns
    -------
    ndarray of bool, shape (n_pairs,)
    """
    a, b = _check_pair_indices(a, b, top_a, top_b)
    if isinstance(junk_list, str) and junk_list not in JUNK_LISTS:
        raise ValueError(f"`junk_list` {junk_list!r} is unknown; choose one of {sorted(JUNK_LISTS)} or pass a tuple.")
    junk = JUNK_LISTS[junk_list] if isinstance(junk_list, str) else tuple(junk_list)
    if compat:
        sets_a = _exact_sets(top_a)
        sets_b = _exact_sets(top_b)
        junk_set = set(junk)
        bad_a = np.array([bool(s & junk_set) for s in sets_a])
        bad_b = np.array([bool(s & junk_set) for s in sets_b])
    else:
        special = frozenset(int(i) for i in special_ids)
        extra = frozenset(normalise_token(t) for t in junk)
        sets_a, bad_a = _corrected_sets(top_a, special, extra, min_active)
        sets_b, bad_b = _corrected_sets(top_b, special, extra, min_active)
    keep = ~bad_a[a] & ~bad_b[b]
    if require_overlap:
        overlap = np.fromiter((bool(sets_a[i] & sets_b[j]) for i, j in zip(a, b)), dtype=bool, count=a.size)
        keep &= overlap
    return keep


def correlation_mask(r: np.ndarray, *, r_min: float = 0.1) -> np.ndarray:
    """Keep pairs with r strictly above ``r_min`` (nan never passes)."""
    if not np.isfinite(r_min):
        raise ValueError(f"`r_min` must be a finite number; got {r_min!r}.")
    return np.nan_to_num(np.asarray(r, dtype=float), nan=-np.inf) > r_min


# --------------------------------------------------------------------------- helpers


def _check_pair_indices(a, b, top_a: TopTokens, top_b: TopTokens):
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"`a` and `b` must be 1-D and of equal length; got shapes {a.shape} and {b.shape}.")
    for name, idx, top in (("a", a, top_a), ("b", b, top_b)):
        if idx.size and (idx.min() < 0 or idx.max() >= top.n_latents):
            raise ValueError(
                f"`{name}` holds latent indices outside [0, {top.n_latents}); pass the pairs of the SAE whose "
                "top tokens you give."
            )
    return a, b


def _exact_sets(top: TopTokens) -> list[set[str]]:
    """The authors' view: every top-k string, exactly as decoded (padding included as '')."""
    return [set(row) for row in top.strings.tolist()]


def _corrected_sets(top: TopTokens, special, extra, min_active: int):
    """Normalised strings over firing positions, and a per-latent 'non-concept' flag (memoised on ``top``)."""
    key = ("corrected_sets", special, extra, min_active)
    if key not in top.memo:
        top.memo[key] = _compute_corrected_sets(top, special, extra, min_active)
    return top.memo[key]


def _compute_corrected_sets(top: TopTokens, special, extra, min_active: int):
    sets, bad = [], np.zeros(top.n_latents, dtype=bool)
    for i, (strings, ids, active) in enumerate(zip(top.strings.tolist(), top.ids.tolist(), top.active.tolist())):
        tokens = [(s, t) for s, t, on in zip(strings, ids, active) if on and t >= 0]
        junk = any(is_nonconcept_token(s, t, special_ids=special, extra_junk=extra) for s, t in tokens)
        bad[i] = junk or len(tokens) < min_active
        sets.append({normalise_token(s) for s, _ in tokens})
    bad.setflags(write=False)
    return sets, bad


@dataclass(frozen=True)
class SaeLayer:
    """Everything an experiment needs of one (model, layer): codes, decoder, labels.

    Defined here, below extraction (which builds it) and the experiments
    (which consume it), so that neither imports the other.

    Attributes
    ----------
    model : str
        Label of the model ("a", "b", "control" or a name).
    layer : int
    codes : scipy.sparse.csr_matrix, shape (n_tokens, n_latents)
        The SAE's codes on the shared token rows.
    decoder : ndarray, shape (n_latents, d_model)
        Decoder rows (``W_dec``).
    top : TopTokens
        Decoded top-activating tokens per latent (k >= the filters' top_k).
    windows : ndarray of str, shape (n_latents, k)
        Context windows of those top positions.
    special_ids : tuple of int
        The tokenizer's special token ids.
    """

    model: str
    layer: int
    codes: sp.csr_matrix
    decoder: np.ndarray
    top: TopTokens
    windows: np.ndarray
    special_ids: tuple[int, ...] = ()

    def top_k(self, k: int) -> TopTokens:
        """The first ``k`` top tokens of every latent."""
        if k > self.top.strings.shape[1]:
            raise ValueError(
                f"`top_k`={k} but layer {self.layer} of model {self.model!r} has only "
                f"{self.top.strings.shape[1]} top tokens cached; re-extract with more."
            )
        key = ("top_k", k)
        if key not in self.top.memo:  # one view per k, so that what filters derive from it is kept
            self.top.memo[key] = TopTokens(strings=self.top.strings[:, :k], ids=self.top.ids[:, :k],
                                           active=self.top.active[:, :k])
        return self.top.memo[key]
