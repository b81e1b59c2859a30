"""Token pairing across tokenizers by identical character span (saesim.extract.align).

Real tokenizers that differ are built here with `tokenizers`: a byte-level BPE (SmolLM2's kind, the
leading space inside the word token), a SentencePiece-style BPE (Gemma's kind, ``▁word``) and
MiniLM's WordPiece (the space outside the token). The oracle of every test is the text itself: a
paired row must cover the same characters in every model.
"""

from __future__ import annotations

import numpy as np
import pytest

from saesim.extract.align import FREQUENCY_BANDS, align_grids, alignment_report, token_spans
from saesim.extract.data import TokenGrid, TokenizerMismatchError, tokenize, tokenizer_name

TEXTS = ["The cat sat on the mat.", "A much longer sentence about lobsters in the sea, and more.", "Hi."]

CORPUS = [
    "The lobster's shell is hard, and it's red when cooked.",
    "Meridian Radcliffe walked to Beijing (北京) in 1995 with 12 friends.",
    "We've seen the  double  spaces and the café's crème brûlée.",
    "Touchdowns were scored by the guitarist, who'll sing tonight.",
    "Common words like the, of, and, in, to appear very often in the text.",
] * 4


def _fast(tok, name, **special):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, name_or_path=name, **special)


@pytest.fixture(scope="module")
def byte_bpe():
    """SmolLM2's kind: byte-level BPE, <|endoftext|> = 0, offsets keep the leading space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    def make(vocab_size: int, name: str):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(CORPUS, trainer)
        return _fast(tok, name, pad_token="<|endoftext|>", eos_token="<|endoftext|>")

    return make


@pytest.fixture(scope="module")
def sentencepiece_bpe():
    """Gemma's kind: ``▁``-prefixed pieces (no prefix at the text's start), BOS added, byte fallback."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never")
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                         show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return _fast(tok, "local-sentencepiece", pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                 unk_token="<unk>")


def _pairs(aligned: TokenGrid, toks, texts, max_length):
    """(doc, start, end) of every kept row, per view, from the tokenizers' own offsets."""
    out = []
    for view, tok in zip((aligned, *aligned.others), toks):
        spans = token_spans(tok, texts, view, max_length=max_length)
        doc, pos = view.doc_pos(np.arange(view.n_tokens))
        out.append(np.column_stack([doc, spans[doc, pos]]))
    return out


