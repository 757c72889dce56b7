# `make run`: set everything up and start web and the workers. `make test`: the whole suite.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

export PATH := $(abspath $(BIN)):$(PATH)
MANAGE := $(BIN)/python manage.py
# The settings file config/settings.py reads (CUTOUT_ENV_FILE names another); the environment wins
# over it. Written once with a new secret key and development mode, never overwritten.
ENV_FILE := $(or $(CUTOUT_ENV_FILE),.env)
# Named on purpose: the settings then use it even when the environment names production services
# (a bare start with a development .env and such services stops instead, config/settings.py).
export CUTOUT_ENV_FILE := $(ENV_FILE)
# The Procfile's programs are $${VIRTUAL_ENV:-.venv}/bin/…: this checkout's environment.
export VIRTUAL_ENV := $(abspath $(VENV))

.PHONY: run test test-load install models migrate demo clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,run]'
	@echo "Compiling rembg's numba kernels once (about a minute on a new environment)…"
	$(BIN)/python -c "import rembg"
	touch $@

install: $(INSTALLED)

$(ENV_FILE):
	umask 077 && $(PYTHON) -c "import secrets; print(f'DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}\nDJANGO_DEBUG=true')" > $@.tmp
	mv $@.tmp $@
	@echo "Wrote $@: a new DJANGO_SECRET_KEY and DJANGO_DEBUG=true (development)."

# Idempotent: a present file with the right checksum is kept.
# The preloaded models (BG_REMOVE_MODELS), and u2net beside them: a source or a URL may choose it.
models: $(INSTALLED) $(ENV_FILE)
	$(MANAGE) provision_models
	$(MANAGE) provision_models u2net

migrate: $(INSTALLED) $(ENV_FILE)
	$(MANAGE) migrate --noinput -v0
	$(MANAGE) collectstatic --noinput -v0

demo: migrate
	$(MANAGE) bootstrap_demo

run: models demo
	@echo "Serving on http://127.0.0.1:$(PORT)/  (Ctrl-C stops every process)"
	@# Web and worker processes share one metrics folder, so /metrics shows the workers' too.
	rm -rf "$${CUTOUT_VAR_DIR:-var}/prometheus" && mkdir -p "$${CUTOUT_VAR_DIR:-var}/prometheus"
	@# `-e /dev/null`: the settings read $(ENV_FILE) themselves; honcho's reading would let it win
	@# over the environment.
	PROMETHEUS_MULTIPROC_DIR="$$(cd "$${CUTOUT_VAR_DIR:-var}/prometheus" && pwd)" \
	$(BIN)/honcho -f platform/Procfile -d . -e /dev/null start -p $(PORT)

test: models
	$(BIN)/python -m pytest

# Slower: hundreds of jobs through one worker, a soak on cached renders, and the fault suite.
# LOAD_JOBS (default 300), SOAK_SECONDS (default 300), FAULT_SECONDS (20) and RECOVERY_SECONDS (30)
# make it shorter.
test-load: models
	$(BIN)/python -m pytest -m load -s tests/test_load.py tests/test_faults.py

clean:
	rm -rf $(VENV) var staticfiles
