# Stellara Tenancy — developer commands. `make up` and `make test` are all a fresh clone needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export STELLARA_HOME ?= $(CURDIR)/.stellara
# use the machine's Python; never download one
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= $(or $(PYTHON),python3)
UV_VERSION := 0.13.8
TOOLS := $(STELLARA_HOME)/tools
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
RUN := $(UV) run --frozen
# the TCP fault proxy of `make test-faults`, built from the Go module proxy
TOXIPROXY_VERSION := v2.5.0
TOXIPROXY := $(TOOLS)/toxiproxy-$(TOXIPROXY_VERSION)/server

.PHONY: help prereqs uv sync up down status test test-unit test-faults fuzz lint fmt contracts bench bench-outbox bench-usage bench-gateway bench-queries docs demo clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

prereqs:
	@scripts/check-prereqs

$(TOOLS)/bin/uv:
	@echo "installing uv $(UV_VERSION) into $(TOOLS)"
	@$(UV_PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

uv: $(if $(filter $(TOOLS)/bin/uv,$(UV)),$(TOOLS)/bin/uv)

sync: prereqs uv ## install every package of the workspace into .venv
	@$(UV) sync --all-packages --locked --quiet

up: sync ## install, start PostgreSQL, Kafka and the services, print where to look
	@$(RUN) stellara up

down: uv ## stop everything `make up` started
	@$(RUN) stellara down

status: uv ## show what runs and whether it is healthy
	@$(RUN) stellara status

demo: uv ## walk the main story against the running system (after make up)
	@$(RUN) stellara demo

test: sync ## the whole test suite (starts the infrastructure it needs)
	@$(RUN) pytest; code=$$?; \
	  if [ $$code -eq 5 ]; then echo "no tests were collected: that is a failure" >&2; exit 1; fi; \
	  exit $$code

# the unit layer: pure cores only. Without the stellara plugin no test can ask for
# Kafka or PostgreSQL (its fixtures do not exist); schemathesis and hypothesis are not needed
UNIT_TESTS := $(wildcard services/*/tests/unit)

test-unit: sync ## the fast unit layer alone: no Kafka, no PostgreSQL, seconds
	@$(RUN) pytest -q -p no:stellara -p no:schemathesis -p no:hypothesispytest $(UNIT_TESTS)

$(TOXIPROXY):
	@command -v go >/dev/null || { echo "Go is needed to build Toxiproxy (https://go.dev/dl/)" >&2; exit 1; }
	@echo "installing Toxiproxy $(TOXIPROXY_VERSION) into $(dir $(TOXIPROXY)) (go install)"
	@GOBIN=$(dir $(TOXIPROXY)) go install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)

test-faults: sync $(TOXIPROXY) ## seeded fault schedules under load, every invariant checked (FAULTS_SEED, FAULTS_SCHEDULES)
	@TOXIPROXY_SERVER=$(TOXIPROXY) FAULTS_HOME=$(STELLARA_HOME)/faults \
	  FAULTS_REPORT=$${FAULTS_REPORT:-$(STELLARA_HOME)/faults-report.json} \
	  $(RUN) pytest tests/faults/faults_suite.py -s $(FAULTS_ARGS)

fuzz: sync ## schemathesis against the whole system's gateway, every check (FUZZ_SEED, FUZZ_MAX_EXAMPLES)
	@$(RUN) pytest tests/fuzz/fuzz_gateway.py -s

lint: sync ## ruff check, ruff format --check, mypy, import layers
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy contracts/src libs/kit/src libs/devstack/src cli/src $(wildcard services/*/src) scripts/check_imports.py
	$(RUN) python -m scripts.check_imports

fmt: sync ## format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

docs: sync ## regenerate the README's configuration and API tables from the code
	$(RUN) python -c "from pathlib import Path; from stellara_cli.docs import update_all; update_all(Path('README.md'))"

contracts: sync ## regenerate the JSON Schemas and the AsyncAPI document
	$(RUN) python -m stellara_contracts.generate

bench: bench-outbox bench-usage bench-gateway ## every benchmark

bench-outbox: sync ## outbox relay throughput next to a bare aiokafka producer
	$(RUN) python bench/outbox_relay.py

bench-usage: sync ## usage ingestion rate and freshness next to a bare aiokafka consumer
	$(RUN) python bench/usage_ingest.py

bench-gateway: sync ## gateway read latency/throughput next to a bare FastAPI endpoint
	$(RUN) python bench/gateway_reads.py

bench-queries: sync ## usage query p50/p99 over 10M events next to an indexed look-up (BENCH_QUERY_EVENTS)
	$(RUN) python bench/usage_queries.py

clean: down ## stop the stack and delete its data
	$(RUN) stellara down --purge
