# Two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo demo-env test lint format bench check clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED)

# The demo's settings, read by every process started in its var/ (see mes/settings.py): a
# command run in another shell has them too. Written once; edit it freely.
DEMO_VAR := $(or $(MES_VAR_DIR),var)
demo-env:
	@mkdir -p $(DEMO_VAR)
	@test -f $(DEMO_VAR)/.env || printf '%s\n' \
	  '# Written by `make demo`: the demo plant'"'"'s settings, read by every process that uses' \
	  '# this directory (variables set in the environment win). Never use DEBUG in production.' \
	  'DEBUG=1' > $(DEMO_VAR)/.env

# The demo plant: SQLite under var/, embedded Celery broker, seeded data, http://127.0.0.1:8000
demo: export PATH := $(abspath $(BIN)):$(PATH)
demo: $(INSTALLED) demo-env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo
	@echo "  Demo plant: http://127.0.0.1:8000/   (Ctrl-C stops everything)"
	@echo
	$(BIN)/honcho --procfile Procfile.demo start

check: $(INSTALLED)
	SECRET_KEY=check-only $(BIN)/python manage.py check --fail-level WARNING
	SECRET_KEY=check-only DATABASE_URL=sqlite://:memory: \
	  $(BIN)/python manage.py makemigrations --check --dry-run

# The whole suite. DATABASE_URL picks the database (SQLite by default, PostgreSQL in CI too).
# TEST_WORKERS processes (pytest-xdist) share the test files among them; 0 runs them in this
# process.
TEST_WORKERS ?= 2
test: check
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every bench at its full size, each from an empty database (SQLite under var/). With
# BENCH_PG=postgres://postgres@127.0.0.1:5432 each one that takes a database runs again on
# PostgreSQL, on a re-created mes_bench_<script> database.
bench: $(INSTALLED)
	@set -e; for script in bench/[a-z]*.py; do \
	  echo "== $$script"; $(BIN)/python $$script; \
	  if [ -n "$(BENCH_PG)" ] && $(BIN)/python $$script --help | grep -q -- --recreate; then \
	    echo "== $$script on PostgreSQL"; \
	    $(BIN)/python $$script --recreate \
	      --database-url "$(BENCH_PG)/mes_bench_$$(basename $$script .py)"; \
	  fi; \
	done

clean:
	rm -rf var/ staticfiles/ .pytest_cache/ .ruff_cache/
