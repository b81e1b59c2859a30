"""Steering on tiny causal models: the hook, the skipped prefix, and planted transfer answers."""

import copy

import numpy as np
import pytest
import torch

from saesim.compare.nulls import p_value
from saesim.compare.steering import mean_diff_vector, procrustes_map, transfer_efficiency, unit
from saesim.config import ModelSpec
from saesim.extract.models import LoadedModel
from saesim.extract.steer import keyword_token_ids, steered_logits, steering_effects

D, LAYERS, VOCAB = 32, 3, 64
LAYER = 1
ALPHAS = (0.5, 1.0, 2.0)


def _tiny_llama(seed: int) -> LoadedModel:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=64, num_hidden_layers=LAYERS,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False, initializer_range=0.2)
    model = LlamaForCausalLM(config).eval()
    spec = ModelSpec(label="tiny llama", model=f"tiny-llama-{seed}", source="tiny", family="llama")
    return LoadedModel(model=model, tokenizer=None, spec=spec, blocks_path="model.layers", n_layers=LAYERS, d_model=D)


def _rotated(loaded: LoadedModel, q: np.ndarray) -> LoadedModel:
    """The same network with its residual basis rotated by ``q`` (RMSNorm weights are 1, so it commutes)."""
    model = copy.deepcopy(loaded.model)
    qt = torch.tensor(q, dtype=torch.float32)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(model.model.embed_tokens.weight @ qt)
        model.lm_head.weight.copy_(model.lm_head.weight @ qt)
        for block in model.model.layers:
            assert torch.all(block.input_layernorm.weight == 1) and torch.all(block.post_attention_layernorm.weight == 1)
            for lin in (block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj, block.mlp.gate_proj,
                        block.mlp.up_proj):
                lin.weight.copy_(lin.weight @ qt)
            for lin in (block.self_attn.o_proj, block.mlp.down_proj):
                lin.weight.copy_(qt.T @ lin.weight)
    return LoadedModel(model=model, tokenizer=None, spec=loaded.spec, blocks_path=loaded.blocks_path,
                       n_layers=LAYERS, d_model=D)


def _acts(loaded, ids):
    stash = {}
    handle = loaded.blocks[LAYER].register_forward_hook(lambda m, a, o: stash.setdefault("h", o.detach()))
    with torch.inference_mode():
        loaded.model(input_ids=torch.as_tensor(ids), use_cache=False)
    handle.remove()
    return stash["h"].reshape(-1, D).numpy().astype(np.float64)


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(0)
    a = _tiny_llama(0)
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    b = _rotated(a, q)
    fit_ids = rng.integers(0, VOCAB, size=(24, 16))
    prompts = rng.integers(0, VOCAB, size=(8, 12))
    return a, b, q, fit_ids, prompts, rng


def test_rotated_copy_is_the_same_function(setting):
    a, b, _, _, prompts, _ = setting
    ones = np.ones_like(prompts)
    np.testing.assert_allclose(steered_logits(a, prompts, ones, LAYER), steered_logits(b, prompts, ones, LAYER),
                               atol=1e-4)


def test_zero_push_leaves_outputs_bit_for_bit(setting):
    a, _, _, _, prompts, _ = setting
    ones, keep = np.ones_like(prompts), np.ones(prompts.shape, bool)
    with torch.inference_mode():
        plain = a.model(input_ids=torch.as_tensor(prompts), use_cache=False).logits.numpy()
    assert np.array_equal(steered_logits(a, prompts, ones, LAYER, np.ones(D), 0.0), plain)
    res = steering_effects(a, prompts, ones, keep, LAYER, np.zeros((1, D)), [1.0], np.array([3, 5]))
    assert np.all(res.effect == 0) and np.all(res.side_effect == 0)


