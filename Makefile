# Two commands matter: `make run` (the interactive chat) and `make test` (the whole suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LOWEST := .venv-lowest
LATEST := .venv-latest
FAST := -m "not slow and not services"
# The suite runs in TEST_WORKERS pytest-xdist processes (0: in pytest's own process). --dist loadgroup is meant to
# keep the modules marked xdist_group (the browser's, the Node SDK's) on one worker each, but pytest-xdist 3.8
# under pytest 9.2 does not: what they share (the Node SDK's npm install) is made safe for two workers instead.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadgroup

.PHONY: install run test test-lowest test-latest lint bench clean screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The web page (docs/web.md): npm installs marked, DOMPurify, highlight.js, Chart.js and esbuild into web/node_modules
# and build.mjs bundles them into src/claude_history/server/static/ (git-ignored), which the service serves at /.
WEB_STAMP := src/claude_history/server/static/.built
WEB_SOURCES := web/package.json web/package-lock.json web/build.mjs $(wildcard web/src/*)

$(WEB_STAMP): $(WEB_SOURCES)
	@if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then \
		cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs; \
	else \
		echo "npm was not found: the web page of claude-history serve is not built (the API works without it)."; \
		echo "Install Node.js and npm, then run make install again (docs/web.md)."; \
	fi

install: $(STAMP) $(WEB_STAMP)

# Uses the built-in simulator when ANTHROPIC_API_KEY is not set, so it works on a fresh machine.
run: install
	@if [ -n "$$ANTHROPIC_API_KEY" ]; then $(BIN)/claude-history chat $(ARGS); \
	else $(BIN)/claude-history chat --simulator $(ARGS); fi

# tests/node installs the official Node SDK with npm on first use (needs node and npm).
test: install
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# The fast part of the suite with the lowest declared versions of the core dependencies (constraints/lowest.txt).
$(LOWEST)/.installed: pyproject.toml constraints/lowest.txt
	test -x $(LOWEST)/bin/python || $(PY) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST)/bin/python -m pip install --quiet -e ".[dev]" -c constraints/lowest.txt
	touch $@

test-lowest: $(LOWEST)/.installed
	$(LOWEST)/bin/python -m pytest $(FAST) $(XDIST) $(PYTEST_ARGS)

# The whole suite with the newest release of every dependency, reinstalled each time: run it when a new
# anthropic SDK comes out (docs/versions.md).
test-latest:
	test -x $(LATEST)/bin/python || $(PY) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[dev]"
	$(LATEST)/bin/python -m pip list 2>/dev/null | grep -iE '^(anthropic|httpx2?|pydantic) '
	$(LATEST)/bin/python -m pytest $(XDIST) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

bench: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/store_ops.py
	$(BIN)/python bench/cost.py
	$(BIN)/python bench/abuse.py
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/cli_history_reads.py
	$(BIN)/python bench/encrypted_load.py
	$(BIN)/python bench/sqlite_open.py
	$(BIN)/python bench/sqlite_writers.py
	$(BIN)/python bench/sqlite_reads.py
	$(BIN)/python bench/redis_parser.py
	$(BIN)/python bench/webapp.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/contention.py

# The screenshots in docs/web.md, made with the browser tests' setup (needs chromium, like the tests).
screenshots: install
	$(BIN)/python tests/web/screenshots.py

clean:
	rm -rf $(VENV) $(LOWEST) $(LATEST) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info \
		tests/node/node_modules web/node_modules src/claude_history/server/static
