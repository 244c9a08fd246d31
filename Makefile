# The two quick-start commands are `make run` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install contracts-install contracts-check forge anvil run demo test lint typecheck pytest bench bench-certificates clean

# One line on stderr per step, so a first `make run` (a few minutes of installing) is never
# silent; pip then lists every package it collects, and shows download bars on a terminal.
STEP = @echo "==> make:" >&2

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	$(STEP) "creating the virtualenv $(VENV) (again whenever pyproject.toml changes)"
	$(PYTHON) -m venv $(VENV)
	$(STEP) "upgrading pip in $(VENV)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(STEP) "installing carbonledger and its dependencies into $(VENV): a few minutes the first time; pip lists each package, then is quiet while it unpacks them"
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	touch $@
	$(STEP) "installed: the commands are in $(BIN)/ (carbonledger, python)"

install: $(VENV)/.installed

# The Solidity toolchain (solc-js, forge, anvil) from the npm registry, pinned by the lock file;
# `npm ci` replaces node_modules/, so the stamp inside it goes too and is only remade on success.
contracts/node_modules/.installed: contracts/package-lock.json contracts/package.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

contracts-install: contracts/node_modules/.installed

## contracts-check: recompile with the pinned solc and fail if the committed artifact is stale.
contracts-check: contracts-install
	cd contracts && node build.mjs --check

## forge: the Solidity tests (unit, vectors, fuzz); forge's exit code fails the build.
forge: contracts-install
	cd contracts && npm test

## anvil: a local EVM node for the README's JSON-RPC journey (anvil from the pinned npm
## package; chain id 31337, ten funded dev accounts whose keys are public: never a real chain).
ANVIL_PORT ?= 8545
anvil: contracts-install
	$(STEP) "starting anvil on http://127.0.0.1:$(ANVIL_PORT) (Ctrl-C stops it; its state is in memory)"
	contracts/node_modules/.bin/anvil --host 127.0.0.1 --port $(ANVIL_PORT)

## run: install, initialise the embedded registry (SQLite under ./var) and serve the API;
## `serve` prints "carbonledger is ready at http://…" once the socket accepts connections.
run: install
	$(STEP) "initialising the registry in ./var (kept as it is when it exists)"
	$(BIN)/carbonledger init
	$(STEP) "starting the API on http://$(HOST):$(PORT) (it says when it is ready)"
	$(BIN)/carbonledger serve --host $(HOST) --port $(PORT)

## demo: the certificate journeys' demo registry in var/demo (see README).
demo: install
	$(BIN)/python scripts/demo_certificates.py

## test: install, then lint, type-check, check the contract artifact, run forge and pytest.
test: install contracts-install lint typecheck contracts-check forge pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -n auto

bench: install
	$(BIN)/python scripts/bench/log.py

## bench-certificates: a device-year of issuance, a consumer-year report, a bundle check.
bench-certificates: install
	$(BIN)/python scripts/bench/certificates.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
