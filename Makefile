# Two commands for a newcomer: `make run` and `make test`. Both build .venv from nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The package is installed into the venv non-editably, exactly as users get it; any change
# to the sources or to pyproject.toml reinstalls it.
SOURCES := pyproject.toml LICENSE $(shell find src twisted -name '*.py' 2>/dev/null)
# Python writes and reuses its compiled modules (.pyc): a machine that says not to
# (PYTHONDONTWRITEBYTECODE) makes every Python the tests start compile Twisted afresh.
unexport PYTHONDONTWRITEBYTECODE
# More options for the daemon: make run ARGS="--upstream https://gateway.internal --log-level debug"
ARGS ?=

# The FinOps Foundation's FOCUS validator, which a test runs on the FOCUS export where
# Python 3.12 is (on PATH, or a pyenv version; or say where: make test PYTHON312=...).
PYTHON312 ?= $(shell for p in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 \
	$${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12; do \
	"$$p" -c '' 2>/dev/null && { echo "$$p"; break; }; done)
FOCUS_VALIDATOR := .venv-focus-validator

.PHONY: run test clean bench bench-report

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

$(FOCUS_VALIDATOR)/.installed:
	$(PYTHON312) -m venv $(FOCUS_VALIDATOR)
	$(FOCUS_VALIDATOR)/bin/pip install --quiet 'focus-validator==2.2.1' 'pyarrow==20.0.0'
	touch $@

# Where Python 3.12 is, the FOCUS validator's test runs (see tests/conftest.py): install it.
test: $(VENV)/.installed $(if $(PYTHON312),$(FOCUS_VALIDATOR)/.installed)
	$(BIN)/python -m pytest -n 2

clean:
	rm -rf $(VENV) $(FOCUS_VALIDATOR) build src/*.egg-info

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

# orgproxy-report at scale: a month of daily costs for 5,000 and 10,000 keys of each vendor.
bench-report: $(VENV)/.installed
	$(BIN)/python bench/report_bench.py $(BENCH_ARGS)
