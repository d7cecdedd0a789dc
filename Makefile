# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: help run test lint format settings-table lock bench soak clean vendor
# `make` alone only prints the targets: nothing is installed or started without asking.
.DEFAULT_GOAL := help

## Show this list (each target's first `## ` line).
help:
	@echo "Targets (make <target>):"
	@awk '/^## / { if (!doc) doc = substr($$0, 4); next } /^\.PHONY:/ { next } \
	     /^[A-Za-z0-9_-]+:/ && doc { sub(/:.*/, ""); printf "  %-8s %s\n", $$0, doc } \
	     { doc = "" }' $(firstword $(MAKEFILE_LIST))

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: requirements.txt requirements-demo.txt | $(PY)
	$(PIP) -r requirements-demo.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-demo.txt requirements-dev.txt | $(PY)
	$(PIP) -r requirements-dev.txt
	touch $@ $(VENV)/.demo-installed

# JavaScript tooling (eslint, esbuild, Uppy's packages) exactly as package-lock.json pins it,
# installed once per change of the lock: npm ci writes node_modules/.package-lock.json itself.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## Rebuild the committed browser bundles in broker/static/vendor/ from the pinned npm packages
## (tools/vendor-uppy.mjs: Uppy core, Dashboard and AWS S3 as one ES module, and their styles).
vendor: node_modules/.package-lock.json
	node tools/vendor-uppy.mjs

## Start the demo: broker, embedded MongoDB and S3, sample images, tokens (Ctrl-C stops).
run: $(VENV)/.demo-installed
	$(PY) -m broker.demo

## Lint and type-check first (what breaks either does not land), then run every test.
## Installs what the tests need first (the virtualenv, Ceph RGW, Chromium).
test: $(VENV)/.dev-installed lint
	tests/rgw/rgw.sh install
	tests/browser/install-chromium.sh
	$(PY) -m pytest

## eslint (eslint.config.js) over every JavaScript file: the browser module and the admin UI.
.PHONY: lint-js
lint-js: node_modules/.package-lock.json
	node_modules/.bin/eslint --max-warnings 0 .
lint: lint-js

## ruff (lint + format check) and mypy over broker/, tests/ and bench/; make test runs it first.
## Configured in pyproject.toml (ruff) and setup.cfg (mypy), which editors read too.
lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy

## Rewrite the code in place the way ruff format and ruff check --fix want it.
format: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check --fix
	$(VENV)/bin/ruff format

## Rewrite the README's configuration tables from the declarations in broker/settings.py.
settings-table: $(VENV)/.demo-installed
	$(PY) -c 'import sys; from broker.settings import main; sys.exit(main(sys.argv[1:]))' \
		--readme README.md

# pip-compile as `make lock` runs it; the files name no index or find-links of this machine.
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet \
	--strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

## Recompile requirements*.txt, every transitive dependency pinned (LOCK_ARGS=--upgrade: newest).
## requirements.txt comes from setup.cfg's install_requires, requirements-demo.txt and
## requirements-dev.txt from their .in files (which take the runtime lock as it is). Pins are
## kept unless LOCK_ARGS says otherwise, e.g. LOCK_ARGS="--upgrade-package boto3".
lock: $(VENV)/.dev-installed
	$(PIP_COMPILE) --output-file requirements.txt setup.cfg
	$(PIP_COMPILE) --output-file requirements-demo.txt requirements-demo.in
	$(PIP_COMPILE) --output-file requirements-dev.txt requirements-dev.in

## One run of every benchmark; writes bench/results/latest.json and latest.md.
## Starts MongoDB, Ceph RGW and gunicorn; installs wrk if missing.
bench: $(VENV)/.dev-installed
	$(PY) bench/run.py

## A realistic mix at 80% of measured capacity for several minutes: errors, p99, memory.
soak: $(VENV)/.dev-installed
	$(PY) bench/soak.py

## Remove the virtualenv, node_modules, the demo's state (var/) and the tool caches.
clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache node_modules
