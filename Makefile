# Two commands: `make demo` (whole pipeline on the embedded data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make test` also needs the dev extra (pytest, transformers, ray): its own stamp, so `make demo`
# installs only the runtime dependencies.
DEV_STAMP := $(VENV)/.installed-dev
# Stages call `python`: put the venv first on PATH so dvc runs them with the project's interpreter.
RUN := PATH="$(CURDIR)/$(BIN):$$PATH"

.PHONY: demo test setup setup-dev bench clean-venv

demo: setup
	$(RUN) dvc repro
	$(RUN) python -m pianoeval.summary

test: setup-dev
	$(RUN) python -m pytest -q

bench: setup-dev
	$(RUN) python scripts/benchmark.py

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

$(STAMP): pyproject.toml requirements.lock scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls the CUDA build (gigabytes).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c requirements.lock -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $(DEV_STAMP)

clean-venv:
	rm -rf $(VENV)
