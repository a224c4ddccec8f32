# Two entry points a fresh Debian machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test test-fast lint venv install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

venv install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/loopai serve --port $(PORT)

# Installs system packages the tests need (redis-server, Node, Chromium) when root, then runs
# the Python suite and the JavaScript client's suite (which drives real server processes).
test: $(VENV)/.installed
	bash scripts/test-deps.sh
	$(PY) -m pytest $(PYTEST_ARGS)
	cd clients/js && npm ci --no-audit --no-fund && npm test

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
