# Two commands for a newcomer: `make run` and `make test`. Both build .venv from nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The package is installed into the venv non-editably, exactly as users get it; any change
# to the sources or to pyproject.toml reinstalls it.
SOURCES := pyproject.toml LICENSE $(shell find src twisted -name '*.py' 2>/dev/null)
# More options for the daemon: make run ARGS="--upstream https://gateway.internal --log-level debug"
ARGS ?=

.PHONY: run test clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# What running needs: the package's own dependencies, and no more.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet .
	touch $@

# What testing needs besides: the test extra.
$(VENV)/.deps: $(VENV)/.runtime
	$(BIN)/pip install --quiet '.[test]'
	touch $@

$(VENV)/.package: $(SOURCES) $(VENV)/.runtime
	$(BIN)/pip install --quiet --no-deps --force-reinstall .
	touch $@

# Ready for the tests: the package as it is now, and the test extra.
$(VENV)/.installed: $(VENV)/.package $(VENV)/.deps
	touch $@

run: $(VENV)/.package
	$(BIN)/twistd --nodaemon --pidfile= orgproxy --aliases etc/aliases.toml $(ARGS)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n 2

clean:
	rm -rf $(VENV) build src/*.egg-info

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py $(BENCH_ARGS)
