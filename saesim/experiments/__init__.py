"""Experiments over layer pairs: grids and concept subspaces (``grid``), executors (serial,
processes, Ray) and robustness baselines, bootstraps and sweeps (``robust``)."""
