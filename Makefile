# imserver: the two commands of the README, plus a few helpers.
#   make run   creates .venv if missing, installs, migrates, serves HTTP + WebSocket with daphne
#   make test  the whole test suite (pytest-django) and ruff
#   make bench a short run of the load tools in bench/ (PostgreSQL and Redis on 127.0.0.1, see
#              bench/harness.py); writes bench/results/latest.md. BENCH_ARGS=--full for issue 7's sizes
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
BIN := $(VENV)/bin

.PHONY: run test lint bench migrate clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("imserver needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/daphne -b $(HOST) -p $(PORT) --ping-interval 15 --ping-timeout 15 imserver.asgi:application

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.installed-dev lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
