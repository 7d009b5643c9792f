# imserver: the two commands of the README, plus a few helpers.
#   make run   creates .venv if missing, installs, migrates, serves HTTP + WebSocket with daphne
#   make test  the whole test suite (pytest-django), ruff and the apps' import order (import-linter)
#   make lock regenerates requirements.lock and requirements-dev.lock (pinned, with hashes) from
#              requirements*.txt; run it after changing either, and commit the three together
#   make bench a short run of the load tools in bench/ (PostgreSQL and Redis on 127.0.0.1, see
#              bench/harness.py); writes bench/results/latest.md. BENCH_ARGS=--full for issue 7's sizes
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
BIN := $(VENV)/bin

.PHONY: run test lint lock bench migrate clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("imserver needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs come from the lock files, hash-checked (as the Docker image installs requirements.lock).
$(VENV)/.installed: requirements.lock $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock $(VENV)/.installed
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

# The dev lock is constrained by the runtime lock, so tests run on exactly what production installs.
LOCK := $(BIN)/uv pip compile --generate-hashes --python-version 3.11 --quiet
lock: $(VENV)/.installed-dev
	$(LOCK) requirements.txt -o requirements.lock
	$(LOCK) requirements-dev.txt -c requirements.lock -o requirements-dev.lock

migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/daphne -b $(HOST) -p $(PORT) --ping-interval 15 --ping-timeout 15 imserver.asgi:application

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: $(VENV)/.installed-dev lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
