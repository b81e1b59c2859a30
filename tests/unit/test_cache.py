"""Tests for saesim.extract.cache: content-addressed store, atomic writes, corruption detection."""

import json
import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from saesim.extract.cache import MANIFEST, ArtefactStore, CacheCorruptionWarning, CacheMissError


def random_codes(seed, shape=(50, 40), density=0.1):
    rng = np.random.default_rng(seed)
    return sp.random(*shape, density=density, random_state=rng, format="csr", dtype=np.float32)


FIELDS = dict(model="m", revision="r1", sae_id="layers.3", hook="layers.3", data_hash="abc", dtype="float32",
              codes="sae", compat=False)


@pytest.fixture
def store(tmp_path):
    return ArtefactStore(tmp_path / "store")


def payload_path(store, key, kind):
    manifest = json.loads((store.entry_dir(key, kind) / MANIFEST).read_text())
    (entry,) = manifest["files"].values()
    return store.entry_dir(key, kind) / entry["name"]


class TestKey:
    def test_same_fields_any_order_same_key(self, store):
        assert store.key(**FIELDS) == store.key(**dict(reversed(list(FIELDS.items()))))

    @pytest.mark.parametrize("field, value", [("model", "m2"), ("revision", "r2"), ("sae_id", "layers.4"),
                                              ("hook", "layers.4"), ("data_hash", "abd"), ("compat", True),
                                              ("codes", "relu_preact"), ("dtype", "float16")])
    def test_stale_fields_give_a_different_key(self, store, field, value):
        assert store.key(**FIELDS) != store.key(**dict(FIELDS, **{field: value}))

    def test_adding_or_dropping_a_field_gives_a_different_key(self, store):
        keys = {store.key(**FIELDS), store.key(**FIELDS, layer=3), store.key(**{k: v for k, v in FIELDS.items()
                                                                                if k != "sae_id"})}
        assert len(keys) == 3
        assert store.key(x={"a": 1}) != store.key(x={"a": 2}) != store.key(x={"a": 1, "b": None})  # nested values

    def test_key_is_a_stable_lowercase_hex_sha256(self, store, tmp_path):
        key = store.key(**FIELDS)
        assert re.fullmatch(r"[0-9a-f]{64}", key)
        assert store.entry_dir(key, "codes").name == key  # usable as an entry's folder
        # pinned: the same fields must find the same entries in every run and release (bump KEY_SCHEMA to change it)
        assert key == "0a752c04717b945c162d74027ae495afa900d79ad51d5d2980a61e69863d8b05"
        assert ArtefactStore(tmp_path / "elsewhere").key(**FIELDS) == key  # the store's folder is not in it

    @pytest.mark.parametrize("spelling, canonical", [
        ({"data_hash": Path("abc")}, {"data_hash": "abc"}),                   # a Path is its string
        ({"layers": (1, 2)}, {"layers": [1, 2]}),                             # a tuple is its list
        ({"n": np.int64(3), "r": np.float64(0.5)}, {"n": 3, "r": 0.5}),       # a NumPy scalar is its value
        ({"tags": {"b", "a", "c"}}, {"tags": ["a", "b", "c"]}),               # a set is its sorted list
        ({"opts": {"y": 1, "x": [2]}}, {"opts": {"x": [2], "y": 1}}),         # nested mappings in any order
    ])
    def test_equal_values_give_the_same_key_whatever_their_spelling(self, store, spelling, canonical):
        assert store.key(**{**FIELDS, **spelling}) == store.key(**{**FIELDS, **canonical})

    def test_unserialisable_field_is_an_error(self, store):
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            store.key(model=object())

    def test_no_fields_is_an_error(self, store):
        with pytest.raises(ValueError, match="at least one field"):
            store.key()

    def test_bad_key_is_rejected(self, store):
        with pytest.raises(ValueError, match="64-character"):
            store.has("not-a-key", "codes")


