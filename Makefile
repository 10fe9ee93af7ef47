# One task runner for the habits. Everything runs from the project's own virtualenv,
# created on first use, so `make rehearse` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install sandbox-tools image rehearse test lint format typecheck docs pytest clean

# The extra `bench`: crewai-tools, the stock side of benchmarks/pipeline_overhead.py (and its test).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

## The sandbox needs bubblewrap; as root with apt, install it, else say how.
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap (the sandbox) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else \
	    echo "Dark Factory runs generated code in a bubblewrap sandbox: install it first (sudo apt-get install bubblewrap)"; \
	    exit 2; \
	  fi; }

## The docker sandbox's image, built offline: debootstrap from this machine's apt mirror,
## then docker import (needs root, debootstrap and a running engine; about a minute).
image: $(STAMP)
	$(BIN)/darkfactory sandbox build-image

## The main job without a model: the example spec, end to end, a scripted model playing the roles.
rehearse: $(STAMP) sandbox-tools
	$(BIN)/darkfactory rehearse

## Everything CI checks: lint, format, types, then the test suite (which builds the docs too).
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) sandbox-tools
	$(BIN)/pytest

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site runs .pytest_cache .mypy_cache .ruff_cache
