# Two commands matter: `make run` (the interactive chat) and `make test` (the whole suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Uses the built-in simulator when ANTHROPIC_API_KEY is not set, so it works on a fresh machine.
run: install
	@if [ -n "$$ANTHROPIC_API_KEY" ]; then $(BIN)/claude-history chat $(ARGS); \
	else $(BIN)/claude-history chat --simulator $(ARGS); fi

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

bench: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/cost.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info
