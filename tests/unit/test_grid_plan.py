"""Tests for saesim.experiments.grid.GridPlan: which cells of a grid run, and how (never a result)."""

import dataclasses

import numpy as np
import pytest

from saesim.experiments import GridPlan as ExportedGridPlan
from saesim.experiments.executors import EXECUTORS
from saesim.experiments.grid import GridPlan


class FakeProfile:
    """Just what GridPlan.cells reads: the layers of each slot."""

    LAYERS = {"a": (0, 1, 2), "b": (3, 4), "control": (0, 2)}

    def layers(self, slot):
        return self.LAYERS[slot]


class TestGridPlan:
    def test_defaults_run_a_against_b_over_the_profiles_layers_in_processes(self):
        plan = GridPlan()
        assert plan.slots == ("a", "b") and plan.executor == "local" and plan.progress is True
        assert plan.layers_a is plan.layers_b is plan.pairs is plan.n_workers is plan.ray_address is None
        assert plan.cells(FakeProfile()) == ((0, 3), (0, 4), (1, 3), (1, 4), (2, 3), (2, 4))

    def test_is_exported_from_the_package_and_frozen(self):
        assert ExportedGridPlan is GridPlan
        with pytest.raises(dataclasses.FrozenInstanceError):
            GridPlan().executor = "serial"

    def test_fields_are_normalised_to_hashable_tuples_of_int(self):
        plan = GridPlan(slots=["a", "control"], layers_a=[np.int64(2), 0], layers_b=np.array([3]))
        assert plan.slots == ("a", "control") and plan.layers_a == (2, 0) and plan.layers_b == (3,)
        assert all(type(x) is int for x in plan.layers_a + plan.layers_b)
        assert plan.cells(FakeProfile()) == ((2, 3), (0, 3))
        hash(plan)

    def test_pairs_are_int_pairs_in_their_order_and_a_repeat_runs_once(self):
        plan = GridPlan(pairs=[[1, 4], (np.int32(0), 3), (1, 4)])
        assert plan.pairs == ((1, 4), (0, 3))
        assert all(type(x) is int for pair in plan.pairs for x in pair)
        assert plan.cells(FakeProfile()) == ((1, 4), (0, 3))

    def test_layers_of_one_slot_default_to_the_profiles(self):
        plan = GridPlan(slots=("control", "b"), layers_b=(4,))
        assert plan.cells(FakeProfile()) == ((0, 4), (2, 4))

    @pytest.mark.parametrize("executor", EXECUTORS)
    def test_every_executor_is_accepted(self, executor):
        assert GridPlan(executor=executor).executor == executor

    def test_replace_changes_only_the_named_fields_and_keeps_the_original(self):
        plan = GridPlan(executor="serial", progress=False, layers_a=(0,))
        other = plan.replace(executor="local", n_workers=2)
        assert (other.executor, other.n_workers, other.progress, other.layers_a) == ("local", 2, False, (0,))
        assert (plan.executor, plan.n_workers) == ("serial", None)
        assert plan.replace() == plan

    def test_replace_validates_again(self):
        with pytest.raises(ValueError, match="`executor` must be one of"):
            GridPlan().replace(executor="dask")
        with pytest.raises(ValueError, match="either `pairs` or `layers_a`"):
            GridPlan(layers_a=(0,)).replace(pairs=((0, 0),))

    def test_has_no_key(self):
        """Nothing of a plan changes a result, so nothing of it is hashed into a cache key."""
        assert not hasattr(GridPlan, "key")


class TestGridPlanErrors:
    @pytest.mark.parametrize("changes, match", [
        ({"executor": "dask"}, r"`executor` must be one of \('serial', 'local', 'ray'\); got 'dask'\. Use 'serial'"),
        ({"n_workers": 0}, r"`n_workers` must be a positive integer; got 0\. Pass None for all cores\."),
        ({"n_workers": 1.5}, r"`n_workers` must be a positive integer; got 1\.5 \(float\)\. Pass None"),
        ({"n_workers": True}, r"`n_workers` must be a positive integer; got True \(bool\)"),
        ({"pairs": [(0,)]}, r"`pairs` must hold \(layer_a, layer_b\) pairs of non-negative integers, "
                            r"e\.g\. \(\(0, 0\), \(1, 1\)\); got \(0,\)\."),
        ({"pairs": [(0, 1.0)]}, r"`pairs` must hold .*; got \(0, 1\.0\)\."),
        ({"pairs": [(0, -1)]}, r"`pairs` must hold .*; got \(0, -1\)\."),
        ({"pairs": ["01"]}, r"`pairs` must hold .*; got '01'\."),
        ({"pairs": (0, 1)}, r"`pairs` must hold .*; got 0\."),
        ({"pairs": 3}, r"`pairs` must be a sequence of \(layer_a, layer_b\) pairs"),
        ({"pairs": []}, r"`pairs` is empty; give at least one .* or None for the product"),
        ({"pairs": [(0, 0)], "layers_b": (1,)}, r"give either `pairs` or `layers_a` / `layers_b`, not both"),
        ({"layers_a": (0, "1")}, r"`layers_a` must be a non-empty sequence of layer numbers .* or None for the "
                                 r"profile's; got \(0, '1'\)\."),
        ({"layers_b": ()}, r"`layers_b` must be a non-empty sequence"),
        ({"layers_b": 2}, r"`layers_b` must be a non-empty sequence .*; got 2\."),
        ({"slots": "ab"}, r"`slots` must be two slot names, e\.g\. \('a', 'b'\) or \('a', 'control'\); got 'ab'\."),
        ({"slots": ("a", "b", "c")}, r"`slots` must be two slot names"),
        ({"ray_address": "auto"}, r"`ray_address` needs executor='ray'; got executor='local'\. Pass executor='ray'"),
        ({"progress": 1}, r"`progress` must be True or False; got 1\."),
    ])
    def test_message_names_the_field_and_the_fix(self, changes, match):
        with pytest.raises(ValueError, match=match):
            GridPlan(**changes)

    def test_ray_address_with_ray_is_accepted(self):
        assert GridPlan(executor="ray", ray_address="auto", n_workers=2).ray_address == "auto"
