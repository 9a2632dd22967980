# apps-hpc — developer entry points. Each target prints the commands it runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# The CPU torch wheel (a local file on the project's machines); set TORCH_SPEC= to skip.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python  ## the package (editable) with its dev tools and the training extra
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install -q '$(TORCH_SPEC)')
	$(BIN)/python -m pip install -q -e '.[dev,train]'

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
