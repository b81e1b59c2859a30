"""Tables and sentences about the token pairing across tokenizers, from ``token_alignment.json``.

The report itself is computed by extraction (:func:`saesim.extract.align.alignment_report`, written
to ``<cache>/results/token_alignment.json``); this module only presents it.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["alignment_bands", "alignment_dropped", "alignment_sentence", "alignment_summary"]


def _models(report: dict) -> list[dict]:
    models = report.get("models") or []
    if len(models) < 2:
        raise ValueError("the token-alignment report names fewer than two tokenizers: every model shares one "
                         "tokenizer, so no tokens were paired across tokenizers.")
    return models


def alignment_summary(report: dict) -> pd.DataFrame:
    """One row per model: its real (non-special) tokens, those paired, and the kept fraction."""
    return pd.DataFrame([{"model": m["model"], "tokens": m["n_candidates"], "paired": m["n_kept"],
                          "kept": m["kept_fraction"]} for m in _models(report)])


def alignment_dropped(report: dict, top: int = 12) -> pd.DataFrame:
    """The most frequent dropped token strings of each model, side by side (rank, token, count)."""
    columns = {}
    for m in _models(report):
        rows = m["top_dropped"][:top]
        columns[(m["model"], "token")] = [repr(tok)[1:-1] for tok, _ in rows] + [""] * (top - len(rows))
        columns[(m["model"], "dropped")] = [n for _, n in rows] + [None] * (top - len(rows))
    frame = pd.DataFrame(columns, index=pd.RangeIndex(1, top + 1, name="rank"))
    return frame


def alignment_bands(report: dict) -> pd.DataFrame:
    """Kept fraction by how often the token occurs in the corpus (in its own model's tokenisation)."""
    rows = []
    for m in _models(report):
        for band in m["bands"]:
            rows.append({"model": m["model"], "corpus count": band["band"], "tokens": band["n_tokens"],
                         "kept": band["kept_fraction"]})
    return pd.DataFrame(rows)


def alignment_sentence(report: dict) -> str:
    """One sentence: how many tokens pair and what the pairing leans against, from the report."""
    models = _models(report)
    kept = ", ".join(f"{100 * m['kept_fraction']:.1f} % of {m['model']}'s {m['n_candidates']:,} tokens"
                     for m in models)
    rare = [(m["model"], m["bands"][-1]["kept_fraction"], m["bands"][0]["kept_fraction"]) for m in models
            if m["bands"][-1]["kept_fraction"] is not None and m["bands"][0]["kept_fraction"] is not None]
    lean = "; ".join(f"{name} keeps {100 * hi:.0f} % of its most frequent tokens and {100 * lo:.0f} % of its rarest"
                     for name, lo, hi in rare)
    return (f"{report['n_aligned']:,} token positions pair across the two tokenizers: {kept}."
            + (f" The pairing leans toward common tokens: {lean}." if lean else ""))
