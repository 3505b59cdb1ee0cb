# difflab: `make demo` sets everything up and runs the main job; `make test` sets up and tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-samplers demo-policy test lint setup clean bench

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,pusht]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/difflab demo

demo-samplers: $(STAMP)
	$(BIN)/difflab demo samplers

demo-policy: $(STAMP)
	$(BIN)/difflab demo policy

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test: $(STAMP) lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/sampler_accuracy.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
