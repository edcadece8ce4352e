# The README's commands. `make demo` and `make test` work on a fresh machine: they set up everything.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup demo test lint typecheck services browser faults bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup ## sandbox providers + SQLite + in-process broker, end to end
	$(VENV)/bin/sxsync demo $(DEMO_ARGS)

services: ## Redis and PostgreSQL on loopback (started if down; fails if they cannot be reached)
	bash scripts/ensure-services.sh

lint: setup
	$(PY) -m ruff check .

typecheck: setup
	$(PY) -m mypy

browser: setup ## Debian's chromium + Playwright's Python package, for the dashboard's browser tests
	bash scripts/ensure-browser.sh

test: setup services browser lint typecheck ## the whole suite, on real Redis, PostgreSQL and SQLite (two halves at once)
	PY=$(PY) bash scripts/run-tests.sh $(PYTEST_ARGS)

faults: setup services ## fault injection (issue 7): failpoints, poison pages; one report line per scenario (FAULTS_LONG=1: long mode)
	SXSYNC_FAULTS_LONG=$(FAULTS_LONG) $(PY) -m pytest -q -p no:cacheprovider tests/faults $(PYTEST_ARGS)

bench: setup services ## the benchmark suite (issue 8): one table of measure, figure, target, pass/miss (BENCH_ARGS="--size full")
	$(PY) -m bench.suite $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-peers .sxsync .pytest_cache .mypy_cache .ruff_cache
