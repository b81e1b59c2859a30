"""GGUF loading (saesim.extract.gguf.load_gguf) on tiny Gemma-3 and Llama models written by the tests.

``write_tiny_gguf`` lays the tensors out as llama.cpp does (GGUF names, Llama's permuted q/k rows,
Gemma's ``1 + w`` norms) with the tokenizer kinds of the shipped models: SentencePiece-style for
Gemma-3-270M, byte-level BPE for SmolLM2-135M. Loading must give back the reference model and
tokenizer exactly.
"""

import pytest
import torch

from saesim.errors import ModelPackageError
from saesim.extract.gguf import load_gguf, load_gguf_tokenizer, with_bos
from saesim.extract.tiny_gguf import tiny_reference, write_tiny_gguf

FAMILIES = ("gemma3", "llama")

LOGIT_TOL = 1e-4
"""Same float32 weights through the same HF modules: only kernel-order noise."""

SENTENCES = [
    "Hello world, the river often began.",
    "The city built a new station in 1987; music played before the season!",
    "Sparse feature layer token  language model, quickly and slowly.",
    "Café ☃ naïve — unseen characters fall back to bytes.\nA second line.",
]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_gguf")
    return folder, {family: write_tiny_gguf(folder, family) for family in FAMILIES}


@pytest.fixture(scope="module")
def loaded(written):
    folder, paths = written
    return {family: load_gguf(folder, paths[family].name) for family in FAMILIES}


