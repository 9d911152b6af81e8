PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install serve worker migrate test lint typecheck all bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) -m alembic upgrade head

serve: migrate
	$(PY) -m service --host $(HOST) --port $(PORT)

worker: migrate
	$(VENV)/bin/celery -A service.executors.celery_app worker --loglevel=INFO

lint: install
	$(PY) -m ruff check service tests migrations
	$(PY) -m ruff format --check service tests migrations

typecheck: install
	$(PY) -m mypy

test: install lint typecheck
	$(PY) -m pytest

all: test

bench: install
	$(PY) -m tests.bench

bench-quick: install
	$(PY) -m tests.bench --quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
