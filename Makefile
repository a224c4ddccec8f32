# Two entry points a fresh Debian machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Empty: the port comes from LOOPAI_PORT, else 8000. `make run PORT=9000` wins over both.
PORT ?=
PYTEST_ARGS ?=

.PHONY: run test test-fast lint venv install clean

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q -e ./clients/python
	touch $@

venv install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/loopai serve $(if $(PORT),--port $(PORT))

# Installs system packages the tests need (redis-server, Node, Chromium) when root, then runs
# the Python suite, the Python client's suite and the JavaScript client's suite (both drive
# real server processes).
test: $(VENV)/.installed
	bash scripts/test-deps.sh
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PY) -m pytest clients/python/tests $(PYTEST_ARGS)
	cd clients/js && npm ci --no-audit --no-fund && npm test

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)
	$(PY) -m pytest -m "not slow" clients/python/tests $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests clients/python loadtests
	$(VENV)/bin/mypy src
	$(VENV)/bin/mypy --strict clients/python/src

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
