# Chantier Connecté — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# One stamp per install (pyproject.toml extra): `make demo` needs the local stack's only.
DEV_STAMP := $(VENV)/.installed-dev
LOCAL_STAMP := $(VENV)/.installed-local
DEMO_ARGS ?=
UPLOT := cloud/local/dashboard/uplot.iife.min.js

.PHONY: demo test unit functional e2e lint bench install install-local mosquitto chromium \
	systemd-analyze clean package screenshots dynalite

demo: install-local mosquitto dynalite
	$(VENV)/bin/chantier demo $(DEMO_ARGS)

test: install mosquitto dynalite chromium systemd-analyze lint
	$(PY) -m pytest tests/unit tests/functional tests/e2e -q

unit: install
	$(PY) -m pytest tests/unit -q

functional: install mosquitto dynalite systemd-analyze
	$(PY) -m pytest tests/functional -q

e2e: install mosquitto dynalite chromium
	$(PY) -m pytest tests/e2e -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy chantier device cloud provisioning commands
	$(VENV)/bin/cfn-lint cloud/template.yaml

bench: install mosquitto dynalite
	@set -e; for script in tests/benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script; done

install: $(DEV_STAMP) $(UPLOT)

install-local: $(LOCAL_STAMP) $(UPLOT)

# The dashboard's chart library, from the npm registry (never fetched at run time).
$(UPLOT): scripts/vendor-uplot.sh
	bash scripts/vendor-uplot.sh $(dir $(UPLOT))

# Re-installs only when the package definition changes, so a second run is fast. The dev
# install holds the local stack's, so after it `make demo` installs nothing.
$(DEV_STAMP): pyproject.toml | $(PY)
	$(call pip_install,dev)
	@touch $(DEV_STAMP) $(LOCAL_STAMP)

$(LOCAL_STAMP): pyproject.toml | $(PY)
	$(call pip_install,local)
	@touch $(LOCAL_STAMP)

define pip_install
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(1)]' || \
		{ echo "Installing the Python packages failed: check access to the package index"; exit 1; }
endef

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Python 3.11 or newer is needed: found $$($(PYTHON) --version 2>&1)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || \
		{ echo "Could not create $(VENV): install the venv module (apt-get install python3-venv)"; exit 1; }

mosquitto:
	@# The packaged service is not needed: the local stack starts its own broker on a free port.
	@AFTER_INSTALL="systemctl disable --now mosquitto" \
		bash scripts/install-os-packages.sh Mosquitto /usr/sbin/mosquitto mosquitto

# The local stack's DynamoDB server: dynalite from the npm registry, run by Node.js from the OS
# packages (cloud/local/dynalite; docs/architecture.md). Reinstalled when its lock file changes.
DYNALITE := cloud/local/dynalite/node_modules/.package-lock.json
dynalite: $(DYNALITE)

$(DYNALITE): cloud/local/dynalite/package-lock.json
	@bash scripts/install-os-packages.sh Node.js /usr/bin/node nodejs
	@bash scripts/install-os-packages.sh npm /usr/bin/npm npm
	@cd cloud/local/dynalite && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error || \
		{ echo "Installing dynalite from the npm registry failed: check access to the registry"; exit 1; }
	@touch $(DYNALITE)

# Rates the agent's systemd sandbox in the tests (Debian's systemd package; no service started).
systemd-analyze:
	@bash scripts/install-os-packages.sh systemd-analyze /usr/bin/systemd-analyze systemd

# Headless browser tests of the local dashboard use Debian's Chromium.
chromium:
	@bash scripts/install-os-packages.sh Chromium /usr/bin/chromium chromium chromium-driver

# Dashboard screenshots for docs/dashboards.md.
screenshots: install mosquitto chromium
	$(PY) scripts/screenshots.py

# The Lambda zip for `sam deploy` (see docs/deploy.md): the cloud code only.
package: | $(PY)
	$(PY) scripts/package_lambda.py --out build/lambda.zip

clean:
	rm -rf $(VENV) state build .pytest_cache .mypy_cache .ruff_cache cloud/local/dynalite/node_modules
