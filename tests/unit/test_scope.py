"""Sentences and tables about what a comparison rests on: token pairing, licences, differences from the
paper, SAE stability (saesim.report.alignment, saesim.report.scope, saesim.report.tables.quality_view)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from saesim.config import load_profile
from saesim.report import alignment
from saesim.report.scope import paper_differences, pairing_and_licence_lines, stability_sentence
from saesim.report.tables import quality_view


def _report(profile="offline"):
    band = lambda lo, hi: [{"band": "≥ 1000", "n_tokens": 10, "kept_fraction": hi},  # noqa: E731
                           {"band": "100–999", "n_tokens": 5, "kept_fraction": 0.9},
                           {"band": "10–99", "n_tokens": 5, "kept_fraction": 0.8},
                           {"band": "< 10", "n_tokens": 4, "kept_fraction": lo}]
    return {"profile": profile, "grid": "x", "n_aligned": 20, "models": [
        {"tokenizer": "GemmaTokenizer[262144]:a", "model": "gemma-3-270m", "n_candidates": 24, "n_kept": 20,
         "kept_fraction": 20 / 24, "top_dropped": [["'", 2], ["s", 2]], "bands": band(0.5, 1.0)},
        {"tokenizer": "TokenizersBackend[49152]:b", "model": "SmolLM2-135M-Instruct", "n_candidates": 22,
         "n_kept": 20, "kept_fraction": 20 / 22, "top_dropped": [["'s", 2]], "bands": band(0.75, 1.0)}]}


class TestAlignmentTables:
    def test_summary_and_bands_carry_the_report_numbers(self):
        summary = alignment.alignment_summary(_report())
        assert summary["paired"].tolist() == [20, 20] and summary["kept"].tolist() == [20 / 24, 20 / 22]
        bands = alignment.alignment_bands(_report())
        assert len(bands) == 8 and bands["kept"].iloc[3] == 0.5

    def test_dropped_tokens_side_by_side_padded(self):
        dropped = alignment.alignment_dropped(_report(), top=3)
        assert dropped.shape == (3, 4)
        assert dropped[("SmolLM2-135M-Instruct", "token")].tolist() == ["'s", "", ""]

    def test_sentence_follows_the_numbers(self):
        text = alignment.alignment_sentence(_report())
        assert text.startswith("20 token positions pair across the two tokenizers: 83.3 % of gemma-3-270m's 24")
        assert "keeps 100 % of its most frequent tokens and 50 % of its rarest" in text

    def test_one_tokenizer_is_refused(self):
        with pytest.raises(ValueError, match="fewer than two tokenizers"):
            alignment.alignment_summary({"n_aligned": 3, "models": [_report()["models"][0]]})


class TestScope:
    def test_differences_from_the_paper_for_the_causal_pair(self, tmp_path):
        prof = load_profile("offline")
        (tmp_path / "results").mkdir()
        (tmp_path / "results" / "token_alignment.json").write_text(json.dumps(_report()))
        lines = paper_differences(prof, tmp_path)
        text = " ".join(lines)
        assert "tokenise differently" in text and "at least 83 %" in text
        assert "gemma3 against llama" in text and "SmolLM2-135M-Instruct is instruction-tuned" in text
        assert "4-bit quantised" in text and "WikiText-2" in text and len(lines) == 5

    def test_another_profiles_report_is_not_used(self, tmp_path):
        (tmp_path / "results").mkdir()
        (tmp_path / "results" / "token_alignment.json").write_text(json.dumps(_report("tiny")))
        assert not any("tokenise" in line for line in paper_differences(load_profile("offline"), tmp_path))
        (tmp_path / "results" / "token_alignment.json").write_text(json.dumps(_report("offline")))
        assert not pairing_and_licence_lines(load_profile("tiny"), tmp_path)

    def test_licences_are_named(self, tmp_path):
        lines = pairing_and_licence_lines(load_profile("offline"), tmp_path)
        assert any("gemma-3-270m" in line and "Gemma Terms of Use" in line for line in lines)
        assert any("SmolLM2-135M-Instruct" in line and "Apache-2.0" in line for line in lines)

    def test_encoder_pair_has_no_tokenizer_or_quantisation_caveat(self):
        text = " ".join(paper_differences(load_profile("encoders")))
        assert "4-bit" not in text and "instruction" not in text and "bert against mpnet" in text


def _quality(shared):
    rows = []
    for slot in ("a", "seed", "b"):
        for layer, s in zip((0, 10), shared):
            stable = slot != "b"
            rows.append({"model": slot, "slot": slot, "layer": layer, "width": 4096, "train_tokens": 64000,
                         "fvu_heldout": 0.3, "dead_fraction": 0.1, "mean_l0": 32.0,
                         "pw_mcc": 0.4 + s if stable else np.nan, "shared_dec": s if stable else np.nan,
                         "shared_dec_enc": s / 2 if stable else np.nan, "chance_pw_mcc": 0.14 if stable else np.nan,
                         "chance_shared_dec": 0.0 if stable else np.nan, "act_mcc": 0.3 if stable else np.nan})
    return pd.DataFrame(rows)


class TestStability:
    def test_sentence_quotes_each_layer_and_the_literature(self):
        text = stability_sentence(_quality((0.12, 0.05)))
        assert "share 12.0 % at layer 0, 5.0 % at layer 10 of their latents" in text
        assert "PW-MCC 0.45–0.52" in text and "0.0 % shared, PW-MCC 0.14" in text and "30–50 %" in text

    def test_no_partner_no_sentence(self):
        frame = _quality((0.1, 0.1))
        frame[["pw_mcc", "shared_dec"]] = np.nan
        assert stability_sentence(frame) is None

    def test_quality_view_has_human_columns_only(self):
        html = quality_view(_quality((0.12, 0.05))).to_html()
        assert "held-out FVU" in html and "PW-MCC" in html and "12.0%" in html
        assert "fvu_heldout" not in html and "pw_mcc" not in html and "A, second SAE set" in html


def test_the_scope_box_says_where_the_saes_trained_and_the_brown_licence(tmp_path):
    offline = pairing_and_licence_lines(load_profile("offline"), tmp_path)
    own = [line for line in offline if "outside the comparison's token grid" in line]
    assert len(own) == 1 and "WikiText-2 and the Brown corpus" in own[0] and "non-commercial" in own[0]
    wiki_only = load_profile("offline", **{f"{slot}.sae.train_text": ["wikitext2"] for slot in
                                           ("model_a", "model_b", "seed_control", "control", "control_all")})
    line = [x for x in pairing_and_licence_lines(wiki_only, tmp_path) if "outside" in x][0]
    assert "non-commercial" not in line
    assert not [x for x in pairing_and_licence_lines(load_profile("tiny"), tmp_path) if "outside" in x]
