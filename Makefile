# mine2cell developer entry points. `make test` is what CI runs (.ci/run).

VENV := .venv
PY := $(VENV)/bin/python
PYTHON3 ?= python3

# Stamp files live inside the directories they describe, so deleting .venv or
# node_modules also forgets that they were installed.
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# Debian's headless browser for the passport page's browser test; the binary is its own stamp.
CHROMIUM := /usr/bin/chromium

.PHONY: install demo test contracts gas bench-relay bench-provenance bench-audit bench-api \
	bench-soak

install: $(PY_STAMP) $(NODE_STAMP)

$(PY):
	$(PYTHON3) -m venv $(VENV)

$(PY_STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

# package-lock.json was written by `npx npm@11.13.0 install`: the registry we reach
# has only anvil's linux-amd64 binary package, and npm >= 11.16 then writes a lock
# that its own `npm ci` rejects ("Missing: @foundry-rs/anvil-darwin-amd64@ from lock
# file", npm/cli#9846). 11.13.0 records the missing platforms as inert entries.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Runs only where the browser is missing (a fresh CI machine, as root); an existing one is kept.
$(CHROMIUM):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

demo: install
	$(VENV)/bin/mine2cell demo

test: install $(CHROMIUM)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n 2

contracts: install
	$(PY) scripts/build_contracts.py

gas: install
	$(PY) bench/gas.py

bench-relay: install
	$(PY) bench/relay_throughput.py

# About 2 minutes: generates a 10,000-lot ledger and audits its 1,000-lot passport.
bench-audit: install
	$(PY) bench/audit.py

# About 3 minutes: generates a 10,000-lot ledger, serves it with `mine2cell serve` and loads it
# over HTTP (concurrent readers, then writers, then both).
bench-api: install
	$(PY) bench/api_load.py

# About 6 minutes: generates a 2,000-lot ledger, serves it with `mine2cell serve` and writes to it
# and reads it at steady rates for 5 minutes while its node is killed and restarted half way;
# every accepted operation is checked on chain (lost 0, duplicated 0).
bench-soak: install
	$(PY) bench/soak.py

# Several minutes: generates a 10,000- and a 100,000-lot ledger on anvil nodes of its own.
bench-provenance: install
	$(PY) bench/provenance.py
