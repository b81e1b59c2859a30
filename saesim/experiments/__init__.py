"""Experiments over layer pairs: grids and concept subspaces (``grid``), executors (serial,
processes, Ray), bootstrap intervals over documents (``bootstrap``), the seed, random-model and
raw-neuron baselines (``baselines``), sweeps (``sweeps``), the SAE frontier (``sae_frontier``: seed
stability and held-out FVU against training tokens, epochs and width), and the findings summary kept
for the findings notebook (``robust``).

A grid takes two settings objects, both importable from here: :class:`CompareSettings` (what each
cell computes; hashed into the cells' cache keys) and :class:`GridPlan` (which cells, and how they
run; never hashed, so a plan never changes a result)."""

from saesim.experiments.grid import CompareSettings, GridPlan

__all__ = ["CompareSettings", "GridPlan"]
