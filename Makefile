# Alephant: `make run` starts everything, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
PYTEST_ARGS ?=
SOAK_MINUTES ?= 10
SOAK_RATE ?= 200
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test services services-down migrate seed lint format bench soak lock venv browser testtools clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock \
		2> >(grep -v '^WARNING: Location' >&2)
	@$(PY) -c "import django, celery, aiohttp" # fail here if the install did not complete
	@touch $@

## Lock file: pins with hashes, so a compromised release cannot slip into a fresh install.
lock:
	$(PYTHON) -m pip install -q uv && uv pip compile -q --generate-hashes --python $(PYTHON) --extra dev pyproject.toml -o requirements.lock

services:
	@$(PYTHON) devtools/services.py up

services-down:
	@$(PYTHON) devtools/services.py down

migrate: venv services
	ALEPHANT_DB_AS_OWNER=1 $(PY) manage.py migrate --no-input -v 0

seed: migrate
	$(PY) manage.py seed_demo

browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/lib/chromium/chromium || \
		(echo "[make] installing Debian chromium for browser tests (once per machine)" && \
		 DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The deploy tests run the shipped nginx example for real (tests/deploy/), the Redis topology
# tests drive redis-cli: install them where missing, as for the browser.
testtools:
	@{ command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx; } && command -v redis-cli >/dev/null 2>&1 || \
		(echo "[make] installing Debian nginx-light and redis-tools for the deploy and Redis tests (once per machine)" && \
		 DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light redis-tools >/dev/null)

run: seed
	PORT=$(PORT) $(PY) -m devtools.run

test: venv services browser testtools
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy core workspaces billing gateway attribution efficiency alephant reconciliation

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Benchmarks: gateway hot path (wrk, nginx mock) vs direct and a bare pass-through; enforcement on/off;
## dashboard pages over 1,000,000 ledger rows; ledger ingest with 1 and 2 writers. Ratios against
## baselines measured in the same run.
bench: migrate
	@command -v wrk >/dev/null 2>&1 && { command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx; } && \
		test -f /usr/lib/nginx/modules/ngx_http_echo_module.so || \
		(echo "[make] installing Debian wrk, nginx-light and its echo module (the paced stream) for the benchmark (once per machine)" && \
		 DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light libnginx-mod-http-echo >/dev/null)
	@# PEERS=1 also installs (under .bench/, once) and measures LiteLLM's proxy and Portkey's gateway.
	PEERS=$(PEERS) $(PY) -m bench
	$(PY) -m bench.enforcement
	$(PY) -m bench.dashboard
	$(PY) -m bench.telemetry
	$(PY) -m bench.ingest

## Soak: 4 gateways + 2 ledger writers + Celery worker and beat behind deploy/nginx, a steady
## SOAK_RATE (200) calls/s for SOAK_MINUTES (10): RSS growth, p99 per minute, lost/duplicated rows.
soak: migrate
	@# bench/mockstack.py installs Debian nginx-light and its echo module when missing.
	SOAK_MINUTES=$(SOAK_MINUTES) SOAK_RATE=$(SOAK_RATE) $(PY) -m bench.soak

clean: services-down
	rm -rf .run staticfiles