class TestCodes:
    def test_round_trip(self, store):
        codes = random_codes(0)
        key = store.key(**FIELDS)
        assert not store.has(key, "codes")
        store.save_codes(key, codes, {"fields": FIELDS})
        assert store.has(key, "codes")
        loaded = store.load_codes(key)
        assert loaded.shape == codes.shape and loaded.dtype == np.float32
        assert (loaded != codes).nnz == 0
        assert store.manifest(key, "codes")["meta"]["fields"] == FIELDS
        assert store.size_bytes(key) > codes.data.nbytes

    def test_empty_matrix_round_trip(self, store):
        key = store.key(x=1)
        store.save_codes(key, sp.csr_matrix((0, 7), dtype=np.float32))
        assert store.load_codes(key).shape == (0, 7)

    def test_reopened_store_finds_the_entry(self, store):
        key = store.key(**FIELDS)
        store.save_codes(key, random_codes(1))
        assert ArtefactStore(store.root).has(key, "codes")

    def test_missing_raises_cache_miss(self, store):
        with pytest.raises(CacheMissError, match="no valid 'codes' entry"):
            store.load_codes(store.key(**FIELDS))

    def test_payload_without_manifest_counts_as_missing(self, store):
        # an interrupted write: payload on disk, commit marker never written
        key = store.key(**FIELDS)
        store.save_codes(key, random_codes(2))
        (store.entry_dir(key, "codes") / MANIFEST).unlink()
        assert not ArtefactStore(store.root).has(key, "codes")

    def test_truncated_payload_is_detected(self, store):
        key = store.key(**FIELDS)
        store.save_codes(key, random_codes(3))
        path = payload_path(store, key, "codes")
        path.write_bytes(path.read_bytes()[:-10])
        fresh = ArtefactStore(store.root)
        with pytest.warns(CacheCorruptionWarning, match="truncated"):
            assert not fresh.has(key, "codes")
        with pytest.warns(CacheCorruptionWarning), pytest.raises(CacheMissError):
            fresh.load_codes(key)

    def test_corrupted_payload_same_size_is_detected(self, store):
        key = store.key(**FIELDS)
        store.save_codes(key, random_codes(4))
        assert store.has(key, "codes")  # checksum memoised here
        path = payload_path(store, key, "codes")
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
        with pytest.warns(CacheCorruptionWarning, match="checksum"):
            assert not store.has(key, "codes")

    def test_garbled_manifest_is_detected(self, store):
        key = store.key(**FIELDS)
        store.save_codes(key, random_codes(5))
        (store.entry_dir(key, "codes") / MANIFEST).write_text("{not json")
        with pytest.warns(CacheCorruptionWarning, match="manifest unreadable"):
            assert not store.has(key, "codes")

    def test_manifest_with_wrong_shape_is_detected(self, store):
        key = store.key(**FIELDS)
        store.save_codes(key, random_codes(6))
        path = store.entry_dir(key, "codes") / MANIFEST
        manifest = json.loads(path.read_text())
        manifest["shape"] = [49, 40]
        path.write_text(json.dumps(manifest))
        with pytest.warns(CacheCorruptionWarning, match="shape"), pytest.raises(CacheMissError):
            store.load_codes(key)

    def test_rebuild_after_corruption(self, store):
        key = store.key(**FIELDS)
        store.save_codes(key, random_codes(7))
        payload_path(store, key, "codes").write_bytes(b"junk")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheCorruptionWarning)
            assert not store.has(key, "codes")
        store.save_codes(key, random_codes(7))
        assert store.has(key, "codes")
        assert (store.load_codes(key) != random_codes(7)).nnz == 0

    def test_overwrite_leaves_one_payload(self, store):
        key = store.key(**FIELDS)
        store.save_codes(key, random_codes(8))
        store.save_codes(key, random_codes(9))
        files = sorted(p.name for p in store.entry_dir(key, "codes").iterdir())
        assert len(files) == 2 and MANIFEST in files
        assert (store.load_codes(key) != random_codes(9)).nnz == 0

    def test_concurrent_overwrites_never_give_inconsistent_data(self, store):
        key = store.key(**FIELDS)
        versions = [random_codes(s) for s in range(4)]
        errors = []

        def writer(codes):
            try:
                for _ in range(5):
                    store.save_codes(key, codes)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(v,)) for v in versions]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheCorruptionWarning)
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert not errors
        fresh = ArtefactStore(store.root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheCorruptionWarning)
            if fresh.has(key, "codes"):  # a lost race reads as missing, never as mixed data
                loaded = fresh.load_codes(key)
                assert any((loaded != v).nnz == 0 for v in versions)

    def test_non_sparse_input_is_rejected(self, store):
        with pytest.raises(TypeError, match="scipy.sparse"):
            store.save_codes(store.key(x=1), np.zeros((2, 2)))

    def test_delete(self, store):
        key = store.key(**FIELDS)
        store.save_codes(key, random_codes(0))
        store.delete(key, "codes")
        assert not store.has(key, "codes")
        assert store.size_bytes(key) == 0


