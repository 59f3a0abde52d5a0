# One target per task; CI calls the same ones.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install services demo test lint format typecheck check docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vigil demo --dir demo-project

services:
	bash scripts/services.sh

test: $(STAMP) services
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m vigil.config.reference > docs/configuration.md

bench: $(STAMP) services
	$(BIN)/python bench/analyzers.py
	$(BIN)/python bench/web.py
	$(BIN)/python bench/stores.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/cycle.py --series 1000 10000
	$(BIN)/python bench/workers.py
	$(BIN)/vigil bench scenarios

clean:
	rm -rf $(VENV) demo-project .mypy_cache .ruff_cache .pytest_cache
