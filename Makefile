# Two entry points for a fresh machine (see README): `make run` (the tray app; ARGS="..." for a command) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run setup system-deps system-deps-run peer lint test

run: system-deps-run setup
	$(BIN)/opencode-backup $(ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,tray]'
	touch $@

system-deps:
	bash .ci/system-deps test

system-deps-run:
	bash .ci/system-deps run

peer: tests/opencode/node_modules/.installed

# opencode-ai is pinned exactly and pins its per-platform binaries itself; no lock file, because
# npm writes only this platform's optional binaries into one and `npm ci` then refuses it elsewhere.
tests/opencode/node_modules/.installed: tests/opencode/package.json
	cd tests/opencode && npm install --no-audit --no-fund --no-package-lock --loglevel=error
	touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --platform win32
	$(BIN)/mypy --platform darwin

test: system-deps setup peer lint
	$(BIN)/python -m pytest
