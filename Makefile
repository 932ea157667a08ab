# Two commands on a fresh machine: `make demo` (the example project) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck docs bench check tox clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python example_project/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest tests/invalidation --ds=tests.settings_postgres

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
	rm -rf $(VENV) .tox site .pytest_cache .mypy_cache .ruff_cache
