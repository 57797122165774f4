# Two entry points for a fresh machine: `make sweep` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(abspath ../shared/data)
export GANOMALY_DATA_DIR ?= $(DATA)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv sweep results test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

## The main job: every abnormal MNIST digit, seeds 0 1 2, GANomaly (PRESET=quick by default).
PRESET ?= quick
DATASET ?= mnist
sweep: venv
	$(BIN)/python -m benchmarks.run --dataset $(DATASET) --all-classes --preset $(PRESET)

## Every sweep behind the committed tables, in order, resumably (python -m benchmarks.queue --list).
## TIME_LIMIT=2h50m: start only runs that can finish within it (a machine that stops at a set time).
TIME_LIMIT ?=
results: venv
	$(BIN)/python -m benchmarks.queue $(if $(TIME_LIMIT),--time-limit $(TIME_LIMIT))

## The tests, on the real data in ../shared/data.
test: venv
	GANOMALY_OFFLINE=1 $(BIN)/python -m pytest -n 2 --dist loadscope -q --durations=15

lint: venv
	$(BIN)/ruff check ganomaly_tf benchmarks tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
