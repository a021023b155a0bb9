# The two commands: `make run` serves on an embedded SQLite file, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATABASE_URL ?= sqlite:///notes.db

.PHONY: run test bench bench-quick bench-tools lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	DATABASE_URL='$(DATABASE_URL)' $(BIN)/python -m app serve

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP) bench-tools
	$(BIN)/python -m bench --scale-check --rss-check

bench-quick: $(STAMP) bench-tools
	$(BIN)/python -m bench --quick

# wrk is the preferred load generator; without it the harness uses its built-in Python one.
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y wrk || { apt-get update && apt-get install -y wrk; } || \
	      echo "could not install wrk; the built-in load generator will be used"; \
	  else \
	    echo "wrk is not installed: 'sudo apt-get install wrk' (Debian/Ubuntu) or 'brew install wrk';"; \
	    echo "meanwhile the built-in Python load generator is used"; \
	  fi; }

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff mypy
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
