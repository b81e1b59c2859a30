"""What an extraction reports and hands on: per-layer and per-run summaries, and one layer as analysis reads it.

Private to :mod:`saesim.extract`; import the public names from :mod:`saesim.extract.pipeline`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp


Which = Literal["a", "b", "control"]

HELDOUT_FVU_TARGET = 0.40
"""Held-out FVU an SAE should reach; layers above it are flagged in the summary and the book."""

SUMMARY_COLUMNS = ("slot", "label", "layer", "hook", "n_tokens", "n_latents", "dead_fraction", "mean_l0",
                   "fvu_heldout", "fvu", "cache_mib", "reused")
"""Columns printed by ``saesim extract`` (the rows hold more)."""


class FvuWarning(UserWarning):
    """A poor reconstruction that is tolerated (``compat=True``)."""


@dataclass(frozen=True)
class LayerSummary:
    """One (model, layer) of an extraction.

    Attributes
    ----------
    slot : {"a", "b", "control"}
    label : str
        The model's label in the profile.
    layer : int
    hook : str
        Hook the activations were read at.
    sae_id : str
    sae_source : str
    n_tokens : int
        Kept token rows.
    n_latents : int
    dead_fraction : float
        Latents that never fire on these tokens.
    mean_l0 : float
        Mean active latents per token (of the stored codes).
    fvu : float
        Reconstruction FVU of the SAE's own codes on all the captured
        activations (a trained SAE's training rows included).
    fvu_heldout : float or None
        FVU on the rows the SAE was not trained on (the grid's rows after
        ``sae.train_tokens``: later documents); every row for an SAE saesim
        did not train; None when a trained SAE saw every row.
    n_heldout : int
        Rows behind ``fvu_heldout``.
    fvu_neighbour : float or None
        Lowest FVU of the SAE on the residual streams one block before and
        after its hook (the off-by-one guard); None when not checked (trained
        SAEs, non-block hooks, compat).
    cache_bytes : int
        Bytes on disk of this layer's artefacts (codes, decoder, labels).
    dense_bytes : int
        Bytes the same codes would take as a dense float32 matrix.
    reused : bool
        Loaded from the cache rather than computed in this run.
    codes : str
        Codes mode ("sae" or "relu_preact").
    train : dict or None
        Training report of a saesim-trained SAE (FVU, dead fraction, seconds...).
    seconds : float
        Wall-clock time of this layer's SAE work (training, encoding, labels).
    key : str
        The layer's cache key.
    """

    slot: str
    label: str
    layer: int
    hook: str
    sae_id: str
    sae_source: str
    n_tokens: int
    n_latents: int
    dead_fraction: float
    mean_l0: float
    fvu: float
    fvu_neighbour: float | None
    fvu_heldout: float | None
    n_heldout: int
    cache_bytes: int
    dense_bytes: int
    reused: bool
    codes: str
    train: dict | None
    seconds: float
    key: str

    def row(self) -> dict:
        """One tidy-table row (``cache_mib`` added)."""
        out = dataclasses.asdict(self)
        out["cache_mib"] = self.cache_bytes / 2**20
        out["dense_mib"] = self.dense_bytes / 2**20
        out.pop("train")
        return out


@dataclass(frozen=True)
class ExtractSummary:
    """What :func:`extract` did: one row per (model, layer), plus timings.

    Attributes
    ----------
    profile : str
    root : str
        The artefact store.
    grid_hash : str
    n_docs, n_tokens : int
        Documents and kept token rows of the grid.
    masked_fraction : float
        Fraction of grid positions dropped (padding, special tokens).
    layers : tuple of LayerSummary
    captures : tuple of dict
        One per model forward: label, hooks, tokens, seconds, tokens per second.
    seconds : float
        Total wall-clock time.
    """

    profile: str
    root: str
    grid_hash: str
    n_docs: int
    n_tokens: int
    masked_fraction: float
    layers: tuple[LayerSummary, ...]
    captures: tuple[dict, ...] = ()
    seconds: float = 0.0

    def to_frame(self):
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([layer.row() for layer in self.layers])

    def row(self, slot: str, layer: int) -> LayerSummary:
        """The summary of ``(slot, layer)``."""
        for item in self.layers:
            if item.slot == slot and item.layer == layer:
                return item
        raise KeyError(f"no row for slot {slot!r}, layer {layer} in this extraction.")

    def table(self) -> str:
        """A fixed-width text table (what ``saesim extract`` prints)."""
        head = f"{'model':<11} {'layer':>5} {'hook':<26} {'tokens':>8} {'latents':>7} {'dead':>6} {'L0':>6} " \
               f"{'FVU held-out':>12} {'FVU all':>7} {'cache MiB':>9} {'':>6}"
        lines = [head, "-" * len(head)]
        for r in self.layers:
            heldout = "n/a" if r.fvu_heldout is None else f"{r.fvu_heldout:.3f}"
            flag = " !" if r.fvu_heldout is not None and r.fvu_heldout > HELDOUT_FVU_TARGET else "  "
            lines.append(
                f"{r.slot:<11} {r.layer:>5} {r.hook[:26]:<26} {r.n_tokens:>8} {r.n_latents:>7} "
                f"{r.dead_fraction:>6.1%} {r.mean_l0:>6.1f} {heldout:>10}{flag} {r.fvu:>7.3f} "
                f"{r.cache_bytes / 2**20:>9.1f} {'cached' if r.reused else '':>6}"
            )
        if any(r.fvu_heldout is not None and r.fvu_heldout > HELDOUT_FVU_TARGET for r in self.layers):
            lines.append(f"! held-out FVU above the target {HELDOUT_FVU_TARGET} (the book flags these layers)")
        for c in self.captures:
            lines.append(f"forward {c['label']}: {c['n_tokens']} tokens x {len(c['hooks'])} hooks in "
                         f"{c['seconds']:.1f} s ({c['tokens_per_s']:.0f} tokens/s)")
        total = sum(r.cache_bytes for r in self.layers)
        dense = sum(r.dense_bytes for r in self.layers)
        lines.append(f"profile {self.profile}: {self.n_docs} docs, {self.n_tokens} tokens kept "
                     f"({self.masked_fraction:.1%} of positions dropped); cache {total / 2**20:.1f} MiB "
                     f"(dense fp32 codes would be {dense / 2**20:.1f} MiB) in {self.root}; {self.seconds:.1f} s")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


@dataclass(frozen=True, eq=False)
class LayerData:
    """One (model, layer) as the analysis stages use it (see :func:`load_layer`).

    Attributes
    ----------
    slot : str
        "a", "b" or "control".
    label : str
    layer : int
    hook, sae_id : str
    codes : scipy.sparse.csr_matrix of float32, shape (n_tokens, n_latents)
    decoder : ndarray of float32, shape (n_latents, d_model)
        ``W_dec`` rows (latent directions).
    top : saesim.extract.tokens.TopActivations
    contexts : saesim.extract.tokens.TopContexts
    fvu : float
    dead : ndarray of bool, shape (n_latents,)
        Latents that never fire on these tokens.
    special_ids : tuple of int
        The tokenizer's special ids (for the corrected junk filter).
    summary : LayerSummary
    key : str
        The layer's content key in the artefact store (results derived from
        two layers, such as best partners, are cached under both keys).
    """

    slot: str
    label: str
    layer: int
    hook: str
    sae_id: str
    codes: sp.csr_matrix
    decoder: np.ndarray
    top: object
    contexts: object
    fvu: float
    dead: np.ndarray
    special_ids: tuple[int, ...]
    summary: LayerSummary
    key: str = ""

    @property
    def n_tokens(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_latents(self) -> int:
        return int(self.codes.shape[1])

    def to_sae_layer(self):
        """The :class:`saesim.compare.filters.SaeLayer` of this layer."""
        from saesim.compare.filters import SaeLayer

        return SaeLayer(model=self.slot, layer=self.layer, codes=self.codes, decoder=self.decoder,
                        top=self.contexts.to_top_tokens(), windows=self.contexts.windows,
                        special_ids=self.special_ids)
