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
CONSOLE := gateway/console

.DEFAULT_GOAL := help
.PHONY: help install browser prometheus services wait migrate seed run lint fmt test bench

help: ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## install uv if missing, then the locked dependencies (.venv, the console's npm packages)
	@# (a Python that its distribution manages, PEP 668, takes uv into the user's site)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet uv 2>/dev/null \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	$(UV) sync --frozen
	@# The console's front-end packages (htmx, uPlot, Swagger UI) from the npm registry,
	@# exactly as package-lock.json pins them; no install scripts run.
	@cmp -s $(CONSOLE)/package-lock.json $(CONSOLE)/node_modules/.installed-lock.json \
		|| { npm ci --prefix $(CONSOLE) --ignore-scripts --no-audit --no-fund --loglevel=error \
		&& cp $(CONSOLE)/package-lock.json $(CONSOLE)/node_modules/.installed-lock.json; }

browser: ## install Debian's chromium for the console's browser tests if it is missing
	@command -v chromium >/dev/null 2>&1 || bash deploy/scripts/install-chromium.sh

prometheus: ## install Debian's prometheus and promtool (alert and dashboard tests) if missing
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
		|| bash deploy/scripts/install-prometheus.sh

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
	@echo "  console     http://localhost:$(GATEWAY_PORT)/console  (sign in with the key below)"
	@echo "  API         http://localhost:$(GATEWAY_PORT)"
	@echo "  API docs    http://localhost:$(GATEWAY_PORT)/schema/swagger"
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

test: install browser prometheus services lint ## lint, then the whole test suite against local Redis/PostgreSQL
	$(UV) run pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# tests/perf is written with the Python code; until it exists this target says so and fails.
bench: install services ## benchmarks against references (never part of `make test`)
	@test -e tests/perf/__main__.py || test -e tests/perf.py \
		|| { echo "bench: tests/perf does not exist yet" >&2; exit 1; }
	@# The small-jobs reference (BullMQ 5 and pg, tests/perf/bullmq), as package-lock.json pins them.
	npm ci --prefix tests/perf/bullmq --ignore-scripts --no-audit --no-fund --loglevel=error
	$(UV) run python -m tests.perf
