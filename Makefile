# The two commands: `make run` starts the whole system, `make test` passes the whole suite.
# Both install what is missing first (infra/install.sh), so they work on a fresh machine.
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: install run test down lint

install:
	@bash infra/install.sh

run: install
	$(VENV)/ledger up
	$(VENV)/ledger status
	$(VENV)/ledger demo --rate 200 --seconds 60
	@echo "dashboard: http://127.0.0.1:$${LEDGER_DASHBOARD_PORT:-8088}/  (stop everything with: make down)"
	@echo "schema registry: $${LEDGER_SCHEMA_REGISTRY_URL:-http://127.0.0.1:$${LEDGER_REGISTRY_PORT:-18081}/apis/ccompat/v7}"

test: install
	$(VENV)/ledger up
	$(VENV)/pytest -q -p no:cacheprovider --durations=15

down:
	@if [ -x $(VENV)/ledger ]; then $(VENV)/ledger down; fi

lint: install
	$(VENV)/ruff check ledger streams tests
	$(VENV)/mypy
