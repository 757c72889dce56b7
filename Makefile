# `make run`: set everything up and start web and the workers. `make test`: the whole suite.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

export PATH := $(abspath $(BIN)):$(PATH)
# Management commands run in development mode unless the environment says otherwise.
MANAGE := DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/python manage.py

.PHONY: run test test-load install models migrate demo clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@echo "Compiling rembg's numba kernels once (about a minute on a new environment)…"
	$(BIN)/python -c "import rembg"
	touch $@

install: $(INSTALLED)

# Idempotent: a present file with the right checksum is kept.
models: $(INSTALLED)
	$(MANAGE) provision_models

migrate: $(INSTALLED)
	$(MANAGE) migrate --noinput -v0
	$(MANAGE) collectstatic --noinput -v0

demo: migrate
	$(MANAGE) bootstrap_demo

run: models demo
	@echo "Serving on http://127.0.0.1:$(PORT)/  (Ctrl-C stops every process)"
	@# Web and worker processes share one metrics folder, so /metrics shows the workers' too.
	rm -rf "$${CUTOUT_VAR_DIR:-var}/prometheus" && mkdir -p "$${CUTOUT_VAR_DIR:-var}/prometheus"
	PROMETHEUS_MULTIPROC_DIR="$$(cd "$${CUTOUT_VAR_DIR:-var}/prometheus" && pwd)" \
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/honcho -f platform/Procfile -d . start -p $(PORT)

test: models
	$(MANAGE) provision_models u2net
	$(BIN)/python -m pytest

# Slower: hundreds of jobs through one worker, and a soak on cached renders.
# LOAD_JOBS (default 300) and SOAK_SECONDS (default 300) make it shorter.
test-load: models
	$(BIN)/python -m pytest -m load -s tests/test_load.py

clean:
	rm -rf $(VENV) var staticfiles
