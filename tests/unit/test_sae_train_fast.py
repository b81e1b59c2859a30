"""Tests for the sparse TopK SAE trainer (``train_topk_sae(trainer="sparse")``) against the reference one.

The sparse trainer computes sparsify's loss and gradients by hand and steps the schedule-free
optimizer without byte swaps. Oracles: autograd through ``sparsify.Sae.forward`` (one step's
gradients), ``schedulefree.ScheduleFreeWrapper(SignSGD)`` (the optimizer's bits) and the
reference trainer (whole trainings, same seed).
"""

import contextlib
import io

import numpy as np
import pytest
import torch

from saesim.extract._sae_train import _ScheduleFreeSignSGD, _sparse_backward
from saesim.extract.saes import TopKTrainConfig, TopKTrainer, encode, fvu, train_topk_sae

with contextlib.redirect_stdout(io.StringIO()):
    import sparsify

GRAD_RTOL = 1e-5
"""One step's gradients: max |sparse - autograd| / max |autograd| per parameter (float summation order)."""

FVU_ATOL = 1e-4
"""Trained SAEs of the two trainers, same seed: training and held-out FVU."""

WEIGHT_RTOL = 1e-4
"""Same, Adam (a continuous optimizer): max |sparse - reference| / max |reference| per parameter."""

COSINE_MIN = 0.999
"""Same, SignSGD (one flipped sign of a near-zero gradient moves a weight by a whole step): mean
cosine of the decoder rows of equal index."""


