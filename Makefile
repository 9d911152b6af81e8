PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

# Every command installs exact versions, with their hashes, from a lock file in requirements/
# (made by `make lock` from pyproject.toml): serve.txt for one machine, scaleout.txt adds
# Celery and PostgreSQL, test.txt adds the test, lint and benchmark tools.
SERVE_SET := serve
ifeq ($(INGEST_EXECUTOR),celery)
SERVE_SET := scaleout
endif
ifneq ($(filter postgresql%,$(INGEST_DATABASE_URL)),)
SERVE_SET := scaleout
endif

.PHONY: install bytecode serve worker migrate test test-fast lint format typecheck all bench bench-quick lock clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# The test set holds the serve and scale-out sets at the same versions (they are resolved
# against it): once it is installed, `make serve` run by the tests has nothing to install
# into the venv that the other test processes are using.
$(VENV)/.installed-%: requirements/%.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --require-hashes -r $<
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@ $(if $(filter test,$*),$(VENV)/.installed-serve $(VENV)/.installed-scaleout)

install: $(VENV)/.installed-$(SERVE_SET)

migrate: install
	$(PY) -m alembic upgrade head

# The service's own modules compiled to bytecode now, also where PYTHONDONTWRITEBYTECODE is set
# (as in many containers and CI machines): otherwise each process the service starts (the API,
# the workers' forkserver, every converter) compiles them again, about 0.25 s of CPU each.
# Files already compiled and unchanged are skipped.
bytecode: | $(PY)
	$(PY) -m compileall -q service migrations tests

serve: migrate bytecode
	$(PY) -m service --host $(HOST) --port $(PORT)

# A worker that exits on its own (a crash, a lost broker it could not survive) is started
# again; Ctrl-C, or a bad setting (status 2), ends the loop.
worker: $(VENV)/.installed-scaleout bytecode
	$(PY) -m alembic upgrade head
	@while :; do \
	  $(VENV)/bin/celery -A service.runner.executors.celery_app worker --loglevel=INFO; status=$$?; \
	  if [ $$status -eq 0 ] || [ $$status -eq 2 ]; then exit $$status; fi; \
	  echo "make worker: the worker exited with status $$status; starting it again" >&2; \
	  sleep 1; \
	done

lint: $(VENV)/.installed-test
	$(PY) -m ruff check service tests migrations
	$(PY) -m ruff format --check service tests migrations
	$(VENV)/bin/lint-imports --no-cache

format: $(VENV)/.installed-test
	$(PY) -m ruff check --fix service tests migrations
	$(PY) -m ruff format service tests migrations

typecheck: $(VENV)/.installed-test
	$(PY) -m mypy

# The suite runs in one process per core, at most four (pytest-xdist), each taking whole test
# files: most tests wait on servers and processes they started, so two share a core well, and
# a file's tests share its module fixtures.
PYTEST_PARALLEL := -n auto --maxprocesses=4 --dist loadfile

# The whole suite, as CI runs it.
test: lint typecheck bytecode
	$(PY) -m pytest $(PYTEST_PARALLEL)

# Everything but the tests that start real servers and processes (marked slow): for daily work.
test-fast: lint typecheck bytecode
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow"

all: test

bench: $(VENV)/.installed-test bytecode
	$(PY) -m tests.bench

bench-quick: $(VENV)/.installed-test bytecode
	$(PY) -m tests.bench --quick

# Resolve pyproject.toml's ranges again into the lock files (for every Python from 3.11 and
# every platform), with hashes; review the change, run `make test`, commit.
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet
lock: | $(PY)
	$(PY) -m pip install --quiet 'uv>=0.9'
	$(UV_COMPILE) --upgrade --extra scaleout --extra dev --extra bench -o requirements/test.txt
	$(UV_COMPILE) -c requirements/test.txt -o requirements/serve.txt
	$(UV_COMPILE) -c requirements/test.txt --extra scaleout -o requirements/scaleout.txt

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .import_linter_cache
