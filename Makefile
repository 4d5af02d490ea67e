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

# `make review BASE=<git rev>`: diffs of params, metrics and plots between BASE and the work tree.
BASE ?= HEAD
REVIEW_DIR ?= review

.PHONY: demo test setup setup-dev bench clean-venv pull push review

demo: setup
	$(RUN) python -m pianoeval.params_schema
	$(RUN) dvc repro
	$(RUN) python -m pianoeval.summary

test: setup-dev
	$(RUN) python -m pytest -q

# Credentials are checked before DVC runs: without any and without a terminal this fails in seconds
# with the two auth routes instead of waiting for a browser login (pianoeval/remote.py).
# REMOTE=<name> picks another remote, ARGS='...' passes further `dvc pull/push` arguments.
pull: setup
	$(RUN) python -m pianoeval.remote pull $(if $(REMOTE),-r $(REMOTE)) $(ARGS)

push: setup
	$(RUN) python -m pianoeval.remote push $(if $(REMOTE),-r $(REMOTE)) $(ARGS)

review: setup
	$(RUN) python -m pianoeval.review --base $(BASE) --out $(REVIEW_DIR)

bench: setup-dev
	$(RUN) python scripts/benchmark.py --install

setup: $(STAMP)

# Installs with uv (one pinned wheel bootstrapped by pip): it resolves and unpacks in parallel, ~4x faster
# than pip here (benchmarks in README). torch comes first through pip, pinned and without its dependencies,
# so pip's configuration (a local CPU wheel where the machine has one) picks the build: an unpinned torch
# from PyPI is the CUDA build (gigabytes). uv then keeps that torch (the lock pins the same version) and
# installs everything else with the exact versions of requirements.lock.
# Bytecode is compiled at install (pip for torch, uv --compile-bytecode for the rest): every stage is a new
# Python process, and without .pyc files (e.g. where PYTHONDONTWRITEBYTECODE is set, as in this project's work shells)
# each one recompiled torch, pandas, scipy and matplotlib from source: 22 s instead of ~4 s per stage.
UV := $(BIN)/uv
UV_VERSION := 0.13.9
UV_INSTALL := $(UV) pip install -q --compile-bytecode --python $(BIN)/python -c requirements.lock

$(STAMP): pyproject.toml requirements.lock scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q --no-deps torch==2.13.0
	$(UV_INSTALL) -e .
	touch $(STAMP)

# Test-only packages (pytest, moto's S3 server, dvc-s3, transformers, ray): `make demo` does not need them.
setup-dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP)
	$(UV_INSTALL) -e '.[dev]'
	touch $(DEV_STAMP)

clean-venv:
	rm -rf $(VENV)