def structured(n, d=24, m=48, seed=0, dictionary_seed=0):
    """Rows that are sparse non-negative sums of m fixed unit directions (one dictionary per dictionary_seed)."""
    atoms = np.random.default_rng(dictionary_seed).normal(size=(m, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    coeff = rng.exponential(size=(n, m)) * (rng.random((n, m)) < 0.1)
    return (coeff @ atoms + 0.5 + 0.05 * rng.normal(size=(n, d))).astype(np.float32)


def small_sae(d=24, n=96, k=6, seed=0):
    torch.manual_seed(seed)
    sae = sparsify.Sae(d, sparsify.SaeConfig(num_latents=n, k=k))
    with torch.no_grad():
        sae.encoder.bias.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.3)
    return sae


AUX_PATHS = pytest.mark.parametrize("aux_dense_from", [0.0, 2.0], ids=["aux-dense", "aux-bags"])


class TestOneStep:
    @AUX_PATHS
    @pytest.mark.parametrize("n_dead", [0, 5, 60])  # none; fewer than d // 2 = 12 (all of them); more (top-k)
    def test_gradients_match_autograd(self, n_dead, aux_dense_from, monkeypatch):
        monkeypatch.setattr("saesim.extract._sae_train._AUX_DENSE_FROM", aux_dense_from)
        sae = small_sae()
        x = torch.from_numpy(structured(256, seed=1))
        dead = torch.zeros(96, dtype=torch.bool)
        dead[torch.randperm(96, generator=torch.Generator().manual_seed(0))[:n_dead]] = True
        alpha = 1 / 32
        out = sae(x, dead_mask=dead)
        (out.fvu + alpha * out.auxk_loss).backward()
        expected = {name: p.grad.clone() for name, p in sae.named_parameters()}
        assert (n_dead > 0) == (float(out.auxk_loss.detach()) > 0)
        for p in sae.parameters():
            p.grad = None
        loss_fvu, indices = _sparse_backward(sae, x, 6, dead, alpha)
        assert torch.equal(indices, out.latent_indices)
        assert float(loss_fvu) == pytest.approx(float(out.fvu.detach()), rel=1e-6)
        for name, p in sae.named_parameters():
            ref = expected[name]
            assert float((p.grad - ref).abs().max() / ref.abs().max()) < GRAD_RTOL, name

    def test_dead_latents_that_never_code(self):
        sae = small_sae()
        with torch.no_grad():
            sae.encoder.bias[:10] = -100.0  # these ten never have a positive code
        x = torch.from_numpy(structured(128, seed=2))
        dead = torch.zeros(96, dtype=torch.bool)
        dead[:10] = True
        out = sae(x, dead_mask=dead)
        (out.fvu + out.auxk_loss / 32).backward()
        expected = {name: p.grad.clone() for name, p in sae.named_parameters()}
        for p in sae.parameters():
            p.grad = None
        _sparse_backward(sae, x, 6, dead, 1 / 32)
        for name, p in sae.named_parameters():
            assert float((p.grad - expected[name]).abs().max() / expected[name].abs().max()) < GRAD_RTOL, name

    def test_no_dead_mask_is_no_auxk(self):
        sae = small_sae()
        x = torch.from_numpy(structured(128, seed=2))
        _sparse_backward(sae, x, 6, None, 1 / 32)
        with_none = sae.W_dec.grad.clone()
        _sparse_backward(sae, x, 6, torch.zeros(96, dtype=torch.bool), 1 / 32)
        assert torch.equal(with_none, sae.W_dec.grad)


class TestOptimizer:
    def test_bits_equal_the_schedule_free_wrapper(self):
        from schedulefree import ScheduleFreeWrapper
        from sparsify.sign_sgd import SignSGD

        gen = torch.Generator().manual_seed(0)
        start = [torch.randn(7, 5, generator=gen), torch.randn(7, generator=gen)]
        ours = [torch.nn.Parameter(t.clone()) for t in start]
        theirs = [torch.nn.Parameter(t.clone()) for t in start]
        opt = _ScheduleFreeSignSGD(ours, lr=0.01, momentum=0.95)
        ref = ScheduleFreeWrapper(SignSGD(theirs, lr=0.01), momentum=0.95)
        ref.train()
        for _ in range(6):
            grads = [torch.randn(t.shape, generator=gen) for t in start]
            for p, q, g in zip(ours, theirs, grads):
                p.grad, q.grad = g.clone(), g.clone()
            opt.step()
            ref.step()
            opt.zero_grad()
            ref.zero_grad()
            for p, q in zip(ours, theirs):
                assert torch.equal(p, q)
        opt.eval()
        ref.eval()
        for p, q in zip(ours, theirs):
            assert torch.equal(p, q)


def _train(x, trainer, **kwargs):
    settings = dict(num_latents=96, k=6, seed=0, epochs=3, batch_size=128, num_threads=1, progress=False)
    settings.update(kwargs)
    return train_topk_sae(x, trainer=trainer, **settings)


class TestTraining:
    @AUX_PATHS
    @pytest.mark.parametrize("dead_tokens", [None, 128])  # the default; AuxK from the second step on
    def test_signum_matches_the_reference(self, dead_tokens, aux_dense_from, monkeypatch):
        monkeypatch.setattr("saesim.extract._sae_train._AUX_DENSE_FROM", aux_dense_from)
        x, held = structured(1500, seed=3), structured(500, seed=4)
        ref, fast = (_train(x, t, dead_tokens=dead_tokens) for t in ("reference", "sparse"))
        assert fast.trainer == "sparse" and fast.summary()["trainer"] == "sparse" and ref.trainer == "reference"
        np.testing.assert_allclose(fast.history, ref.history, atol=FVU_ATOL)
        assert fast.fvu == pytest.approx(ref.fvu, abs=FVU_ATOL)
        held_fvu = [fvu(r.weights, held, encode(r.weights, held, progress=False)) for r in (ref, fast)]
        assert held_fvu[1] == pytest.approx(held_fvu[0], abs=FVU_ATOL)
        cos = np.sum(ref.weights.W_dec * fast.weights.W_dec, axis=1)  # unit rows
        assert cos.mean() >= COSINE_MIN

    def test_adam_matches_the_reference(self):
        x = structured(1500, seed=5)
        ref, fast = (_train(x, t, optimizer="adam", dead_tokens=128) for t in ("reference", "sparse"))
        np.testing.assert_allclose(fast.history, ref.history, atol=FVU_ATOL)
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            a, b = np.asarray(getattr(ref.weights, name)), np.asarray(getattr(fast.weights, name))
            assert np.abs(a - b).max() <= WEIGHT_RTOL * np.abs(a).max(), name

    def test_deterministic_for_a_seed(self):
        x = structured(900, seed=6)
        a, b, c = (_train(x, "sparse", seed=s, dead_tokens=128) for s in (3, 3, 4))
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            np.testing.assert_array_equal(getattr(a.weights, name), getattr(b.weights, name))
        assert a.history == b.history
        assert not np.array_equal(a.weights.W_dec, c.weights.W_dec)

    def test_global_torch_rng_untouched(self):
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        _train(structured(200, seed=7), "sparse", epochs=1)
        np.testing.assert_array_equal(torch.rand(3), expected)

    def test_trainer_object_and_default(self):
        assert TopKTrainConfig(num_latents=8, k=2, epochs=1, seed=0).trainer == "reference"
        config = TopKTrainConfig(num_latents=32, k=4, epochs=1, seed=0, batch_size=64, num_threads=1, trainer="sparse")
        fitted = TopKTrainer(config, progress=False).fit(structured(300, seed=8))
        assert fitted.summary_["trainer"] == "sparse"

    def test_bad_trainer(self):
        with pytest.raises(ValueError, match="`trainer` must be 'reference' or 'sparse'; got 'fast'"):
            _train(structured(100, seed=9), "fast", epochs=1)
