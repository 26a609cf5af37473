PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all install test lint typecheck contracts unit demo bench fuzz clean interop-venv

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check ampere tests bench

typecheck: $(STAMP)
	$(BIN)/mypy ampere

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) interop-venv
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -n 2 --dist loadscope -q tests

test: lint typecheck contracts unit

demo: $(STAMP)
	$(BIN)/ampere demo

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# pyln-proto (an independent BOLT 8 implementation) for tests/interop, in its own virtualenv.
interop-venv:
	bash tests/interop/setup_interop_venv.sh

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -m fuzz tests

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
