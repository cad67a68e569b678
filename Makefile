# The README names these targets; each one does all of its own set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
# The editable install is a link tree (setuptools "strict" mode: build/__editable__.*), the
# layout mypy, pyright and IDEs can follow. It links files one by one, so adding, moving or
# removing a package file needs a re-install: the stamp depends on the list of package
# files (rewritten only when it changes), not only on pyproject.toml.
PACKAGE_DIRS  := src/memlayer api cache memory supervisor migrations
PACKAGE_FILES := $(VENV)/.package-files

.PHONY: install run test test-fast lint types format bench services test-deps FORCE

$(PACKAGE_FILES): FORCE
	@mkdir -p $(VENV)
	@find $(PACKAGE_DIRS) -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(STAMP): pyproject.toml Makefile $(PACKAGE_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[embedded,dev]" --config-settings editable_mode=strict
	touch $(STAMP)

install: $(STAMP)

test-deps:
	./scripts/test-deps.sh
	./scripts/e2e-deps.sh

services:
	./scripts/services.sh

## run: install (with the embedded extra), migrate the configured database, serve on :8000
## (one worker; `make run WORKERS=4` for more, with Postgres and Redis configured)
WORKERS ?= 1
run: install
	$(BIN)/memlayer migrate
	$(BIN)/memlayer serve --host $${MEMLAYER_HOST:-127.0.0.1} --port $${MEMLAYER_PORT:-8000} --workers $(WORKERS)

## test: install, lint and type-check, start Postgres and Redis if they are down, run every test
test: lint services test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-fast: unit and contract tests on fakeredis only (no services, no browsers), seconds
test-fast: install
	$(BIN)/python -m pytest -m "(unit or contract) and not external and not slow" $(PYTEST_ARGS)

## lint: ruff (rules and formatting) and mypy, as `make test` runs them first
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

types: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install services
	$(BIN)/memlayer bench $(BENCH_ARGS)
