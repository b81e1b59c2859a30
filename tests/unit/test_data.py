"""Tests for saesim.extract.data: corpora, token grids, masks, hashes, tokenizer checks."""

import numpy as np
import pytest

from saesim.extract import data
from saesim.config import DataSpec
from saesim.extract.data import (
    DataNotFoundError,
    HubUnavailableError,
    TokenGrid,
    TokenizerMismatchError,
    data_dir,
    detokenise_wikitext,
    load_texts,
    tokenize,
    tokenizer_name,
)

TEXTS = ["The cat sat on the mat.", "A much longer sentence about lobsters in the sea, and more.", "Hi."]


class TestDataDir:
    def test_env_var_wins(self, monkeypatch, tmp_path):
        monkeypatch.setenv("SAESIM_DATA", str(tmp_path))
        assert data_dir() == tmp_path

    def test_missing_env_folder_names_the_variable(self, monkeypatch, tmp_path):
        monkeypatch.setenv("SAESIM_DATA", str(tmp_path / "absent"))
        with pytest.raises(DataNotFoundError, match=r"\$SAESIM_DATA=.*is not a folder; set SAESIM_DATA"):
            data_dir()

    def test_nothing_found_says_what_to_set(self, monkeypatch, tmp_path):
        monkeypatch.delenv("SAESIM_DATA", raising=False)
        monkeypatch.setattr(data, "_default_data_dir", lambda: tmp_path / "absent")
        with pytest.raises(DataNotFoundError, match=r"\$SAESIM_DATA is not set .* Set SAESIM_DATA="):
            data_dir()

    def test_missing_corpus_file(self, tmp_path):
        with pytest.raises(DataNotFoundError, match="WikiText-2 file .* is missing"):
            load_texts(DataSpec(n_docs=2, data_dir=str(tmp_path)))

    def test_default_is_the_shared_folder(self, monkeypatch):
        monkeypatch.delenv("SAESIM_DATA", raising=False)
        if not data._default_data_dir().is_dir():
            pytest.skip("the project's shared/data folder is not beside this checkout")
        assert (data_dir() / "wikitext-2-raw").is_dir()


class TestLoadTexts:
    def test_wikitext_paragraphs_are_clean_and_deterministic(self):
        docs = load_texts(DataSpec(corpus="wikitext2", n_docs=50))
        assert len(docs) == 50
        assert docs == load_texts(DataSpec(corpus="wikitext2", n_docs=50))
        assert docs[0].startswith("Homarus gammarus, known as the European lobster")
        assert not any(d.lstrip().startswith("=") for d in docs)
        assert not any("@-@" in d or "@.@" in d or " , " in d for d in docs)
        assert all(len(d.split()) >= 8 for d in docs)

    def test_first_n_is_a_prefix(self):
        assert load_texts(DataSpec(n_docs=5)) == load_texts(DataSpec(n_docs=20))[:5]

    def test_wikitext_articles(self):
        docs = load_texts(DataSpec(corpus="wikitext2", n_docs=3, unit="article"))
        assert docs[0].startswith("Homarus gammarus") and len(docs[0]) > 5000

    def test_too_many_documents(self):
        with pytest.raises(ValueError, match=r"`n_docs`=1000 but corpus 'wikitext2' holds only 122"):
            load_texts(DataSpec(n_docs=1000, unit="article"))

    def test_brown_drops_tags(self):
        docs = load_texts(DataSpec(corpus="brown", n_docs=3))
        assert docs[0].startswith("The Fulton County Grand Jury said Friday")
        assert "/" not in docs[0]
        assert "non-commercial" in data.BROWN_LICENCE

    def test_explicit_texts(self):
        assert load_texts(DataSpec(corpus="texts", texts=tuple(TEXTS), n_docs=2)) == TEXTS[:2]

    def test_openwebtext_offline_fails_fast(self):
        with pytest.raises(HubUnavailableError, match="needs the Hugging Face hub, but HF_HUB_OFFLINE=1"):
            load_texts(DataSpec(corpus="openwebtext", n_docs=2))

    def test_detokenise(self):
        line = " The 3 @.@ 1 m @-@ long ship , built in 1 @,@ 000 days ( roughly ) , sank . "
        assert detokenise_wikitext(line) == "The 3.1 m-long ship, built in 1,000 days (roughly), sank."


