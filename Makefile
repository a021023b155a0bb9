# The two commands: `make run` serves on an embedded SQLite file, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATABASE_URL ?= sqlite:///notes.db

.PHONY: run test bench bench-quick lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	DATABASE_URL='$(DATABASE_URL)' $(BIN)/python -m app serve

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff mypy
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
