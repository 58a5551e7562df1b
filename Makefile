# fault-diag: every target installs what it needs into .venv on a fresh machine.
# GPU users: make install TORCH_SPEC='torch>=2.4,<3'   (default pins the local CPU build)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,export,mat73,sweeps
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-slow data lint format typecheck clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" "$(TORCH_SPEC)"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (torch CPU build unless TORCH_SPEC is set)

test: $(STAMP) ## run the test suite (integration tests use FAULT_DIAG_DATA_DIR)
	$(PY) -m pytest -q

test-slow: $(STAMP) ## run only the slow tests
	$(PY) -m pytest -q -m slow

data: $(STAMP) ## download / verify the CWRU files (or use FAULT_DIAG_DATA_DIR)
	$(VENV)/bin/fd-data download --setup cwru10
	$(VENV)/bin/fd-data verify

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check fault_diag tests scripts
	$(VENV)/bin/ruff format --check fault_diag tests scripts

format: $(STAMP) ## apply ruff formatting and fixes
	$(VENV)/bin/ruff check --fix fault_diag tests scripts
	$(VENV)/bin/ruff format fault_diag tests scripts

typecheck: $(STAMP) ## mypy on the package
	$(VENV)/bin/mypy fault_diag

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