def test_skipped_prefix_matches_the_plain_hook(setting):
    a, _, _, _, prompts, rng = setting
    ones, keep = np.ones_like(prompts), np.ones(prompts.shape, bool)
    vec = unit(rng.standard_normal(D)).astype(np.float32)
    plus = np.array([3, 5, 7])
    res = steering_effects(a, prompts, ones, keep, LAYER, vec[None], [1.5], plus, batch_size=3)
    base = torch.log_softmax(torch.tensor(steered_logits(a, prompts, ones, LAYER)), -1)
    steered = torch.log_softmax(torch.tensor(steered_logits(a, prompts, ones, LAYER, vec, 1.5)), -1)
    effect = (torch.logsumexp(steered[..., plus], -1) - torch.logsumexp(base[..., plus], -1)).mean(1).numpy()
    kl = (base.exp() * (base - steered)).sum(-1).mean(1).numpy()
    np.testing.assert_allclose(res.effect[0, 0], effect, atol=1e-5)
    np.testing.assert_allclose(res.side_effect[0, 0], kl, atol=1e-5)


def _unembedding(loaded, tokens):
    return loaded.model.lm_head.weight.detach().numpy()[tokens].sum(axis=0).astype(np.float64)


def _efficiency(model_b, v_a, w, native, prompts, plus):
    ones, keep = np.ones_like(prompts), np.ones(prompts.shape, bool)
    vectors = unit(np.stack([native, v_a @ w])).astype(np.float32)
    res = steering_effects(model_b, prompts, ones, keep, LAYER, vectors, ALPHAS, plus)
    e, s = res.effect.mean(axis=2), res.side_effect.mean(axis=2)
    return transfer_efficiency(e[1], s[1], e[0], s[0], s[0, 1]), res


def test_rotated_model_transfers_fully_through_paired_decoder_rows(setting):
    a, b, q, fit_ids, prompts, rng = setting
    acts_a, acts_b = _acts(a, fit_ids), _acts(b, fit_ids)
    np.testing.assert_allclose(acts_b, acts_a @ q, atol=1e-4)
    concept = np.isin(fit_ids.ravel(), [3, 5, 7])
    np.testing.assert_allclose(mean_diff_vector(acts_b, concept), mean_diff_vector(acts_a, concept) @ q, atol=1e-4)
    # a direction that steers (a random network's mean-difference vector need not): the unembedding rows
    v_a, native = _unembedding(a, [3, 5, 7]), _unembedding(b, [3, 5, 7])
    np.testing.assert_allclose(native, v_a @ q, atol=1e-5)
    decoder_a = unit(rng.standard_normal((200, D)))
    decoder_b = decoder_a @ q + 0.01 * rng.standard_normal((200, D))  # features correspond, a little noise
    w = procrustes_map(decoder_a, decoder_b)
    eff, res = _efficiency(b, v_a, w, native, prompts, np.array([3, 5, 7]))
    assert res.effect[0].mean() > 0  # the native vector does steer toward its tokens
    assert eff == pytest.approx(1.0, abs=0.03)


def test_unrelated_model_transfers_at_the_null(setting):
    a, _, _, fit_ids, prompts, rng = setting
    other = _tiny_llama(1)  # an independent network: nothing corresponds
    v_a, native = _unembedding(a, [3, 5, 7]), _unembedding(other, [3, 5, 7])
    decoder_a, decoder_o = unit(rng.standard_normal((200, D))), unit(rng.standard_normal((200, D)))
    plus = np.array([3, 5, 7])
    observed, _ = _efficiency(other, v_a, procrustes_map(decoder_a, decoder_o), native, prompts, plus)
    null = [_efficiency(other, v_a, procrustes_map(decoder_a, decoder_o[rng.permutation(200)]), native, prompts,
                        plus)[0] for _ in range(9)]
    assert np.isfinite(observed) and np.all(np.isfinite(null))
    assert p_value(observed, null) > 0.1
    assert abs(observed) < 0.6


def test_keyword_token_ids_keeps_single_token_words():
    from saesim.extract.models import shifted_minilm_tokenizer

    tok = shifted_minilm_tokenizer()
    ids = keyword_token_ids(tok, ["year", "zzzzqqqxx"])
    assert ids.size >= 1 and all(len(tok.decode([i]).split()) == 1 for i in ids)
    with pytest.raises(ValueError, match="one token"):
        keyword_token_ids(tok, ["zzzzqqqxx"])
