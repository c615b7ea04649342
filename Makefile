# Every target sets up what it needs on a bare machine.
VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed

.PHONY: all venv test lint typecheck pytest demo bench bench-check clean services

all: test

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q -U pip

$(STAMP): $(PY) pyproject.toml requirements-dev.txt benchmarks/requirements.txt
	$(PIP) install -q -e '.[all]' -r requirements-dev.txt \
	    -r benchmarks/requirements.txt
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests start for real: redis-server (session store,
# shared breaker state).
services:
	@command -v redis-server >/dev/null 2>&1 || { \
	  (apt-get update -qq || true) && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv services
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

demo: venv services
	$(PY) -m examples.troubleshooting_service.demo

bench: venv
	@command -v wrk >/dev/null 2>&1 || { \
	  (apt-get update -qq || true) && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-check:
	$(MAKE) bench BENCH_ARGS=--check

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache var
