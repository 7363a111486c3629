# One venv, created on demand: `make train` and `make test` each do the set-up alone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: install train test test-fast lint bench quantization flops gpu-check slurm-up slurm-down clean

install: $(STAMP)

# Re-runs only when the package metadata changes; the torch pair is pinned to
# the builds that this machine's pip serves from local files.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

train: install
	$(BIN)/hih-train $(ARGS)

# Everything (CI runs this through .ci/run).
test: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) $(ARGS)

# ruff (pyproject.toml: pyflakes, pycodestyle, import order, pyupgrade, bugbear; 120 columns) and
# the formatter's check; CI runs it before the tests. `$(BIN)/ruff format .` fixes the layout.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The edit loop: all but the tests marked slow (they train with Lightning or start subprocesses).
test-fast: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow" $(ARGS)

bench: install
	$(BIN)/python scripts/bench_codecs.py

quantization: install
	$(BIN)/hih-quantization $(ARGS)

flops: install
	$(BIN)/hih-flops $(ARGS)

# One CUDA GPU, at most 8 minutes: recipe throughput and whether HIH_C / HIH_L learn, through hih-train's Trainer
# (docs/performance.md); ARGS=--tiny runs it on the CPU in seconds.
gpu-check: install
	$(BIN)/python scripts/gpu_check.py $(ARGS)

# A one-node SLURM cluster on this machine, with accounting (as root, installs slurm-wlm, munge, slurmdbd
# and mariadb-server where missing): the tests marked
# slurm run against it; README "Running on a SLURM cluster".
slurm-up:
	scripts/local_slurm.sh up

slurm-down:
	scripts/local_slurm.sh down

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
