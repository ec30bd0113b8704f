# Conveyor developer commands; `make help` lists them.
# REDIS_URL and DATABASE_URL (see contracts/runtime/settings.py) choose the services.

# uv on PATH, else the copy `make install` puts into python3 (python3 -m uv).
UV ?= $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
# Never re-lock implicitly: uv.lock is what gets installed.
export UV_FROZEN := 1
# Only for the URLs `make run` prints; the services read the same variables.
GATEWAY_PORT ?= 8000
INGEST_PORT ?= 8001
MOVER_PORT ?= 8002
AGGREGATOR_PORT ?= 8003
# honcho sends SIGKILL 5 s after the first process stops; finish in-flight work before.
RUN_SHUTDOWN_GRACE_S ?= 4
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install services wait migrate seed run lint fmt test bench

help: ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## install uv if missing, then the locked dependencies into .venv
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet uv
	$(UV) sync --frozen

services: ## start local Redis/PostgreSQL if they are down (deploy/scripts/ensure-services.sh)
	@bash deploy/scripts/ensure-services.sh

wait: install services ## wait until Redis and PostgreSQL answer
	$(UV) run conveyor wait

migrate: wait ## apply the database migrations
	$(UV) run conveyor migrate

seed: migrate ## load the demo data
	$(UV) run conveyor seed

run: seed ## migrate, seed and run the four services (Ctrl-C stops them all)
	@echo "Conveyor is starting; Ctrl-C stops every process."
	@echo "  API         http://localhost:$(GATEWAY_PORT)"
	@echo "  OpenAPI     http://localhost:$(GATEWAY_PORT)/schema"
	@echo "  metrics     http://localhost:$(GATEWAY_PORT)/metrics (gateway)"
	@echo "              http://localhost:$(INGEST_PORT)/metrics (ingest)"
	@echo "              http://localhost:$(MOVER_PORT)/metrics (mover)"
	@echo "              http://localhost:$(AGGREGATOR_PORT)/metrics (aggregator)"
	@$(UV) run conveyor devkey
	CONVEYOR_SHUTDOWN_GRACE_S=$(RUN_SHUTDOWN_GRACE_S) $(UV) run honcho start -f Procfile

lint: install ## ruff check, ruff format --check, mypy, the import contracts (lint-imports)
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports

fmt: install ## format the code and apply ruff's safe fixes
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

test: install services lint ## lint, then the whole test suite against local Redis/PostgreSQL
	$(UV) run pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# tests/perf is written with the Python code; until it exists this target says so and fails.
bench: install services ## benchmarks against references (never part of `make test`)
	@test -e tests/perf/__main__.py || test -e tests/perf.py \
		|| { echo "bench: tests/perf does not exist yet" >&2; exit 1; }
	$(UV) run python -m tests.perf
