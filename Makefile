# Every target runs inside .venv; `make install` is idempotent (a no-op when pyproject.toml is unchanged).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
PORT ?= 8080
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install wheels install-checkov install-bench lock test lint demo bench bench-quick synth preflight fuzz soak clean

install: $(STAMP) wheels

# The binary wheels the SageMaker code bundle ships (the image has no compiler, the jobs no
# network), hash-checked against recsys_infra.container.WHEEL_LOCK; downloads only what is missing.
# (RECSYS_WHEEL_CACHE moves the cache; synth and the tests read the same variable.)
export RECSYS_WHEEL_CACHE ?= $(CURDIR)/.cache/wheels
wheels: $(STAMP)
	@$(BIN)/python -m recsys_infra.source_bundle $(RECSYS_WHEEL_CACHE)

# constraints.txt pins every transitive dependency (fast, reproducible resolution); `make lock`
# refreshes it from a working environment after a dependency change in pyproject.toml.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# checkov's own venv (.venv/checkov, from constraints-checkov.txt); the infra tests build it on
# first use, this builds it ahead (e.g. before going offline).
install-checkov: install
	$(BIN)/python -c "import sys; sys.path.insert(0, 'tests/infra'); import checkov_env; print(checkov_env.ensure_checkov())"

lock:
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[dev]'
	$(BIN)/uv pip freeze --python $(BIN)/python | grep -v -e '^-e' -e '^recsys-aws-template' -e '^torch' > constraints.txt

install-bench: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]' 'torch==2.13.0'
	@touch $(BENCH_STAMP)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check sagemaker lambdas cdk tools tests bench
	$(BIN)/mypy

demo: install
	$(BIN)/recsys local up --port $(PORT) --tour

synth: install
	cd . && $(BIN)/python cdk/app.py

# Read-only checks of the AWS account of your credentials before cdk deploy (ENV=prod for another).
preflight: install
	$(BIN)/recsys deploy preflight $(if $(ENV),--env $(ENV))

bench: install-bench
	$(BIN)/python -m bench.run --full

bench-quick: install-bench
	$(BIN)/python -m bench.run --quick

fuzz: install
	$(BIN)/python -m pytest tests/e2e -m fuzz --fuzz-examples=500

soak: install
	SOAK_SECONDS=60 $(BIN)/python -m pytest tests/e2e -m soak

clean:
	rm -rf $(VENV) cdk.out .pytest_cache build *.egg-info $(RECSYS_WHEEL_CACHE)
