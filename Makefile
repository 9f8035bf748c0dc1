# Two entry points for a fresh machine (see README): `make run` (the tray app; ARGS="..." for a command) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run setup setup-app system-deps system-deps-run check-tools peer lint test dist

run: system-deps-run setup-app
	$(BIN)/opencode-backup $(ARGS)

# The app alone (make run) and the app with the test and lint tools (make test): one venv, two stamps.
setup-app: $(VENV)/.installed-app
setup: $(VENV)/.installed-dev

$(VENV)/.installed-app: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[tray]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-app
	$(BIN)/pip install -q -e '.[dev,tray]'
	touch $@

system-deps:
	bash .ci/system-deps test

system-deps-run:
	bash .ci/system-deps run

check-tools:
	bash .ci/check-tools test

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

# one worker per core, each test file on one worker (a file's opencode, desktop or rclone servers start once):
# 9 minutes on 2 cores where one process took 18
test: system-deps check-tools setup peer lint
	$(BIN)/python -m pytest -n auto --dist loadfile

# The installed build for this OS into dist/, named with the version and platform (see build/dist.py).
dist: setup
	$(BIN)/python build/dist.py