class TestTokenize:
    def test_padding_and_special_positions_are_dropped(self, minilm_tokenizer):
        grid = tokenize(minilm_tokenizer, TEXTS, max_length=16)
        cls, sep, pad = (minilm_tokenizer.cls_token_id, minilm_tokenizer.sep_token_id,
                         minilm_tokenizer.pad_token_id)
        assert grid.ids.dtype == np.int64 and grid.shape[0] == 3
        assert np.all(grid.ids[:, 0] == cls)
        assert not grid.keep[:, 0].any()
        assert not grid.keep[grid.ids == sep].any()
        assert not grid.keep[grid.attention_mask == 0].any()
        assert np.all(grid.ids[grid.attention_mask == 0] == pad)
        kept = grid.ids[grid.keep]
        assert not np.isin(kept, [cls, sep, pad]).any()
        assert grid.n_tokens == int(grid.keep.sum()) and 0 < grid.masked_fraction < 1

    def test_compat_keeps_every_position(self, minilm_tokenizer):
        grid = tokenize(minilm_tokenizer, TEXTS, max_length=16, compat=True)
        assert grid.keep.all() and grid.n_tokens == grid.n_positions

    def test_truncation(self, minilm_tokenizer):
        grid = tokenize(minilm_tokenizer, TEXTS, max_length=8)
        assert grid.shape[1] == 8

    def test_hash_is_deterministic_and_content_addressed(self, minilm_tokenizer):
        a = tokenize(minilm_tokenizer, TEXTS, max_length=16)
        b = tokenize(minilm_tokenizer, list(TEXTS), max_length=16)
        assert a.hash == b.hash and a == b and len(a.hash) == 64
        assert tokenize(minilm_tokenizer, TEXTS, max_length=16, compat=True).hash != a.hash
        assert tokenize(minilm_tokenizer, TEXTS[::-1], max_length=16).hash != a.hash
        assert tokenize(minilm_tokenizer, TEXTS, max_length=12).hash != a.hash

    def test_kept_rows_map_back_to_doc_and_position(self, minilm_tokenizer):
        grid = tokenize(minilm_tokenizer, TEXTS, max_length=16)
        flat = grid.kept_flat_index()
        assert np.all(np.diff(flat) > 0)
        np.testing.assert_array_equal(grid.kept_ids(), grid.ids[grid.keep])
        doc, pos = grid.doc_pos(np.arange(grid.n_tokens))
        np.testing.assert_array_equal(grid.ids[doc, pos], grid.kept_ids())
        assert grid.keep[doc, pos].all()
        d, p = grid.doc_pos([-1, 0])
        assert (d[0], p[0]) == (-1, -1) and (d[1], p[1]) == (0, 1)
        with pytest.raises(IndexError, match="kept rows"):
            grid.doc_pos([grid.n_tokens])
        rows = grid.rows_of_doc(1)
        assert np.all(doc[rows] == 1) and rows.size == grid.keep[1].sum()

    def test_arrays_round_trip(self, minilm_tokenizer):
        grid = tokenize(minilm_tokenizer, TEXTS, max_length=16)
        back = TokenGrid.from_arrays(grid.to_arrays(), tokenizer=grid.tokenizer, compat=grid.compat)
        assert back == grid and back.special_ids == grid.special_ids

    def test_arrays_are_read_only(self, minilm_tokenizer):
        grid = tokenize(minilm_tokenizer, TEXTS, max_length=16)
        with pytest.raises(ValueError):
            grid.ids[0, 0] = 1

    def test_needs_a_pad_token(self, minilm_tokenizer):
        import copy

        tok = copy.deepcopy(minilm_tokenizer)
        tok.pad_token = None
        with pytest.raises(ValueError, match="has no pad token"):
            tokenize(tok, TEXTS, max_length=8)

    def test_bad_inputs(self, minilm_tokenizer):
        with pytest.raises(ValueError, match="`texts` must be a non-empty list"):
            tokenize(minilm_tokenizer, [], max_length=8)
        with pytest.raises(ValueError, match="`max_length` must be a positive integer"):
            tokenize(minilm_tokenizer, TEXTS, max_length=0)


class TestTokenizerName:
    def test_tokenizer_name_ignores_the_folder(self, minilm_tokenizer, tmp_path):
        from transformers import AutoTokenizer

        minilm_tokenizer.save_pretrained(tmp_path / "copy")
        assert tokenizer_name(AutoTokenizer.from_pretrained(tmp_path / "copy")) == tokenizer_name(minilm_tokenizer)


class TestWikitextFromTheHub:
    """Without a local folder, WikiText-2 comes through `datasets` (tested on local parquet in the hub's layout)."""

    def test_same_documents_as_the_local_files(self, tmp_path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        local = data._wikitext_lines(None)
        files = {}
        for split, lines in zip(("validation", "test"), local):
            files[split] = str(tmp_path / f"{split}.parquet")
            pq.write_table(pa.table({"text": [line + "\n" if line else "" for line in lines]}), files[split])
        lines = data._wikitext_hub_lines("parquet", data_files=files)
        kwargs = dict(unit="paragraph", min_words=8, limit=200)
        assert data._wikitext_docs(lines, **kwargs) == data._wikitext_docs(local, **kwargs)

    def test_offline_without_local_copy_says_what_to_set(self, monkeypatch, tmp_path):
        monkeypatch.delenv("SAESIM_DATA", raising=False)
        monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
        monkeypatch.setattr(data, "_default_data_dir", lambda: tmp_path / "absent")
        with pytest.raises(DataNotFoundError, match=r"Set SAESIM_DATA=.*Without it, WikiText-2 comes from the "
                                                    r"Hugging Face hub Salesforce/wikitext, but: .*OFFLINE"):
            load_texts(DataSpec(corpus="wikitext2", n_docs=5))
