"""The SAE's own training text (``sae.train_text``): which documents, their tokens, their activations' keys.

An SAE with ``sae.train_text`` trains on documents that are *not* in the
comparison's token grid, so every grid row is held out from SAE training:
WikiText-2 paragraphs after the grid's first ``data.n_docs`` (when the grid's
corpus is WikiText-2; all of them otherwise) and the Brown corpus (likewise),
interleaved document by document so any prefix mixes both, in a fixed order.
Each model tokenises them itself (no cross-model pairing is needed to train an
SAE); the SAE trains on the first ``sae.train_tokens`` kept tokens.

Private to :mod:`saesim.extract`; import the public names from :mod:`saesim.extract.pipeline`.
"""

from __future__ import annotations

import functools
import itertools
import logging

import numpy as np

from saesim.config import ModelSpec, Profile
from saesim.extract._extract_keys import EXTRACT_VERSION, texts_hash
from saesim.extract.cache import ArtefactStore
from saesim.extract.data import TokenGrid, tokenize

logger = logging.getLogger("saesim.extract.pipeline")

__all__ = ["train_grid", "train_text_identity", "train_texts", "train_activations_key"]


def train_texts(profile: Profile, corpora) -> list[str]:
    """The training documents of ``corpora`` for ``profile``: none of the grid's, interleaved, in a fixed order.

    Raises
    ------
    saesim.extract.data.DataNotFoundError
        A corpus is missing from the data folder.
    """
    return list(_train_texts(tuple(corpora), profile.data.corpus, profile.data.n_docs, profile.data.unit,
                             profile.data.min_words, profile.data.data_dir))


@functools.lru_cache(maxsize=8)
def _train_texts(corpora: tuple, grid_corpus: str, grid_docs: int, unit: str, min_words: int,
                 data_dir_override) -> tuple[str, ...]:
    from saesim.extract.data import corpus_documents

    lists = []
    for corpus in corpora:
        docs = corpus_documents(corpus, unit=unit, min_words=min_words, override=data_dir_override)
        lists.append(docs[grid_docs:] if corpus == grid_corpus else docs)
    merged = [doc for group in itertools.zip_longest(*lists) for doc in group if doc is not None]
    return tuple(merged)


def train_text_identity(profile: Profile, spec: ModelSpec) -> dict:
    """What decides a slot's training text (part of its SAEs' training key): corpora, unit and a hash of the documents."""
    corpora = spec.sae.train_text
    return {"corpora": list(corpora), "sha256": _hash(profile, corpora), "max_length": profile.data.max_length}


def _hash(profile: Profile, corpora) -> str:
    return _texts_hash(tuple(corpora), profile.data.corpus, profile.data.n_docs, profile.data.unit,
                       profile.data.min_words, profile.data.data_dir)


@functools.lru_cache(maxsize=8)
def _texts_hash(*args) -> str:
    return texts_hash(_train_texts(*args))


def train_grid(profile: Profile, tokenizer, corpora, n_tokens: int) -> TokenGrid:
    """The first documents of the training text whose kept tokens (this tokenizer's) reach ``n_tokens``.

    Raises
    ------
    ValueError
        The corpora hold fewer kept tokens than ``n_tokens``; the message names
        the field to lower and the corpora to add.
    """
    texts = train_texts(profile, corpora)
    n_tokens = int(n_tokens)
    chunk, chosen, kept = 2000, [], 0
    for start in range(0, len(texts), chunk):  # tokenise as much as needed, in order
        part = texts[start:start + chunk]
        grid = tokenize(tokenizer, part, max_length=profile.data.max_length, compat=profile.compat)
        per_doc = np.cumsum(grid.keep.sum(axis=1))
        if kept + per_doc[-1] >= n_tokens:
            stop = int(np.searchsorted(per_doc, n_tokens - kept)) + 1
            chosen.extend(part[:stop])
            kept += int(per_doc[stop - 1])
            break
        chosen.extend(part)
        kept += int(per_doc[-1])
    if kept < n_tokens:
        raise ValueError(
            f"`sae.train_tokens` asks for {n_tokens} training tokens but the training text "
            f"{'+'.join(corpora)} holds {kept} for this tokenizer ({len(texts)} documents outside the grid); "
            f"lower `sae.train_tokens` or add a corpus to `sae.train_text` ({['wikitext2', 'brown']})."
        )
    logger.info("SAE training text: %d documents of %s, %d tokens kept", len(chosen), "+".join(corpora), kept)
    return tokenize(tokenizer, chosen, max_length=profile.data.max_length, compat=profile.compat)


def train_activations_key(profile: Profile, spec: ModelSpec, hook: str, n_tokens: int) -> str:
    """Key of one model's activations at ``hook`` on the first ``n_tokens`` tokens of its training text."""
    return ArtefactStore.key(role="train_activations", version=EXTRACT_VERSION, model=spec.identity,
                             backend=spec.backend, hook=hook, compat=profile.compat,
                             text=train_text_identity(profile, spec), n_tokens=int(n_tokens), dtype="float32")