@pytest.fixture(scope="module")
def reference(written):
    folder, _ = written
    return {family: tiny_reference(folder, family) for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_round_trip_exactly(family, loaded, reference):
    """Names, q/k permutation (llama) and the norm offset (gemma3) all undone: every tensor equal.

    Gemma's norms come back as ``(w + 1) - 1`` in float32, so they may differ in the last bits.
    """
    got = loaded[family][0].state_dict()
    want = reference[family][0].state_dict()
    assert got.keys() == want.keys()
    for name, tensor in want.items():
        if family == "gemma3" and name.endswith("norm.weight"):
            torch.testing.assert_close(got[name], tensor, atol=2e-7, rtol=0, msg=name)
        else:
            assert torch.equal(got[name], tensor), name


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_reference(family, loaded, reference):
    model, _ = loaded[family]
    ref_model, ref_tok = reference[family]
    for text in SENTENCES:
        ids = torch.tensor([ref_tok.encode(text).ids])
        assert ids.shape[1] > 8  # longer than gemma3's sliding window (4): the window matters
        with torch.no_grad():
            got, want = model(ids).logits, ref_model(ids).logits
        assert want.std() > 0.3  # not a degenerate model
        torch.testing.assert_close(got, want, atol=LOGIT_TOL, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trips(family, loaded, reference):
    got, want = loaded[family][0].config, reference[family][0].config
    for key in ("num_hidden_layers", "hidden_size", "vocab_size", "intermediate_size", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rope_parameters", "tie_word_embeddings",
                "bos_token_id", "eos_token_id", "max_position_embeddings"):
        assert getattr(got, key) == getattr(want, key), key
    assert got.rms_norm_eps == pytest.approx(want.rms_norm_eps, rel=1e-6)  # stored as float32
    assert got.model_type == want.model_type
    if family == "gemma3":
        assert got.model_type == "gemma3_text"
        assert got.sliding_window == want.sliding_window == 4
        assert got.layer_types == want.layer_types
        assert set(got.layer_types) == {"sliding_attention", "full_attention"}
        assert got.query_pre_attn_scalar == want.query_pre_attn_scalar


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_ids_match_reference(family, loaded, reference):
    tokenizer, (_, ref_tok) = loaded[family][1], reference[family]
    assert tokenizer.is_fast
    assert len(tokenizer) == loaded[family][0].config.vocab_size
    for text in SENTENCES:
        want = ref_tok.encode(text, add_special_tokens=False)
        got = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert got["input_ids"] == want.ids, text
        assert [tuple(o) for o in got["offset_mapping"]] == want.offsets, text
        assert tokenizer.decode(got["input_ids"]) == text


@pytest.mark.parametrize("family", FAMILIES)
def test_leading_space_is_inside_the_word_token(family, loaded):
    """Both real tokenizers put the space before a word into that word's token, and offsets cover it."""
    tokenizer = loaded[family][1]
    text = "Hello world"
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = [text[a:b] for a, b in enc["offset_mapping"]]
    assert spans[-1] == " world"
    assert tokenizer.convert_ids_to_tokens(enc["input_ids"][-1]) == ("▁world" if family == "gemma3" else "Ġworld")
    assert "".join(spans) == text


def test_gemma3_adds_bos(loaded):
    tokenizer = loaded["gemma3"][1]
    plain = tokenizer("Hello world", add_special_tokens=False)["input_ids"]
    enc = tokenizer("Hello world", add_special_tokens=True, return_offsets_mapping=True)
    assert enc["input_ids"] == [tokenizer.bos_token_id] + plain
    assert tokenizer.bos_token == "<bos>" and tokenizer.bos_token_id == 2
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == ("<eos>", "<pad>", "<unk>")
    assert tuple(enc["offset_mapping"][0]) == (0, 0)


def test_llama_adds_nothing_and_with_bos_prepends_endoftext(written):
    folder, paths = written
    tokenizer = load_gguf_tokenizer(folder, paths["llama"].name)  # with_bos changes it in place
    plain = tokenizer("Hello world", add_special_tokens=False, return_offsets_mapping=True)
    assert tokenizer("Hello world", add_special_tokens=True)["input_ids"] == plain["input_ids"]
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 0
    assert tokenizer("a<|endoftext|>b", add_special_tokens=False)["input_ids"][1] == 0  # control tokens stay whole
    bos = with_bos(tokenizer, "<|endoftext|>")  # what load_gguf_package does for SmolLM2
    enc = bos("Hello world", return_offsets_mapping=True)
    assert enc["input_ids"] == [0] + plain["input_ids"]
    assert enc["offset_mapping"][1:] == plain["offset_mapping"]


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_cache_round_trips(family, written, loaded, tmp_path):
    folder, paths = written
    cache = tmp_path / "tokenizer"
    built = load_gguf_tokenizer(folder, paths[family].name, cache=cache)
    assert (cache / "tokenizer_config.json").is_file()
    again = load_gguf_tokenizer(folder / "nowhere", "absent.gguf", cache=cache)  # served from the cache
    for text in SENTENCES:
        want = loaded[family][1](text, return_offsets_mapping=True)
        for tok in (built, again):
            got = tok(text, return_offsets_mapping=True)
            assert got["input_ids"] == want["input_ids"]
            assert got["offset_mapping"] == want["offset_mapping"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("keep", ["half", "all_but_8_bytes", "header_only"])
def test_truncated_file_raises(family, keep, written):
    folder, paths = written
    data = paths[family].read_bytes()
    cut = {"half": len(data) // 2, "all_but_8_bytes": len(data) - 8, "header_only": 100}[keep]
    damaged = folder / f"damaged-{family}-{keep}.gguf"
    damaged.write_bytes(data[:cut])
    with pytest.raises(ModelPackageError, match="could not load the GGUF file .*damaged"):
        load_gguf(folder, damaged.name)


def test_missing_file_raises(written):
    folder, _ = written
    with pytest.raises(ModelPackageError, match="no GGUF file"):
        load_gguf(folder, "absent.gguf")


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_bytes(family, written, tmp_path):
    _, paths = written
    again = write_tiny_gguf(tmp_path / "again", family, seed=0)
    assert again.name == paths[family].name
    assert again.read_bytes() == paths[family].read_bytes()
    other = write_tiny_gguf(tmp_path / "other", family, seed=1)
    assert other.stat().st_size == again.stat().st_size and other.read_bytes() != again.read_bytes()
    assert not [p.name for p in (tmp_path / "again").iterdir() if p.name.startswith(".")]  # no temp left over


@pytest.mark.parametrize("family", FAMILIES)
def test_q8_0_dequantises_within_block_error(family, written, reference, tmp_path):
    """Q8_0 (one scale per 32 values) loads back within half a quantisation step of the reference."""
    path = write_tiny_gguf(tmp_path, family, qtype="Q8_0")
    assert path.stat().st_size < 0.4 * written[1][family].stat().st_size
    model, _ = load_gguf(tmp_path, path.name)
    ref_model, ref_tok = reference[family]
    got = model.state_dict()
    for name, want in ref_model.state_dict().items():
        step = want.abs().max() / 127  # the largest block scale; fp16 rounding of it adds < 5 %
        torch.testing.assert_close(got[name], want, atol=0.55 * step.item(), rtol=0, msg=name)
    ids = torch.tensor([ref_tok.encode(SENTENCES[1]).ids])
    with torch.no_grad():
        got_logits, want_logits = model(ids).logits, ref_model(ids).logits
    agree = (got_logits.argmax(-1) == want_logits.argmax(-1)).float().mean()
    assert agree > 0.8


def test_unknown_family_rejected(tmp_path):
    with pytest.raises(ValueError, match="family"):
        write_tiny_gguf(tmp_path, "gpt2")


def test_loading_prints_no_conversion_bar(written, capfd):
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    folder, paths = written
    bar = gguf_utils.tqdm
    load_gguf(folder, paths["llama"].name)
    assert "de-quantizing" not in capfd.readouterr().err
    assert gguf_utils.tqdm is bar  # put back
