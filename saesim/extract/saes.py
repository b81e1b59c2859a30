"""SAEs: load (sparsify, SAELens), encode to sparse codes, check, train, save.

An SAE is held as plain arrays in :class:`SaeWeights` (encoder, decoder,
biases, threshold or k, and exactly the input handling the library applies),
so encoding is one pure function over any SAE source:

* **sparsify** (EleutherAI, e.g. ``EleutherAI/sae-pythia-70m-32k``, and the
  SAEs saesim trains itself) — loaded with ``sparsify.Sae.load_from_disk`` /
  ``Sae.load_from_hub``; codes are ``TopK(ReLU(W_enc (x - b_dec) + b_enc))``,
  as ``sae.encode`` gives (``top_acts``, ``top_indices``).
* **SAELens** (e.g. ``gemma-scope-2b-pt-res-canonical``, ``gemma-2b-res-jb``)
  — loaded with ``sae_lens.SAE.load_from_disk`` / ``SAE.from_pretrained``
  (which already folds a release's ``norm_scaling_factor`` into the weights);
  TopK, JumpReLU and standard (ReLU) architectures, with the SAE's own
  ``apply_b_dec_to_input``, run-time input normalisation (``layer_norm``,
  ``constant_norm_rescale``; ``expected_average_only_in`` is a no-op at
  inference, as in SAELens) and ``rescale_acts_by_decoder_norm``. Codes equal
  ``sae.encode(x)``.

The default codes are the SAE's real sparse codes. ``codes="relu_preact"``
gives ``ReLU(W_enc (x - b_dec) + b_enc)`` before any TopK / threshold — dense
and non-negative — which is what the authors used for sparsify SAEs
(``pre_acts``; authors_pipeline.md finding 4); use it only to reproduce them.

Codes are built batch by batch straight into CSR (for TopK from the top-k
indices and values), so a dense token-by-latent matrix never exists for more
than one batch. :func:`fvu` decodes sparse codes back and measures the
fraction of variance unexplained; :func:`check_fvu` turns a bad reconstruction
(activations from the wrong hook — e.g. HF ``hidden_states[L]``, the *input*
of block L, fed to an SAE trained on its output — or wrong normalisation)
into an error.

:func:`train_topk_sae` (or :class:`TopKTrainer` with a :class:`TopKTrainConfig`)
trains a sparsify TopK SAE with a plain, seeded torch loop over cached
activations; :func:`save_sparsify` / :func:`save_saelens`
write the libraries' own on-disk formats so everything loads back through
:func:`load_sae`.

This module is the public face of the SAE code, which lives in private
modules of :mod:`saesim.extract`, one job each (import from here, not there):

* ``_sae_weights`` — :class:`SaeWeights` and the SAE errors;
* ``_sae_formats`` — sparsify / SAELens objects and on-disk formats to and
  from :class:`SaeWeights` (:func:`weights_from_sparsify`,
  :func:`weights_from_saelens`, :func:`save_sparsify`, :func:`save_saelens`);
* ``_sae_loading`` — :func:`load_sae` and the integrity checks
  (:func:`saved_sae_problem`, :func:`sae_folder_ready`);
* ``_sae_encode`` — :func:`encode`, :func:`check_d_in`,
  :func:`jumprelu_thresholds`;
* ``_sae_quality`` — :func:`reconstruct`, :func:`fvu`, :func:`code_stats`,
  :func:`check_fvu`, :func:`check_hook`;
* ``_sae_train`` — :class:`TopKTrainConfig`, :class:`TopKTrainer`,
  :func:`train_topk_sae`, :func:`default_lr`;
* ``_sae_fixtures`` — :func:`make_tiny_saes` (the ``tiny`` profile's SAEs).

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024).
Gao et al., "Scaling and evaluating sparse autoencoders", arXiv:2406.04093
(2024) — TopK SAEs, AuxK loss.
Rajamanoharan et al., "Jumping Ahead: Improving Reconstruction Fidelity with
JumpReLU Sparse Autoencoders", arXiv:2407.14435 (2024).
"""

from __future__ import annotations

import logging

from saesim.extract._sae_encode import (
    DEFAULT_BATCH,
    LAYER_NORM_EPS,
    MAX_DENSE_ELEMENTS,
    CodesMode,
    check_d_in,
    encode,
    jumprelu_thresholds,
)
from saesim.extract._sae_fixtures import make_tiny_saes
from saesim.extract._sae_formats import save_saelens, save_sparsify, weights_from_saelens, weights_from_sparsify
from saesim.extract._sae_loading import load_sae, sae_folder_ready, saved_sae_problem
from saesim.extract._sae_quality import DEFAULT_MAX_FVU, HookCheck, check_fvu, check_hook, code_stats, fvu, reconstruct
from saesim.extract._sae_train import (
    DEFAULT_AUXK_ALPHA,
    TopKTrainConfig,
    TopKTrainer,
    TrainedSae,
    default_lr,
    train_topk_sae,
)
from saesim.extract._sae_weights import (
    Activation,
    HubUnavailableError,
    SaeCorruptError,
    SaeFormatError,
    SaeMismatchError,
    SaeNormalisationWarning,
    SaeWeights,
)

__all__ = [
    "DEFAULT_MAX_FVU",
    "HookCheck",
    "HubUnavailableError",
    "SaeCorruptError",
    "SaeFormatError",
    "SaeMismatchError",
    "SaeNormalisationWarning",
    "SaeWeights",
    "TopKTrainConfig",
    "TopKTrainer",
    "TrainedSae",
    "check_d_in",
    "check_fvu",
    "check_hook",
    "default_lr",
    "code_stats",
    "encode",
    "fvu",
    "jumprelu_thresholds",
    "load_sae",
    "make_tiny_saes",
    "reconstruct",
    "sae_folder_ready",
    "saved_sae_problem",
    "save_saelens",
    "save_sparsify",
    "train_topk_sae",
    "weights_from_saelens",
    "weights_from_sparsify",
]

# Also public here, as before the split: DEFAULT_BATCH, MAX_DENSE_ELEMENTS, LAYER_NORM_EPS,
# DEFAULT_AUXK_ALPHA and the Activation / CodesMode literals (imported above).
logger = logging.getLogger(__name__)
