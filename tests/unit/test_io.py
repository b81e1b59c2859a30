"""Tests for saesim.io: atomic writes (nothing half-written, no temporary left behind) and JSON-safe values."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from saesim.io import (
    atomic_folder,
    atomic_parquet,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    read_json_or_none,
    to_jsonable,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


class TestAtomicWrites:
    def test_text_lands_whole_and_creates_the_folder(self, tmp_path):
        target = tmp_path / "cells" / "full_space" / "a0_b1.json"
        text = json.dumps([{"svcca": 0.5, "n_pairs": 3}])
        atomic_write_text(target, text)
        assert target.read_bytes() == text.encode()
        assert leftovers(target.parent) == []

    def test_bytes_and_overwrite(self, tmp_path):
        target = tmp_path / "blob.bin"
        atomic_write_bytes(target, b"old")
        atomic_write_bytes(target, b"\x00new\xff")
        assert target.read_bytes() == b"\x00new\xff"
        assert leftovers(tmp_path) == []

    def test_failure_leaves_no_temporary_and_the_old_file_intact(self, tmp_path):
        target = tmp_path / "kept.json"
        target.write_text("old")
        with pytest.raises(RuntimeError, match="interrupted"):
            with atomic_path(target) as tmp:
                tmp.write_text("half")
                assert tmp.parent == tmp_path and tmp.name.startswith(".kept.json.")
                raise RuntimeError("interrupted")
        assert target.read_text() == "old"
        assert leftovers(tmp_path) == []

    def test_failed_writer_leaves_nothing(self, tmp_path):
        class Broken:
            def to_parquet(self, path, index=False):
                Path(path).write_bytes(b"PAR1 partial")
                raise OSError("disk full")

        target = tmp_path / "grid.parquet"
        with pytest.raises(OSError, match="disk full"):
            atomic_parquet(Broken(), target)
        assert not target.exists()
        assert list(tmp_path.iterdir()) == []

    def test_parquet_round_trip_without_index(self, tmp_path):
        frame = pd.DataFrame({"layer_a": [0, 1], "svcca": [0.25, np.nan]}, index=[5, 7])
        target = tmp_path / "full_space.parquet"
        atomic_parquet(frame, target)
        back = pd.read_parquet(target)
        pd.testing.assert_frame_equal(back, frame.reset_index(drop=True))
        assert leftovers(tmp_path) == []


class TestAtomicFolder:
    def test_folder_lands_whole_and_replaces_the_old_one(self, tmp_path):
        target = tmp_path / "models" / "tokenizer"
        with atomic_folder(target) as tmp:
            assert tmp.is_dir() and not any(tmp.iterdir()) and tmp.parent == target.parent
            (tmp / "old.json").write_text("1")
        with atomic_folder(target) as tmp:
            (tmp / "vocab.json").write_text("{}")
            (tmp / "sub").mkdir()
            (tmp / "sub" / "merges.txt").write_text("a b")
            assert (target / "old.json").read_text() == "1"  # the old folder stays until the new one is done
        assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
            "sub", "sub/merges.txt", "vocab.json"]
        assert sorted(p.name for p in target.parent.iterdir()) == ["tokenizer"]

    def test_failure_removes_the_temporary_folder_and_keeps_the_old_one(self, tmp_path):
        target = tmp_path / "sae"
        target.mkdir()
        (target / "cfg.json").write_text("old")
        with pytest.raises(KeyboardInterrupt):
            with atomic_folder(target) as tmp:
                (tmp / "cfg.json").write_text("half")
                raise KeyboardInterrupt
        assert (target / "cfg.json").read_text() == "old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["sae"]


class TestReadJson:
    def test_missing_and_damaged_read_as_none(self, tmp_path):
        assert read_json_or_none(tmp_path / "absent.json") is None
        damaged = tmp_path / "damaged.json"
        damaged.write_text('[{"svcca": 0.5')
        assert read_json_or_none(damaged) is None

    def test_round_trip(self, tmp_path):
        path = tmp_path / "cell.json"
        atomic_write_text(path, json.dumps([{"r": 0.5, "rule": "first_index"}]))
        assert read_json_or_none(path) == [{"r": 0.5, "rule": "first_index"}]


class TestToJsonable:
    def test_numpy_scalars_become_python_scalars(self):
        for value, kind in ((np.float64(0.5), float), (np.float32(0.25), float), (np.int64(3), int),
                            (np.int32(-2), int), (np.bool_(True), bool)):
            out = to_jsonable(value)
            assert type(out) is kind and out == value

    def test_nan_stays_a_float(self):
        out = to_jsonable(np.float64("nan"))
        assert type(out) is float and math.isnan(out)
        assert json.dumps(to_jsonable({"p": np.float64("nan")})) == '{"p": NaN}'

    def test_arrays_tuples_mappings_and_paths(self):
        value = {"a": np.arange(3), "t": (np.int64(1), 2), "nested": {"k": [np.float64(1.5)]}, "path": Path("/x/y")}
        out = to_jsonable(value)
        assert out == {"a": [0, 1, 2], "t": [1, 2], "nested": {"k": [1.5]}, "path": "/x/y"}
        assert type(out["a"][0]) is int and type(out["nested"]["k"][0]) is float
        assert json.dumps(out) == '{"a": [0, 1, 2], "t": [1, 2], "nested": {"k": [1.5]}, "path": "/x/y"}'

    def test_a_record_keeps_its_order_and_plain_values(self):
        record = {"layer_a": np.int64(0), "rule": "first_index", "svcca": np.float64(0.1), "compat": False,
                  "top_hubs": "[[3, 2]]", "k": None}
        out = to_jsonable(record)
        assert list(out) == list(record)
        assert json.dumps(out) == ('{"layer_a": 0, "rule": "first_index", "svcca": 0.1, "compat": false, '
                                   '"top_hubs": "[[3, 2]]", "k": null}')
        assert to_jsonable("text") == "text" and to_jsonable(None) is None
