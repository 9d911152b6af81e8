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

# A worker that stops on its own (killed, an unrecoverable error) is started again a second
# later; one stopped on purpose (Ctrl-C, SIGTERM: a warm shutdown, exit status 0) is not.
# On servers use the systemd units in deploy/systemd instead.
worker: migrate
	@while :; do \
	  $(VENV)/bin/celery -A service.runner.executors.celery_app worker --loglevel=INFO; status=$$?; \
	  if [ $$status -eq 0 ] || [ $$status -eq 2 ]; then exit $$status; fi; \
	  echo "make worker: the worker exited with status $$status; starting it again" >&2; \
	  sleep 1; \
	done

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
