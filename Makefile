# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# The OS's own CPython 3.11+ if it has one, else python3 (infra/python.sh, ADR 0013).
PYTHON ?= $(shell bash infra/python.sh)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SLRT_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
export SLRT_TEST_POSTGRES_URL

.PHONY: run test lint typecheck unit postgres-up bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Serve the API on the SQLite default (./var/slrt.db) with demo data.
run: $(STAMP)
	$(BIN)/slrt secrets --out var/slrt.env
	$(BIN)/slrt demo-data --region 64.74 --households 2000 --if-empty
	@echo "Demo users (print a bearer token with the command on the right; paste it into"
	@echo "the Authorize button at http://127.0.0.1:8000/docs):"
	@$(BIN)/slrt users demo --region 64.74 | sed 's|slrt users token|.venv/bin/slrt users token|'
	$(BIN)/slrt serve --host 127.0.0.1 --port 8000

## The whole suite: lint, types, unit, application tests on SQLite and PostgreSQL, API tests.
test: $(STAMP) postgres-up lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

postgres-up:
	@bash infra/postgres-up.sh

## Benchmarks (not part of `make test`): each figure beside its baseline, in bench/results/.
bench: $(STAMP) postgres-up
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.interleaved
	$(BIN)/python -m bench.ranking
	$(BIN)/python -m bench.projections
	$(BIN)/python -m bench.audit_overhead
	$(BIN)/python -m bench.inspection
	$(BIN)/python -m bench.region_activity
	$(BIN)/python -m bench.referrals

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
