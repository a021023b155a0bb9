# The two commands: `make run` serves on an embedded SQLite file, `make test` runs every test.
# Each target installs what it needs into .venv and nothing more: serving needs only the
# service's own dependencies; the tests, the benchmarks and the linters add their extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATABASE_URL ?= sqlite:///notes.db
# `make run PORT=8081`, or NOTES_PORT from the environment
PORT ?= $(or $(NOTES_PORT),8080)
ARGS ?=  # more flags of `notes-api serve`, e.g. ARGS='--auth required --host 0.0.0.0'

.PHONY: run test bench bench-quick bench-tools lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per set of extras: `make run` after `make test` installs nothing again.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.$(if $(filter serve,$*),,[$*])'
	touch $@

# Not echoed: the URL may hold a password (the server's first line names it, the password masked).
run: $(VENV)/.installed-serve
	@DATABASE_URL='$(DATABASE_URL)' NOTES_PORT='$(PORT)' $(BIN)/python -m app serve $(ARGS)

# One test process per core and one more (pytest-xdist; tests/conftest.py says why), an idle one
# taking tests from a busy one (worksteal):
# the end-to-end tests are long and mostly wait on the processes they start.
# The suite starts some 300 service processes, most of them forked from one per test process
# that has imported the service (tests/e2e/fork_server.py). Where the environment sets
# PYTHONDONTWRITEBYTECODE (some images do), each new interpreter compiled the service and pytest
# re-rewrote every test module: about a quarter of the suite's CPU. The tests keep their bytecode
# inside .venv instead, so the tree stays as clean as that setting meant.
test: $(VENV)/.installed-test
	PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX='$(abspath $(VENV))/pycache' \
	  $(BIN)/python -m pytest -n auto --dist worksteal

bench: $(VENV)/.installed-bench bench-tools
	$(BIN)/python -m bench --scale-check --rss-check --owners-check

bench-quick: $(VENV)/.installed-bench bench-tools
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

lint: $(VENV)/.installed-lint
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache build *.egg-info
