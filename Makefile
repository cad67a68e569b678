# The README names these targets; each one does all of its own set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp

.PHONY: install run test lint format bench services test-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test-deps:
	./scripts/test-deps.sh
	./scripts/e2e-deps.sh

services:
	./scripts/services.sh

## run: install, migrate the configured database (embedded SQLite by default), serve on :8000
run: install
	$(BIN)/memlayer migrate
	$(BIN)/memlayer serve --host $${MEMLAYER_HOST:-127.0.0.1} --port $${MEMLAYER_PORT:-8000}

## test: install, start Postgres and Redis if they are down, run the whole suite
test: install services test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install services
	$(BIN)/memlayer bench $(BENCH_ARGS)
