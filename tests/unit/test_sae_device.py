"""Where saesim trains its SAEs and on how much: ``sae.device``, ``sae.gpu_budget`` (issue #22, item 5).

Everything here runs on the CPU: :func:`saesim.config.sae_training_plan` takes
``cuda_available`` as an argument, so the GPU branch is tested by passing True.
The one test that trains on a GPU is skipped without one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import numpy as np
import pytest
import torch

from saesim.config import (
    ProfileError,
    SaeBudget,
    SaeSpec,
    SaeTrainingPlan,
    load_profile,
    sae_training_plan,
)
from saesim.extract._extract_keys import training_key
from saesim.extract._extract_layer import training_rows
from saesim.extract.saes import train_topk_sae

# Training keys of the shipped profiles' SAEs before `sae.device` / `sae.gpu_budget` existed
# (grid hash "G"). A changed key retrains every SAE of a profile (offline: about 20 minutes). The offline
# keys changed with #22's recipe (192k tokens of WikiText-2 + Brown outside the grid, the sparse trainer).
PINNED_TRAIN_KEYS = {
    ("offline", "a", 0): "df504f364158270a4975602abaddbf66f7b4429833168e952aae0bf8f8c6fa75",
    ("offline", "a", 17): "60b62a3ba89224b02c03b4a18978db8c0515b9ab626d2f41b3044167b690872f",
    ("offline", "b", 29): "7cb50df7701f6d36350d1c5a11d17413bd8e11532c04050a860eaf5723d43a5f",
    ("offline", "seed", 10): "dc4a8ffcf66bea89b63d805a130b2e9ed42df000852897460a5b026e80c340b5",
    ("offline", "control", 0): "2674a2a39ee79c8099c7830f9163e0ae2e50e2d392409a39e50060dc680c22b5",
    ("offline", "control_all", 17): "b9d96971bf525b5b037e5761ebc5c091fe812b4125e0016a4df4325f0bf75deb",
    ("tiny", "seed", 0): "c60b474b3987234c992ff86edc23d0e06840a482582e336f58e68a82bd516fbd",
    ("tiny", "control", 1): "058d29a48011f0e26d85e535e9925ed799aeab7f9305b992be27373171747e4d",
}


def spec(**changes) -> SaeSpec:
    base = dict(source="train", num_latents=64, k=4, epochs=2, train_tokens=1000)
    return SaeSpec(**{**base, **changes})


class TestTrainingPlan:
    @pytest.mark.parametrize("device, profile_device, cuda, expected", [
        ("auto", "auto", False, "cpu"),
        ("auto", "auto", True, "cuda"),
        ("auto", "cpu", True, "cpu"),     # a profile pinned to the CPU (tiny) keeps its SAEs there
        ("auto", "mps", True, "cuda"),
        ("cpu", "auto", True, "cpu"),
        ("cuda", "auto", True, "cuda"),
        ("cuda", "cpu", True, "cuda"),    # asked for explicitly
    ])
    def test_device(self, device, profile_device, cuda, expected):
        plan = sae_training_plan(spec(device=device), cuda_available=cuda, profile_device=profile_device)
        assert plan.device == expected

    def test_cuda_requested_without_a_gpu_names_the_field_and_the_fix(self):
        with pytest.raises(ProfileError, match=r"`sae.device` is 'cuda' but torch sees no CUDA device.*'auto'"):
            sae_training_plan(spec(device="cuda"), cuda_available=False)

    def test_without_a_gpu_budget_the_budget_is_the_cpu_one_on_every_device(self):
        for cuda in (False, True):
            assert sae_training_plan(spec(), cuda_available=cuda) == SaeTrainingPlan(
                device="cuda" if cuda else "cpu", train_tokens=1000, epochs=2)

    def test_the_gpu_budget_applies_on_cuda_only(self):
        sae = spec(gpu_budget=SaeBudget(train_tokens=50_000, epochs=8))
        assert sae_training_plan(sae, cuda_available=False) == SaeTrainingPlan("cpu", 1000, 2)
        assert sae_training_plan(sae, cuda_available=True) == SaeTrainingPlan("cuda", 50_000, 8, "sae.gpu_budget")
        assert sae_training_plan(dataclasses.replace(sae, device="cpu"), cuda_available=True).epochs == 2

    def test_missing_budget_fields_keep_the_cpu_values_and_all_means_every_token(self):
        plan = sae_training_plan(spec(gpu_budget=SaeBudget(epochs=8)), cuda_available=True)
        assert (plan.train_tokens, plan.epochs) == (1000, 8)
        plan = sae_training_plan(spec(gpu_budget=SaeBudget(train_tokens="all")), cuda_available=True)
        assert (plan.train_tokens, plan.epochs) == (None, 2)


class TestProfileFields:
    def test_dotted_overrides_as_the_cli_set_option_gives_them(self, tmp_path):
        profile = load_profile("offline", **{"model_a.sae.gpu_budget.epochs": 8, "model_a.sae.device": "cpu"})
        assert profile.model_a.sae.gpu_budget == SaeBudget(train_tokens=None, epochs=8)
        assert profile.model_a.sae.device == "cpu" and profile.model_b.sae.gpu_budget is None
        path = tmp_path / "offline.yaml"
        path.write_text(profile.to_yaml())
        assert load_profile(path) == profile  # the fields survive the YAML round trip

    @pytest.mark.parametrize("key, value, message", [
        ("model_a.sae.device", "mps", r"`model_a.sae.device` .* must be one of \['auto', 'cpu', 'cuda'\]"),
        ("model_a.sae.gpu_budget.epochs", 0, "epochs"),
        ("model_a.sae.gpu_budget.train_tokens", "many", "train_tokens"),
        ("model_a.sae.gpu_budget.batch", 4, "unknown key"),
    ])
    def test_bad_values(self, key, value, message):
        with pytest.raises(ProfileError, match=message):
            load_profile("offline", **{key: value})

    def test_defaults_leave_the_plain_dict_and_the_profile_key_as_before(self):
        for name in ("offline", "tiny", "encoders"):
            profile = load_profile(name)
            old = json.loads(json.dumps(dataclasses.asdict(profile)))  # tuples as lists
            for slot in ("model_a", "model_b", "seed_control", "control", "control_all"):
                if old.get(slot) is not None:
                    sae = old[slot]["sae"]
                    del sae["device"], sae["gpu_budget"]
                    if sae["trainer"] == "reference":  # set in a profile (offline) it stays in
                        del sae["trainer"]
                    if not sae["train_text"]:
                        del sae["train_text"]
            assert profile.to_dict() == old
            old.pop("steering_concepts")  # newer than the key: left out of it (the grids do not read it)
            assert profile.key() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]

    def test_profile_key_ignores_the_device_and_keys_the_budget_used_here(self, monkeypatch):
        import saesim.config as config

        profile = load_profile("offline")
        assert profile.replace(**{"model_a.sae.device": "cpu"}).key() == profile.key()
        budget = profile.replace(**{"model_a.sae.gpu_budget.epochs": 8})
        monkeypatch.setattr(config, "torch_sees_cuda", lambda: False)
        on_cpu = budget.key()
        monkeypatch.setattr(config, "torch_sees_cuda", lambda: True)
        on_gpu = budget.key()
        assert len({profile.key(), on_cpu, on_gpu}) == 3


class TestTrainingKey:
    @pytest.mark.parametrize("name, slot, layer", sorted(PINNED_TRAIN_KEYS))
    def test_shipped_keys_are_unchanged_with_or_without_a_gpu(self, name, slot, layer):
        profile = load_profile(name)
        for cuda in (False, True):
            assert training_key(profile, profile.model(slot), layer, "G", cuda_available=cuda) == \
                PINNED_TRAIN_KEYS[name, slot, layer]

    def test_the_budget_used_is_in_the_key_the_device_is_not(self):
        profile = load_profile("offline")
        key = lambda p, cuda: training_key(p, p.model("a"), 3, "G", cuda_available=cuda)  # noqa: E731
        default = key(profile, False)
        assert key(profile.replace(**{"model_a.sae.device": "cpu"}), True) == default
        bigger = profile.replace(**{"model_a.sae.gpu_budget": {"train_tokens": 400_000, "epochs": 8}})
        assert key(bigger, False) == default             # no GPU: the CPU budget, the CPU's SAE
        assert key(bigger, True) != default              # GPU: another budget, another SAE
        same = profile.replace(**{"model_a.sae.gpu_budget": {"train_tokens": 192_000, "epochs": 2}})
        assert key(same, True) == default                # same budget on a GPU: the CPU's SAE is reused
        more_epochs = profile.replace(**{"model_a.sae.gpu_budget.epochs": 8})
        assert len({key(more_epochs, True), key(bigger, True), default}) == 3

    def test_cuda_requested_without_a_gpu_fails_at_the_key(self):
        profile = load_profile("offline", **{"model_a.sae.device": "cuda"})
        with pytest.raises(ProfileError, match="sae.device"):
            training_key(profile, profile.model("a"), 3, "G", cuda_available=False)


class TestTrainingRows:
    def test_a_cap_below_the_grid_holds_the_rest_out(self):
        assert training_rows(None, SaeTrainingPlan("cpu", 600, 2), 1000) == 600
        assert training_rows(None, SaeTrainingPlan("cpu", None, 2), 1000) == 1000

    def test_a_budget_above_the_grid_trains_on_every_token_and_says_so(self, caplog):
        plan = SaeTrainingPlan("cuda", 5000, 8, "sae.gpu_budget")
        with caplog.at_level(logging.WARNING, logger="saesim.extract.pipeline"):
            assert training_rows(None, plan, 1000, what="Gemma, layer 3") == 1000
        assert "`sae.gpu_budget.train_tokens` asks for 5000 training tokens but the grid has 1000" in caplog.text
        assert "data.n_docs" in caplog.text


class TestTrainerDevice:
    def test_cpu_is_recorded(self):
        acts = np.random.default_rng(0).normal(size=(256, 16)).astype(np.float32)
        result = train_topk_sae(acts, num_latents=32, k=4, epochs=1, seed=0, num_threads=1, progress=False)
        assert result.device == "cpu" and result.summary()["device"] == "cpu"

    def test_bad_device(self):
        acts = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
        with pytest.raises(ValueError, match=r"`device` must be 'cpu', 'cuda' or 'cuda:N'"):
            train_topk_sae(acts, num_latents=16, k=2, epochs=1, seed=0, progress=False, device="tpu")

    @pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
    def test_cuda_without_a_gpu(self):
        acts = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
        with pytest.raises(ValueError, match="torch sees no CUDA device; pass device='cpu'"):
            train_topk_sae(acts, num_latents=16, k=2, epochs=1, seed=0, progress=False, device="cuda")

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    def test_cuda_trains_the_same_recipe_as_the_cpu(self):
        rng = np.random.default_rng(0)
        atoms = rng.normal(size=(48, 32))
        idx = rng.integers(0, 48, size=(4000, 3))
        acts = (atoms[idx].sum(1) + 0.02 * rng.normal(size=(4000, 32))).astype(np.float32)
        kw = dict(num_latents=128, k=4, epochs=3, seed=0, batch_size=256, progress=False)
        cpu = train_topk_sae(acts, **kw, device="cpu")
        gpu = train_topk_sae(acts, **kw, device="cuda")
        assert gpu.device.startswith("cuda") and gpu.weights.W_dec.dtype == np.float32
        assert abs(gpu.fvu - cpu.fvu) < 0.05 and gpu.fvu < 0.5
        assert np.all(np.isfinite(gpu.weights.W_enc))
