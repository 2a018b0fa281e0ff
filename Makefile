# Two commands for a newcomer: `make run` and `make test`. Both build .venv from nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The package is installed into the venv non-editably, exactly as users get it; any change
# to the sources or to pyproject.toml reinstalls it.
SOURCES := pyproject.toml $(shell find src twisted -name '*.py' 2>/dev/null)

.PHONY: run test clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet '.[test]'
	touch $@

$(VENV)/.installed: $(SOURCES) $(VENV)/.deps
	$(BIN)/pip install --quiet --no-deps --force-reinstall .
	touch $@

run: $(VENV)/.installed
	$(BIN)/twistd --nodaemon --pidfile= orgproxy --aliases etc/aliases.toml

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n 2

clean:
	rm -rf $(VENV) build src/*.egg-info

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py $(BENCH_ARGS)
