"""Experiments over layer pairs: grids and concept subspaces (``grid``), executors (serial,
processes, Ray), bootstrap intervals over documents (``bootstrap``), the seed, random-model and
raw-neuron baselines (``baselines``), sweeps (``sweeps``), and the findings summary kept for the
findings notebook (``robust``)."""