class TestSpanAlignment:
    def test_rows_cover_identical_text_and_nothing_pairable_is_lost(self, byte_bpe, sentencepiece_bpe):
        texts, a, b = CORPUS[:5], sentencepiece_bpe, byte_bpe(420, "local-bytebpe")
        ga, gb = tokenize(a, texts, max_length=64), tokenize(b, texts, max_length=64)
        aligned = align_grids(ga, a, [(gb, b)], texts=texts, max_length=64)
        rows_a, rows_b = _pairs(aligned, (a, b), texts, 64)
        np.testing.assert_array_equal(rows_a, rows_b)  # row t: same document, same characters
        assert aligned.n_tokens == aligned.others[0].n_tokens > 0
        # completeness, by brute force over the offsets: a span that is exactly one token of each
        # model (non-special, unique in its document) is kept
        for doc, text in enumerate(texts):
            def spans(tok, grid):
                sp = token_spans(tok, texts, grid, max_length=64)[doc]
                cand = (grid.attention_mask[doc] == 1) & ~np.isin(grid.ids[doc], grid.special_ids)
                seen = [tuple(s) for s in sp[cand] if s[1] > s[0]]
                return {s for s in seen if seen.count(s) == 1}
            expected = spans(a, ga) & spans(b, gb)
            got = {tuple(r[1:]) for r in rows_a if r[0] == doc}
            assert got == expected, text

    def test_leading_space_conventions_pair_words_with_their_space(self, byte_bpe, sentencepiece_bpe):
        b = byte_bpe(420, "local-bytebpe")
        text = ["The lobster is red"]
        aligned = align_grids(tokenize(sentencepiece_bpe, text, max_length=16), sentencepiece_bpe,
                              [(tokenize(b, text, max_length=16), b)], texts=text, max_length=16)
        rows = _pairs(aligned, (sentencepiece_bpe, b), text, 16)[0]
        words = [text[0][s:e] for _, s, e in rows]
        assert "The" in words and " red" in words  # the space belongs to the word in both models

    def test_multibyte_characters_split_into_bytes_are_dropped_not_guessed(self, byte_bpe, sentencepiece_bpe):
        b = byte_bpe(300, "local-bytebpe-small")  # too small to merge 北's three bytes
        text = ["I walked to 北 today"]
        gb = tokenize(b, text, max_length=32)
        spans_b = token_spans(b, text, gb, max_length=32)[0]
        start = text[0].index("北")
        assert sum(1 for s, e in spans_b if (s, e) == (start, start + 1)) > 1  # ambiguous span planted
        aligned = align_grids(tokenize(sentencepiece_bpe, text, max_length=32), sentencepiece_bpe, [(gb, b)],
                              texts=text, max_length=32)
        rows = _pairs(aligned, (sentencepiece_bpe, b), text, 32)[1]
        assert not any(s <= start < e for _, s, e in rows)
        assert len(rows) > 0  # the rest of the text pairs

    def test_contractions_split_differently_are_dropped(self, byte_bpe, sentencepiece_bpe, word_level_tokenizer):
        text = ["the lobster's shell"]
        b = byte_bpe(600, "local-bytebpe-big")
        ga, gb = tokenize(sentencepiece_bpe, text, max_length=16), tokenize(b, text, max_length=16)
        aligned = align_grids(ga, sentencepiece_bpe, [(gb, b)], texts=text, max_length=16)
        rows = _pairs(aligned, (sentencepiece_bpe, b), text, 16)[0]
        pieces_a = {tuple(s) for s in token_spans(sentencepiece_bpe, text, ga, max_length=16)[0]}
        pieces_b = {tuple(s) for s in token_spans(b, text, gb, max_length=16)[0]}
        apostrophe = text[0].index("'")
        for _, s, e in rows:
            assert (s, e) in pieces_a and (s, e) in pieces_b
        if pieces_a != pieces_b:  # the two split "'s" differently: that span pairs nowhere
            assert not any(s <= apostrophe < e for _, s, e in rows) or all(
                (s, e) in pieces_a & pieces_b for _, s, e in rows)

    def test_runs_of_spaces(self, byte_bpe, sentencepiece_bpe):
        text = ["we saw  double   spaces here"]
        b = byte_bpe(420, "local-bytebpe")
        aligned = align_grids(tokenize(sentencepiece_bpe, text, max_length=32), sentencepiece_bpe,
                              [(tokenize(b, text, max_length=32), b)], texts=text, max_length=32)
        rows_a, rows_b = _pairs(aligned, (sentencepiece_bpe, b), text, 32)
        np.testing.assert_array_equal(rows_a, rows_b)
        assert len(rows_a) > 0

    def test_identical_segmentation_keeps_every_token(self, minilm_tokenizer):
        from saesim.extract.models import shifted_minilm_tokenizer

        shifted = shifted_minilm_tokenizer()
        grid_a, grid_b = tokenize(minilm_tokenizer, TEXTS, max_length=64), tokenize(shifted, TEXTS, max_length=64)
        aligned = align_grids(grid_a, minilm_tokenizer, [(grid_b, shifted)], texts=TEXTS, max_length=64,
                              min_kept=1.0)
        view = aligned.for_tokenizer(shifted)
        assert aligned.n_tokens == view.n_tokens == grid_a.n_tokens == grid_b.n_tokens
        np.testing.assert_array_equal(view.kept_ids(), aligned.kept_ids() + 4)  # planted shift of 4 ids
        np.testing.assert_array_equal(aligned.keep, grid_a.keep)  # same grid, so the same cache keys

    def test_truncation_keeps_the_common_prefix(self, minilm_tokenizer):
        from saesim.extract.models import shifted_minilm_tokenizer

        shifted = shifted_minilm_tokenizer()
        grid_a = tokenize(minilm_tokenizer, TEXTS, max_length=8)
        grid_b = tokenize(shifted, TEXTS, max_length=7)
        with pytest.raises(TokenizerMismatchError, match="is not .*tokenisation of these 3 texts at max_length 7"):
            align_grids(grid_a, minilm_tokenizer, [(grid_b, shifted)], texts=TEXTS, max_length=7)
        grid_b = tokenize(shifted, TEXTS, max_length=8)
        grid_a = tokenize(minilm_tokenizer, TEXTS, max_length=8)
        aligned = align_grids(grid_a, minilm_tokenizer, [(grid_b, shifted)], texts=TEXTS, max_length=8)
        assert aligned.keep[1].sum() == aligned.others[0].keep[1].sum() == 6

    def test_too_few_paired_tokens_fail_naming_both_tokenizers(self, minilm_tokenizer, byte_bpe):
        b = byte_bpe(420, "local-bytebpe")  # WordPiece leaves the space out of the token: few spans agree
        grid_a, grid_b = tokenize(minilm_tokenizer, CORPUS[:5], max_length=64), tokenize(b, CORPUS[:5], max_length=64)
        with pytest.raises(TokenizerMismatchError,
                           match=r"only \d+\.\d% of the tokens of A \(BertTokenizer.*\) cover the same character span "
                                 r"as a token of B \(\w+\[420\]:\w+\); the profile asks for at least 80%"):
            align_grids(grid_a, minilm_tokenizer, [(grid_b, b)], texts=CORPUS[:5], max_length=64, names=("A", "B"),
                        min_kept=0.8)

    def test_other_texts_compat_grids_and_slow_tokenizers_are_refused(self, minilm_tokenizer):
        from saesim.extract.models import shifted_minilm_tokenizer

        shifted = shifted_minilm_tokenizer()
        grid_a = tokenize(minilm_tokenizer, ["the cat sat"], max_length=64)
        grid_b = tokenize(shifted, ["the cat sat down"], max_length=64)
        with pytest.raises(TokenizerMismatchError, match="tokenise the same texts"):
            align_grids(grid_a, minilm_tokenizer, [(grid_b, shifted)], texts=["the cat sat"], max_length=64)
        with pytest.raises(TokenizerMismatchError, match=r"`compat` grids keep every position"):
            align_grids(tokenize(minilm_tokenizer, TEXTS, max_length=64, compat=True), minilm_tokenizer,
                        [(tokenize(shifted, TEXTS, max_length=64, compat=True), shifted)], texts=TEXTS,
                        max_length=64)

        class Slow:
            is_fast = False
            name_or_path = "slow"

        with pytest.raises(TokenizerMismatchError, match="not a fast tokenizer"):
            token_spans(Slow(), TEXTS, grid_a, max_length=64)

    def test_same_tokenizer_needs_no_view(self, minilm_tokenizer):
        grid = tokenize(minilm_tokenizer, TEXTS, max_length=64)
        assert align_grids(grid, minilm_tokenizer, [(grid, minilm_tokenizer)], texts=TEXTS, max_length=64) is grid

    def test_views_round_trip_and_hash_covers_them(self, minilm_tokenizer):
        from saesim.extract.models import shifted_minilm_tokenizer

        shifted = shifted_minilm_tokenizer()
        aligned = align_grids(tokenize(minilm_tokenizer, TEXTS, max_length=64), minilm_tokenizer,
                              [(tokenize(shifted, TEXTS, max_length=64), shifted)], texts=TEXTS, max_length=64)
        back = TokenGrid.from_arrays(aligned.to_arrays(), tokenizer=aligned.tokenizer, compat=False,
                                     other_tokenizers=aligned.tokenizers[1:])
        assert back == aligned and back.others[0] == aligned.others[0]
        assert aligned.hash != tokenize(minilm_tokenizer, TEXTS, max_length=64).hash


