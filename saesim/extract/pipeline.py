"""Extraction: data → models → SAEs → codes → top contexts, cached on disk.

:func:`extract` runs the model side of the pipeline for every model slot of a
profile (A, B and the control) and every requested layer:

1. **data** — the profile's texts are tokenized by every model's tokenizer
   and the kept positions paired into one :class:`~saesim.extract.data.TokenGrid`
   with a view per tokenizer (the tokenizers must segment the text
   identically; ids and special tokens may differ);
2. **models** — each distinct model runs *once* over the grid, capturing the
   residual stream at every needed hook in the same forward (A and B of the
   offline profile are the same MiniLM, so it runs once for both);
3. **SAEs** — loaded (sparsify, SAELens, hub or disk) or, for
   ``source: train``, trained on the captured activations (the grid's first
   ``sae.train_tokens`` rows, or with ``sae.train_text`` the model's activations
   on documents outside the grid, so every grid row is held out) (TopK, sparsify's
   format; on the GPU when present, with ``sae.gpu_budget`` there if set, see
   :func:`saesim.config.sae_training_plan`) unless already on disk;
   tiny-profile SAEs are written on first use;
4. **codes** — the SAE's codes as CSR; the reconstruction FVU on the same
   activations is recorded and guarded (an SAE fed the wrong layer fails
   loudly, see below);
5. **tokens** — the top-activating rows of every latent with their top tokens
   and context windows, decoded once.

Everything lands in a content-addressed :class:`~saesim.extract.cache.ArtefactStore`
(key: model, revision, SAE, hook, data hash, codes mode, compat, ...). A
finished (model, layer) is never recomputed, so an interrupted run resumes
where it stopped; a stale or corrupt entry is rebuilt. :func:`load_layer`
reads one (model, layer) back for the analysis stages.

Hook guard
----------
Besides the absolute FVU limit of :func:`saesim.extract.saes.check_fvu`, every SAE
that saesim did not train itself is also evaluated on the residual streams
one block before and after its hook (the one before is what the authors'
``hidden_states[L]`` fed it). If it reconstructs a neighbour better than its
own hook's activations, the hook is off by one and extraction stops with
:class:`~saesim.extract.saes.SaeMismatchError`. Under ``compat`` (which reproduces the
off-by-one on purpose) both checks only warn.

Layout
------
This module is the public face of the extraction, which lives in private
modules of :mod:`saesim.extract`, one job each (import from here, not there):

* ``_extract_records`` — :class:`LayerSummary`, :class:`ExtractSummary`,
  :class:`LayerData`, :class:`FvuWarning`, :data:`HELDOUT_FVU_TARGET`;
* ``_extract_keys`` — the content keys (grid, SAE training, layer,
  activations) and a layer's entry in the store;
* ``_extract_grid`` — the token grid: :func:`load_grid`,
  :func:`token_alignment`, :data:`ALIGNMENT_REPORT`;
* ``_extract_run`` — the loop: :func:`extract`, :func:`capture_group`;
* ``_extract_layer`` — one (model, layer): SAE, codes, FVU guards, top
  tokens (:func:`token_decoder`);
* ``_extract_activations`` — :func:`save_activations`,
  :func:`load_activations`, :func:`load_train_activations`, :func:`train_activations`, :data:`KEEP_ACTIVATIONS_MAX_BYTES`;
* ``_extract_train_text`` — the SAE's own training text (``sae.train_text``):
  its documents, tokens and the key of its stored activations;
* ``_extract_load`` — :func:`load_layer`, :func:`sae_quality`.
"""

from __future__ import annotations

import logging

from saesim.extract._extract_activations import (
    KEEP_ACTIVATIONS_MAX_BYTES,
    load_activations,
    load_train_activations,
    save_activations,
    train_activations,
)
from saesim.extract._extract_grid import ALIGNMENT_REPORT, load_grid, token_alignment
from saesim.extract._extract_keys import EXTRACT_VERSION, GRID_VERSION
from saesim.extract._extract_keys import training_key as _train_key  # noqa: F401  (old name, used by tests)
from saesim.extract._extract_layer import token_decoder
from saesim.extract._extract_load import load_layer, sae_quality
from saesim.extract._extract_records import (
    HELDOUT_FVU_TARGET,
    SUMMARY_COLUMNS,
    ExtractSummary,
    FvuWarning,
    LayerData,
    LayerSummary,
    Which,
)
from saesim.extract._extract_run import capture_group, extract
from saesim.extract.cache import CacheMissError

logger = logging.getLogger(__name__)  # the private modules log under this name too

__all__ = [
    "ExtractSummary",
    "FvuWarning",
    "LayerData",
    "LayerSummary",
    "extract",
    "load_activations",
    "load_grid",
    "load_layer",
    "load_train_activations",
    "sae_quality",
    "save_activations",
    "token_alignment",
    "train_activations",
]

# Also public here, as before the split: Which, EXTRACT_VERSION, GRID_VERSION, HELDOUT_FVU_TARGET,
# KEEP_ACTIVATIONS_MAX_BYTES, SUMMARY_COLUMNS, ALIGNMENT_REPORT, CacheMissError, capture_group and
# token_decoder (imported above).
