# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# The bootstrap is idempotent: .venv is rebuilt only when a pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qa2-bootstrap
PYPROJECTS := pyproject.toml $(wildcard plugins/*/pyproject.toml)
PLUGINS := plugins/interferometric plugins/totalpower plugins/pipeline
export CASASITECONFIG := $(CURDIR)/$(VENV)/casasiteconfig.py
DEMO_DIR ?= $(CURDIR)/demo-output

.PHONY: bootstrap demo test lint bench clean

bootstrap: $(STAMP)

$(STAMP): $(PYPROJECTS)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "qa2 needs Python 3.11, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[testing,test]' $(addprefix -e ,$(PLUGINS))
	$(BIN)/python -m qa2core.testing.casa write-config $(CASASITECONFIG)
	touch $@

demo: $(STAMP)
	$(BIN)/qa2 selftest --workdir $(DEMO_DIR)

test: $(STAMP) lint
	$(BIN)/python -m pytest -q tests
	for p in $(PLUGINS); do $(BIN)/python -m pytest -q $$p || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check qa2core QA2_Packaging_module.py tests plugins bench

bench: $(STAMP)
	$(BIN)/python bench/run.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) demo-output
