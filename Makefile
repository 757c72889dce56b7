# `make run`: set everything up and start web + worker. `make test`: the whole suite.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
MODELS := var/models/.provisioned

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test install models migrate demo clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@echo "Compiling rembg's numba kernels once (about a minute on a new environment)…"
	$(BIN)/python -c "import rembg"
	touch $@

install: $(INSTALLED)

$(MODELS): $(INSTALLED)
	$(BIN)/python manage.py provision_models
	touch $@

models: $(MODELS)

migrate: $(INSTALLED)
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/python manage.py migrate --noinput -v0
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/python manage.py collectstatic --noinput -v0

demo: migrate
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/python manage.py bootstrap_demo

run: models demo
	@echo "Serving on http://127.0.0.1:$(PORT)/  (Ctrl-C stops web and worker)"
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/honcho -f platform/Procfile -d . start -p $(PORT)

test: models
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var staticfiles
