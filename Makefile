# Chat Reconnect — developer commands. `make dev` runs the product; `make test` passes the tests.
# Both install what they need (Python virtualenv, npm packages, Debian's chromium) themselves.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_QUIET := --quiet --disable-pip-version-check

export FUNCTIONS_PORT ?= 7071
export AZURITE_TABLE_PORT ?= 10002
export AZURITE_QUEUE_PORT ?= 10001

.PHONY: dev test deps lint typecheck unit clean chromium bench-load bench-sweep bench-coldstart bench-events

dev: deps ## Start Azurite (tables, queues) and the local Functions host with the demo; Ctrl-C stops them.
	$(BIN)/python -m local.dev

test: deps chromium lint typecheck .venv-checkov/.installed ## Lint, type-check and run every test (unit, integration, e2e, browser).
	$(BIN)/python -m pytest

deps: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import azure.functions, azure.data.tables, uvicorn, pytest"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov (and the pycep-parser it depends on) for tests/infra, in a virtualenv of its own:
# its pins do not resolve together with the app's.
.venv-checkov/.installed:
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install $(PIP_QUIET) checkov==3.3.30 2>&1 | grep -v "^WARNING: Location" || true
	.venv-checkov/bin/python -c "import checkov, pycep"
	touch $@

# Debian's chromium drives the widget's browser tests (Playwright may not download its own).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

# lint, typecheck and unit need only the Python virtualenv, not npm (Azurite) or chromium.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy --strict shared local

unit: $(VENV)/.installed ## Only the fast, storage-free tests.
	$(BIN)/python -m pytest tests/unit

# Bounded load on loopback (own Azurite and local host); writes benchmarks/results/load.json.
# Pass options with ARGS, e.g. `make bench-load ARGS=--quick`.
bench-load: deps
	$(BIN)/python -m benchmarks.load $(ARGS)

# The timer's cost against what is stored and against raw Azurite (own Azurite); writes
# benchmarks/results/sweep.json. Not part of `make test`. `make bench-sweep ARGS=--quick`.
bench-sweep: deps
	$(BIN)/python -m benchmarks.sweep $(ARGS)

# Cold start: `import function_app` against the bare SDK imports in fresh processes, and the
# first request of each kind (own Azurite); writes benchmarks/results/coldstart.json.
# `make bench-coldstart ARGS="--bytecode none"` compiles the app from source on every start.
bench-coldstart: deps
	$(BIN)/python -m benchmarks.coldstart $(ARGS)

# Integration-event latency under the load mix, stored -> visible on the public queue (own
# Azurite tables and queues, local host, relay); writes benchmarks/results/events.json.
# `make bench-events ARGS=--quick`.
bench-events: deps
	$(BIN)/python -m benchmarks.events $(ARGS)

clean:
	rm -rf $(VENV) .venv-checkov node_modules .mypy_cache .ruff_cache .pytest_cache .dev