class TestAlignmentReport:
    def test_counts_add_up_and_dropped_tokens_are_named(self, byte_bpe, sentencepiece_bpe):
        texts, b = CORPUS[:5], byte_bpe(300, "local-bytebpe-small")
        ga, gb = tokenize(sentencepiece_bpe, texts, max_length=64), tokenize(b, texts, max_length=64)
        aligned = align_grids(ga, sentencepiece_bpe, [(gb, b)], texts=texts, max_length=64)
        report = alignment_report(aligned, {tokenizer_name(sentencepiece_bpe): sentencepiece_bpe,
                                            tokenizer_name(b): b}, names={tokenizer_name(b): "B"})
        assert report["n_aligned"] == aligned.n_tokens
        for model, grid in zip(report["models"], (ga, gb)):
            n_cand = int(((grid.attention_mask == 1) & ~np.isin(grid.ids, grid.special_ids)).sum())
            assert model["n_candidates"] == n_cand and model["n_kept"] == aligned.n_tokens
            assert model["kept_fraction"] == pytest.approx(aligned.n_tokens / n_cand)
            assert sum(n for _, n in model["top_dropped"]) <= n_cand - aligned.n_tokens
            assert sum(band["n_tokens"] for band in model["bands"]) == n_cand
            assert [band["band"] for band in model["bands"]] == [label for label, _, _ in FREQUENCY_BANDS]
            assert model["top_dropped"]  # this pair drops something
        assert report["models"][1]["model"] == "B"