class TestArraysAndJson:
    def test_array_round_trip_and_mmap(self, store):
        arr = np.arange(24, dtype=np.float16).reshape(4, 6)
        key = store.key(kind="acts", hook="h")
        store.save_array(key, arr, {"hook": "h"})
        assert store.has(key, "array") and not store.has(key, "codes")
        np.testing.assert_array_equal(store.load_array(key), arr)
        mm = store.load_array(key, mmap=True)
        assert isinstance(mm, np.memmap) and mm.dtype == np.float16
        np.testing.assert_array_equal(mm, arr)

    def test_object_array_is_rejected(self, store):
        with pytest.raises(TypeError, match="dtype object"):
            store.save_array(store.key(x=1), np.array(["a", None], dtype=object))

    def test_named_arrays_round_trip(self, store):
        arrays = {"index": np.arange(5, dtype=np.int64), "r": np.array([0.5, np.nan, 0.1]),
                  "dead": np.array([True, False])}
        key = store.key(kind="best", a="x")
        store.save_arrays(key, arrays, {"n_tokens": 7})
        assert store.has(key, "arrays") and not store.has(key, "array")
        back = store.load_arrays(key)
        assert set(back) == set(arrays)
        for name, value in arrays.items():
            np.testing.assert_array_equal(back[name], value)
            assert back[name].dtype == value.dtype
        assert store.manifest(key, "arrays")["meta"] == {"n_tokens": 7}

    def test_named_arrays_corruption_is_detected(self, store):
        key = store.key(kind="best", a="y")
        store.save_arrays(key, {"x": np.zeros(3)})
        payload_path(store, key, "arrays").write_bytes(b"garbage")
        assert not store.has(key, "arrays")
        with pytest.raises(CacheMissError):
            store.load_arrays(key)

    def test_json_round_trip(self, store):
        obj = {"fvu": 0.12, "layers": [1, 2], "name": "ß"}
        key = store.key(kind="summary")
        store.save_json(key, obj)
        assert store.load_json(key) == obj

    def test_json_corruption_is_detected(self, store):
        key = store.key(kind="summary")
        store.save_json(key, {"a": 1})
        payload_path(store, key, "json").write_text('{"a": 2}')
        with pytest.warns(CacheCorruptionWarning), pytest.raises(CacheMissError):
            store.load_json(key)

    def test_size_bytes_sums_kinds(self, store):
        key = store.key(x=1)
        store.save_array(key, np.zeros(100))
        one = store.size_bytes(key)
        store.save_json(key, [1])
        assert store.size_bytes(key) > one == store.size_bytes(key, "array")

    def test_unknown_kind_is_rejected(self, store):
        with pytest.raises(ValueError, match="`kind` must be one of"):
            store.has(store.key(x=1), "pickle")
