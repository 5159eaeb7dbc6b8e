# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# The bootstrap is idempotent: .venv is rebuilt only when a pyproject.toml changes.
SHELL := /bin/bash
# Any Python 3.10-3.13 runs qa2; make test also needs casatools 6.7.0.31, built for 3.10-3.12.
PYTHON ?= $(shell for v in 3.11 3.12 3.10 3; do command -v python$$v && break; done)
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
	command -v strace >/dev/null || (apt-get update -qq && apt-get install -y -qq strace) \
	  || echo "qa2: strace not installed: the fault-injection tests will be skipped"
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; ok = (3, 10) <= v <= (3, 12); \
	  print(f"qa2: using Python {v[0]}.{v[1]} ({sys.executable})") if ok else sys.exit( \
	  f"qa2: found Python {v[0]}.{v[1]} at {sys.executable}: make test needs 3.10, 3.11 or 3.12, " \
	  "the Pythons casatools 6.7.0.31 is built for (qa2 itself also runs on 3.13); " \
	  "choose one with make PYTHON=python3.11")' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[testing,test,batch]' $(addprefix -e ,$(PLUGINS))
	$(BIN)/python -m qa2core.testing.casa write-config $(CASASITECONFIG)
	touch $@

demo: $(STAMP)
	$(BIN)/qa2 selftest --workdir $(DEMO_DIR)

test: $(STAMP) lint
	$(BIN)/python -m pytest -q tests
	for p in $(PLUGINS); do $(BIN)/python -m pytest -q $$p || exit 1; done
	$(BIN)/python -m pytest -q examples/arc-site-plugin

lint: $(STAMP)
	$(BIN)/ruff check qa2core QA2_Packaging_module.py tests plugins bench examples
	$(BIN)/vermin -q -t=3.10- --no-tips --violations --eval-annotations --exclude-regex '\.venv' \
	  qa2core plugins/*/src QA2_Packaging_module.py tests bench examples

bench: $(STAMP)
	$(BIN)/python bench/run.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) demo-output
