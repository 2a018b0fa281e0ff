# Three commands for a newcomer: `make run`, `make test` and `make demo`. Each builds .venv from nothing.
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

# make install PREFIX=/opt/orgproxy: orgproxy for a service, in $(PREFIX)/.venv. The venv is
# made with the system's Python, which every user may run (a pyenv or ~/.local Python under a
# home directory is not: the service user would get EACCES); say which with INSTALL_PYTHON=.
PREFIX ?= /opt/orgproxy
INSTALL_PYTHON ?= $(shell for p in /usr/bin/python3.11 /usr/bin/python3 /usr/local/bin/python3.11 \
	/usr/local/bin/python3; do "$$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo "$$p"; break; }; done)
# Twisted's plugin cache (twisted/plugins/dropin.cache), built once by whoever installs: a
# service user cannot write it, and Twisted would try at every start and log that it could not.
PLUGIN_CACHE := -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'

.PHONY: run test tools demo clean bench bench-report install

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

# setuptools builds from what it left in build/ too: a module since deleted or moved would
# be installed again, so each install starts from a clean build/.
# Twisted's plugin cache is built here too, once, rather than by the first twistd to start
# (every twistd started before it is written scans every plugin).
$(VENV)/.package: $(SOURCES) $(VENV)/.runtime
	rm -rf build
	$(BIN)/pip install --quiet --no-deps --force-reinstall .
	$(BIN)/python $(PLUGIN_CACHE)
	touch $@

# Ready for the tests: the package as it is now, and the test extra.
$(VENV)/.installed: $(VENV)/.package $(VENV)/.deps
	touch $@

run: $(VENV)/.package
	$(BIN)/twistd --nodaemon --pidfile= orgproxy --aliases etc/aliases.toml $(ARGS)

# The daemon in front of a local fake OpenAI and Anthropic organization with a month of costs
# (demo/): no admin key needed. Ctrl-C stops both. make demo DEMO_PORT=18081 ARGS="--log-level debug"
DEMO_PORT ?= 18080
demo: $(VENV)/.package
	$(BIN)/python -m demo --port $(DEMO_PORT) $(ARGS)

$(FOCUS_VALIDATOR)/.installed:
	$(PYTHON312) -m venv $(FOCUS_VALIDATOR)
	$(FOCUS_VALIDATOR)/bin/pip install --quiet 'focus-validator==2.2.1' 'pyarrow==20.0.0'
	touch $@

# Where Python 3.12 is, the FOCUS validator's test runs (see tests/conftest.py): install it.
# Tools some tests run that are not Python packages, from Debian's packages where missing:
# prometheus (a real Prometheus, and promtool for etc/prometheus/), chromium and
# chromium-driver (a real browser). About 10 s, more when Chromium is missing; where apt-get
# cannot be run (not root, not Debian), it says what to install.
DEBIAN_TOOLS := /usr/bin/prometheus:prometheus /usr/bin/promtool:prometheus \
	/usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver
tools:
	@missing=$$(for tool in $(DEBIAN_TOOLS); do [ -x "$${tool%%:*}" ] || echo "$${tool##*:}"; done | sort -u); \
	[ -z "$$missing" ] && exit 0; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "make test: installing Debian's" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$$missing >/dev/null; \
	else \
		echo "make test: some tests need Debian's packages" $$missing": apt-get install" $$missing >&2; exit 1; \
	fi

# Three processes on two cores: the tests of real processes spend much of their time waiting
# on them, which the third fills.
test: tools $(VENV)/.installed $(if $(PYTHON312),$(FOCUS_VALIDATOR)/.installed)
	$(BIN)/python -m pytest -n 3

clean:
	rm -rf $(VENV) $(FOCUS_VALIDATOR) build src/*.egg-info

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

# orgproxy-report at scale: a month of daily costs for 5,000 and 10,000 keys of each vendor.
bench-report: $(VENV)/.installed
	$(BIN)/python bench/report_bench.py $(BENCH_ARGS)

# Readable by every user whatever the installer's umask (a service runs as its own user);
# the package itself, not editable, with what running needs.
install:
	@test -n "$(INSTALL_PYTHON)" || { echo "make install: no Python 3.11 or newer found outside a home directory;" \
		"name one: make install INSTALL_PYTHON=/usr/bin/python3.12" >&2; exit 1; }
	@case "$$(readlink -f "$$(command -v "$(INSTALL_PYTHON)")")" in "$${HOME:-/nonexistent}"/*|/root/*|/home/*) \
		echo "make install: $(INSTALL_PYTHON) is under a home directory, which the service user cannot read;" \
		"name another: make install INSTALL_PYTHON=/usr/bin/python3.11" >&2; exit 1;; esac
	umask 022 && $(INSTALL_PYTHON) -m venv $(PREFIX)/.venv
	rm -rf build
	umask 022 && $(PREFIX)/.venv/bin/pip install --quiet --upgrade .
	umask 022 && $(PREFIX)/.venv/bin/python $(PLUGIN_CACHE)
