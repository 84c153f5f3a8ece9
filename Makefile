# Two commands set everything up on a fresh machine with Python 3.11+ and pip:
#   make run    installs, creates the demo territory in ./var (SQLite) and serves it
#   make test   installs the development tools and runs lint, types and all tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install install-dev bench bench-identity clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/partage demo --host $(HOST) --port $(PORT)

lint: install-dev
	scripts/lint

test: install-dev
	scripts/lint
	scripts/test

bench: install-dev
	$(BIN)/python bench/run.py
	$(BIN)/python bench/directory_import.py
	$(BIN)/python bench/directory_search.py

# The identity benchmarks take longer than `bench` (about 20 minutes on 2 cores): a million
# identities federated, then 1,000 incremental ones against them, then the ADT feed.
IDENTITY_BENCH_DIR ?= var/bench-identity
bench-identity: install-dev
	rm -rf $(IDENTITY_BENCH_DIR)
	$(BIN)/python bench/identity_bulk.py --data-dir $(IDENTITY_BENCH_DIR)
	$(BIN)/python bench/identity_incremental.py --from $(IDENTITY_BENCH_DIR) --discard
	$(BIN)/python bench/identity_mllp.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
