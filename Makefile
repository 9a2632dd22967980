# apps-hpc — developer entry points. Each target prints the commands it runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python  ## the package (editable) with its dev tools
	$(BIN)/python -m pip install -q -e '.[dev]'

test: install  ## the whole test suite; exit 5 (no tests ran) is a failure
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check apps_hpc tests benchmarks
	$(BIN)/ruff format --check apps_hpc tests benchmarks

format: install
	$(BIN)/ruff format apps_hpc tests benchmarks
	$(BIN)/ruff check --fix apps_hpc tests benchmarks

bench: install  ## evaluator vs. a python3-per-test baseline on ../shared/apps
	$(BIN)/python benchmarks/eval_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
