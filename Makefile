# Steward: every target installs what it needs first (virtualenv, Python packages, Debian packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the test suite uses: a real ZooKeeper (master detection, HA), Docker (containerizers,
# images), debootstrap (local base images), static busybox (the containerizer tests' tiny image),
# Prometheus (the Prometheus load source, promtool checks of deploy/prometheus), the blackbox exporter
# (the squid probes of deploy/prometheus/steward-scrape.yml) and shellcheck (the production images'
# scripts), both for tests/integration/deploy.
TEST_DEBS := zookeeper docker.io debootstrap busybox-static prometheus prometheus-blackbox-exporter shellcheck
PYTEST_ARGS ?=

.PHONY: all venv test lint typecheck unit bench run demo clean

all: test

$(STAMP): setup.cfg pyproject.toml
	@if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
		deploy/scripts/ensure-debian-packages.sh python3-venv python3-pip; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,htcondor]'
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check framework executors tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP)
	deploy/scripts/ensure-debian-packages.sh $(TEST_DEBS)
	deploy/scripts/ensure-dockerd.sh
	$(MAKE) lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m tests.bench

# The demo site on the embedded cluster with a live status view; Ctrl-C stops it and cleans up.
run: $(STAMP)
	deploy/scripts/ensure-debian-packages.sh docker.io debootstrap
	deploy/scripts/ensure-dockerd.sh
	deploy/images/build.sh
	deploy/scripts/local-demo.sh run

# The same site under a squid load ramp and a burst of jobs; writes run/demo/demo.png.
demo: $(STAMP)
	deploy/scripts/ensure-debian-packages.sh docker.io debootstrap
	deploy/scripts/ensure-dockerd.sh
	deploy/images/build.sh
	deploy/scripts/local-demo.sh demo

include deploy/images/images.mk

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache
