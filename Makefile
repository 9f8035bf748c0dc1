# Two entry points for a fresh machine (see README): `make run ARGS="..."` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
ARGS ?= --help

.PHONY: run setup system-deps peer lint test

run: setup
	$(BIN)/opencode-backup $(ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

system-deps:
	bash .ci/system-deps

peer: tests/opencode/node_modules/.package-lock.json

tests/opencode/node_modules/.package-lock.json: tests/opencode/package.json tests/opencode/package-lock.json
	cd tests/opencode && npm ci --no-audit --no-fund --loglevel=error

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --platform win32
	$(BIN)/mypy --platform darwin

test: system-deps setup peer lint
	$(BIN)/python -m pytest
