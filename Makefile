# spamwarden — two commands: `make run` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
CONFIG ?= conf/spamwarden.toml

# Debian packages: what the service needs to run, and what the tests drive for real.
DEBS_RUN := redis-server libmilter-dev
DEBS_TEST := $(DEBS_RUN) postfix swaks miltertest rbldnsd dnsperf bind9-dnsutils bind9utils unbound spamassassin
DEBS_BENCH := $(DEBS_TEST) spamassassin spamd spamc spamass-milter rspamd

.PHONY: run test test-unit test-integration bench soak lint typecheck clean debs-run debs-test

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

debs-run:
	@scripts/ensure-debs.sh $(DEBS_RUN)

debs-test:
	@scripts/ensure-debs.sh $(DEBS_TEST)

run: debs-run $(VENV)/.installed
	$(VENV)/bin/spamwarden serve --config $(CONFIG)

test: debs-test $(VENV)/.installed
	$(VENV)/bin/mypy spamwarden
	$(PY) -m pytest tests

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

test-integration: debs-test $(VENV)/.installed
	$(PY) -m pytest tests/integration

# The fault, load and fuzz tests at full size: >=100,000 fuzz inputs per parser, 2,000 mail
# messages and complaints through killed and restarted services (2-3 hours on 2 cores).
soak: debs-test $(VENV)/.installed
	SPAMWARDEN_SOAK=1 $(PY) -m pytest tests/faults -p no:cacheprovider -ra --durations=20

bench: $(VENV)/.installed
	@scripts/ensure-debs.sh $(DEBS_BENCH)
	@for b in bench/*/run; do echo "== $$b"; $$b || exit 1; done

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check spamwarden tests || true

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy spamwarden

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis build *.egg-info
