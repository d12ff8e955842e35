# clipasync: two commands on a fresh machine.
#   make demo   set up .venv and run the straggler experiment on the simulator
#   make test   set up .venv and run the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
DEMO_CONFIG ?= experiments/stragglers.yaml
DEMO_ARGS ?=

.PHONY: setup demo test lint bench clean system-deps

# Idempotent: the venv is rebuilt only when pyproject.toml or this Makefile change.
setup: $(STAMP) system-deps

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch==2.13.0 resolves to the CPU wheel on disk; a looser pin would pull CUDA.
	$(BIN)/python -m pip install --quiet -e '.[ray,dev]'
	@touch $(STAMP)

# Data packages from Debian (Fashion-MNIST for the paper-reproduction experiments).
system-deps:
	@bash scripts/system_deps.sh

demo: setup
	$(BIN)/clipasync run $(DEMO_CONFIG) $(DEMO_ARGS)

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/mypy --strict benchmarks

bench: setup
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info
