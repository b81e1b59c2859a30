"""Write tiny, seeded, randomly initialised Gemma-3 and Llama causal LMs as GGUF files the way
llama.cpp lays them out, next to their Hugging Face reference copies, so tests can load them back.

Two families, one per shipped model kind:

- ``"gemma3"``: ``Gemma3ForCausalLM`` (6 layers: 5 sliding-window, 1 full attention, the default
  pattern that a GGUF cannot state) with a SentencePiece-style vocabulary (``tokenizer.ggml.model =
  "llama"``): control tokens, ``<0xNN>`` byte-fallback tokens, ``▁``-prefixed pieces, no merges in
  the file, BOS added -- like Gemma-3-270M.
- ``"llama"``: ``LlamaForCausalLM`` (3 layers, grouped-query attention) with a byte-level BPE
  vocabulary (``tokenizer.ggml.model = "gpt2"``, pre-tokenizer ``"smollm"``): ``<|endoftext|>`` at
  id 0, merges in the file, no BOS added -- like SmolLM2-135M.

The tensors are written as llama.cpp's converter writes them: GGUF names (``blk.N.attn_q`` …),
Llama's q/k rows permuted for its interleaved rotary layout, Gemma's RMSNorm weights stored as
``1 + w``. Weights are float32, or Q8_0 for the 2-D matrices (norms stay float32).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from saesim.io import atomic_folder, atomic_path

FAMILIES = ("gemma3", "llama")
QTYPES = ("F32", "Q8_0")

_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no will "
    "model word sparse feature layer token language river city music light water time people year "
    "small large early later first second new old long short high low world house story market "
    "north south history science garden winter summer song album game team season station road "
    "built played wrote found moved began opened called known named said made took became held "
    "quickly slowly often never always nearly about after before during between under over"
).split()


def _corpus(n_lines: int = 400) -> list[str]:
    """Deterministic English-like training lines: words, capitals, numbers and punctuation."""
    rng = random.Random(20240611)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(1, 2024)))
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice([".", ".", ",", "!", "?", ";"]))
    return lines


# ----------------------------------------------------------------------------------------------
# tokenizers


def _sentencepiece_vocab(vocab_size: int = 700) -> dict:
    """Gemma-style vocabulary: control tokens, 256 byte tokens, then BPE pieces in merge order."""
    from gguf import TokenType
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    trainer_tok = Tokenizer(BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    n_fixed = 7 + 256
    trainer = BpeTrainer(vocab_size=vocab_size - n_fixed, min_frequency=2, limit_alphabet=48, show_progress=False)
    trainer_tok.train_from_iterator(_corpus(), trainer=trainer)
    learned = sorted(trainer_tok.get_vocab().items(), key=lambda kv: kv[1])

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    tokens = specials + [f"<0x{b:02X}>" for b in range(256)] + [t for t, _ in learned]
    types = [int(TokenType.CONTROL)] * len(specials) + [int(TokenType.BYTE)] * 256
    types += [int(TokenType.NORMAL)] * len(learned)
    types[3] = int(TokenType.UNKNOWN)
    scores = [0.0] * n_fixed + [-float(i) for i in range(len(learned))]

    # SentencePiece BPE merges any adjacent pair whose concatenation is a piece, best (earliest) piece
    # first; the file carries no merges, so spell that rule out as an ordered merge list.
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece in tokens[n_fixed:]:
        splits = [(piece[:k], piece[k:]) for k in range(1, len(piece))]
        merges += sorted((s for s in splits if s[0] in vocab and s[1] in vocab), key=lambda s: -len(s[0]))
    ref = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    ref.normalizer = normalizers.Replace(" ", "▁")
    ref.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    ref.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    _add_specials_and_bos(ref, specials, bos="<bos>")
    return dict(
        tokens=tokens, scores=scores, types=types, merges=None, model="llama", pre="default",
        bos=2, eos=1, unk=3, pad=0, add_bos=True, add_space_prefix=False, reference=ref,
    )


def _byte_level_vocab(vocab_size: int = 600) -> dict:
    """SmolLM2-style byte-level BPE: special tokens first (``<|endoftext|>`` = 0), digits split."""
    from gguf import TokenType
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    ref = Tokenizer(BPE())
    ref.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    ref.decoder = decoders.ByteLevel()
    ref.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    ref.train_from_iterator(_corpus(), trainer=trainer)
    tokens = [t for t, _ in sorted(ref.get_vocab().items(), key=lambda kv: kv[1])]
    model = json.loads(ref.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    types = [int(TokenType.CONTROL) if t in specials else int(TokenType.NORMAL) for t in tokens]
    return dict(
        tokens=tokens, scores=None, types=types, merges=merges, model="gpt2", pre="smollm",
        bos=1, eos=2, unk=0, pad=2, add_bos=False, add_space_prefix=None, reference=ref,
    )


def _add_specials_and_bos(tok, specials: list[str], bos: str) -> None:
    from tokenizers import AddedToken, processors

    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in specials])
    bos_id = tok.token_to_id(bos)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
    )


# ----------------------------------------------------------------------------------------------
# models


def _build_model(family: str, vocab: dict, seed: int):
    """The HF model, every parameter drawn from a seeded generator (norms too, so offsets show)."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    ids = dict(vocab_size=len(vocab["tokens"]), bos_token_id=vocab["bos"], eos_token_id=vocab["eos"],
               pad_token_id=vocab["pad"], tie_word_embeddings=True, max_position_embeddings=512)
    if family == "gemma3":
        config = Gemma3TextConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
            num_key_value_heads=1, head_dim=16, rms_norm_eps=1e-6, sliding_window=4,
            rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
            **ids,
        )
        cls = Gemma3ForCausalLM
    else:
        config = LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 100_000.0}, **ids,
        )
        cls = LlamaForCausalLM
    model = cls(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                # Gemma's RMSNorm scales by (1 + w), Llama's by w
                param.copy_(0.2 * noise + (0.0 if family == "gemma3" else 1.0))
            else:
                param.copy_(0.15 * noise)
    return model


_LAYER_NAMES = {  # HF suffix under model.layers.N -> GGUF name under blk.N (llama.cpp)
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "post_attention_norm",  # gemma3; llama's is ffn_norm, below
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _gguf_name(family: str, hf_name: str) -> str | None:
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return None  # tied: llama.cpp writes no output.weight
    _, _, layer, rest = hf_name.split(".", 3)
    module, suffix = rest.rsplit(".", 1)
    name = _LAYER_NAMES[module]
    if family == "llama" and module == "post_attention_layernorm":
        name = "ffn_norm"
    return f"blk.{layer}.{name}.{suffix}"


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute``: HF's half-split rotary rows to GGML's interleaved ones."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _gguf_tensors(family: str, model) -> list[tuple[str, np.ndarray]]:
    config = model.config
    out = []
    for hf_name, tensor in model.state_dict().items():
        name = _gguf_name(family, hf_name)
        if name is None:
            continue
        w = tensor.detach().to(torch.float32).numpy().copy()
        if family == "llama" and ".attn_q." in name:
            w = _permute(w, config.num_attention_heads)
        elif family == "llama" and ".attn_k." in name:
            w = _permute(w, config.num_key_value_heads)
        elif family == "gemma3" and name.endswith("norm.weight"):
            w = w + 1.0  # llama.cpp stores Gemma norms as the multiplier itself
        out.append((name, np.ascontiguousarray(w, dtype=np.float32)))
    return out


# ----------------------------------------------------------------------------------------------
# writing


def _names(family: str, seed: int, qtype: str = "F32") -> tuple[str, str]:
    stem = f"tiny-{family}-s{seed}"
    return f"{stem}-{qtype.lower()}.gguf", f"{stem}-reference"


def write_tiny_gguf(folder: str | os.PathLike, family: str, *, seed: int = 0, qtype: str = "F32") -> Path:
    """Build the tiny ``family`` model and write it as ``folder / "tiny-<family>-s<seed>-<qtype>.gguf"``.

    Parameters
    ----------
    folder
        Output folder (created if missing).
    family
        ``"gemma3"`` or ``"llama"``.
    seed
        Seeds the weights; the tokenizer is the same for every seed. Same seed, same bytes.
    qtype
        ``"F32"``, or ``"Q8_0"`` for the 2-D weight matrices (1-D norms stay F32).

    Returns
    -------
    Path
        The GGUF file, written atomically (:func:`saesim.io.atomic_path`). The HF
        reference (``save_pretrained`` + ``tokenizer.json``) goes to ``reference_dir(folder, family,
        seed=seed)``; load it with ``tiny_reference``.
    """
    import gguf

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}.")
    if qtype not in QTYPES:
        raise ValueError(f"qtype must be one of {QTYPES}, not {qtype!r}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = _sentencepiece_vocab() if family == "gemma3" else _byte_level_vocab()
    model = _build_model(family, vocab, seed)
    filename, _ = _names(family, seed, qtype)
    c = model.config

    with atomic_path(folder / filename) as tmp:
        w = gguf.GGUFWriter(str(tmp), family)
        w.add_name(f"tiny {family} s{seed}")
        w.add_file_type(int(gguf.LlamaFileType.ALL_F32 if qtype == "F32" else gguf.LlamaFileType.MOSTLY_Q8_0))
        w.add_context_length(c.max_position_embeddings)
        w.add_embedding_length(c.hidden_size)
        w.add_block_count(c.num_hidden_layers)
        w.add_feed_forward_length(c.intermediate_size)
        w.add_head_count(c.num_attention_heads)
        w.add_head_count_kv(c.num_key_value_heads)
        w.add_layer_norm_rms_eps(c.rms_norm_eps)
        if family == "gemma3":
            w.add_key_length(c.head_dim)
            w.add_value_length(c.head_dim)
            w.add_rope_freq_base(c.rope_parameters["full_attention"]["rope_theta"])
            w.add_sliding_window(c.sliding_window)
        else:
            w.add_rope_dimension_count(c.head_dim)
            w.add_rope_freq_base(c.rope_parameters["rope_theta"])
            w.add_vocab_size(c.vocab_size)
        w.add_tokenizer_model(vocab["model"])
        w.add_tokenizer_pre(vocab["pre"])
        w.add_token_list(vocab["tokens"])
        if vocab["scores"] is not None:
            w.add_token_scores(vocab["scores"])
        w.add_token_types(vocab["types"])
        if vocab["merges"] is not None:
            w.add_token_merges(vocab["merges"])
        w.add_bos_token_id(vocab["bos"])
        w.add_eos_token_id(vocab["eos"])
        w.add_unk_token_id(vocab["unk"])
        w.add_pad_token_id(vocab["pad"])
        w.add_add_bos_token(vocab["add_bos"])
        w.add_add_eos_token(False)
        if vocab["add_space_prefix"] is not None:
            w.add_add_space_prefix(vocab["add_space_prefix"])
        for name, data in _gguf_tensors(family, model):
            if qtype == "Q8_0" and data.ndim == 2 and data.shape[-1] % 32 == 0:
                qt = gguf.GGMLQuantizationType.Q8_0
                w.add_tensor(name, gguf.quants.quantize(data, qt), raw_dtype=qt)
            else:
                w.add_tensor(name, data)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    _save_reference(model, vocab["reference"], reference_dir(folder, family, seed=seed))
    return folder / filename


def reference_dir(folder: str | os.PathLike, family: str, *, seed: int = 0) -> Path:
    """Where ``write_tiny_gguf`` saves the HF reference of ``family`` / ``seed`` under ``folder``."""
    return Path(folder) / _names(family, seed)[1]


def _save_reference(model, tokenizer, target: Path) -> None:
    with atomic_folder(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save(str(tmp / "tokenizer.json"))


def tiny_reference(folder: str | os.PathLike, family: str, *, seed: int = 0):
    """Load the HF reference that ``write_tiny_gguf(folder, family, seed=seed)`` saved.

    Returns
    -------
    (model, tokenizer)
        The float32 ``*ForCausalLM`` in ``eval()`` mode and the ``tokenizers.Tokenizer`` the GGUF
        vocabulary was made from (its ``encode`` adds BOS for ``"gemma3"``, nothing for ``"llama"``).
    """
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    path = reference_dir(folder, family, seed=seed)
    if not path.is_dir():
        raise FileNotFoundError(f"no tiny {family} reference in {path}; call write_tiny_gguf first.")
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    return model, Tokenizer.from_file(str(path / "tokenizer.json"))
