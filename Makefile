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

.PHONY: bootstrap demo test lint bench mutate clean system-packages

bootstrap: system-packages $(STAMP)

# Debian packages the tests use, installed when missing (apt-get update then, once): strace for
# the fault-injection tests; slurmctld, slurmd and munge for the single-node SLURM that
# tests/test_slurm.py starts and stops itself (qa2core/testing/slurm.py). Their services are not
# started on install (a policy-rc.d that says no, if the machine has none): nothing is left running.
SYSTEM_PACKAGES := strace slurmctld slurmd munge slurm-client

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
	  | grep -q ' installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "qa2: installing Debian packages:" $$missing; \
	  ( policy=/usr/sbin/policy-rc.d; ours=; \
	    if [ ! -e $$policy ] && [ -w /usr/sbin ]; then printf '#!/bin/sh\nexit 101\n' > $$policy \
	      && chmod 755 $$policy && ours=1; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$missing; rc=$$?; [ -z "$$ours" ] || rm -f $$policy; exit $$rc ) \
	  || echo "qa2: could not install $$missing (needs root and apt): the strace fault tests" \
	    "are skipped, and tests/test_slurm.py skips when not root, fails as root"; \
	fi

$(STAMP): $(PYPROJECTS) | system-packages
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

# Lint and every suite run even when one fails; the failed ones are listed at the end (exit 1
# if any). No suite asserts a duration: timing checks live in `make bench` (bench/run.py).
# The example plugins' own suites run from source; their "installed" test needs the pip
# install that tests/test_example_plugin.py makes (and runs it there), so it is deselected here
# rather than shown as a skip.
EXAMPLES := examples/arc-site-plugin examples/arc-compose-plugin
test: system-packages $(STAMP)
	$(BIN)/python -m compileall -q qa2core $(addsuffix /src,$(PLUGINS)) > /dev/null  # as pip install: the qa2 subprocesses start like an installed qa2's
	failed=""; \
	$(MAKE) --no-print-directory lint || failed=" lint"; \
	for s in tests $(PLUGINS) $(EXAMPLES); do \
	  echo "qa2: make test: $$s"; \
	  case $$s in examples/*) set -- -k "not installed";; *) set --;; esac; \
	  $(BIN)/python -m pytest -q $$s "$$@" || failed="$$failed $$s"; \
	done; \
	if [ -n "$$failed" ]; then echo "qa2: make test: FAILED:$$failed"; exit 1; fi; \
	echo "qa2: make test: every suite passed (tests $(PLUGINS) $(EXAMPLES))"

lint: $(STAMP)
	$(BIN)/ruff check qa2core QA2_Packaging_module.py tests plugins bench examples
	$(BIN)/vermin -q -t=3.10- --no-tips --violations --eval-annotations --exclude-regex '\.venv' \
	  qa2core plugins/*/src QA2_Packaging_module.py tests bench examples

bench: $(STAMP)
	$(BIN)/python bench/run.py --out docs/benchmarks.md

# Mutation testing (docs/reliability.md, "Mutation testing"): mutmut 3 over the integrity modules
# and the batch ledger/jobs ([tool.mutmut] in pyproject.toml) against the fast tests, 2 children,
# from scratch on the current tree. PYTHONPATH makes any qa2 subprocess a test starts import the
# mutated copy in ./mutants too. The counts go to docs/mutation-results.md.
mutate: $(STAMP)
	rm -rf mutants && mkdir mutants  # before PYTHONPATH names it: a missing entry is never looked at again
	start=$$(date +%s); tree=$$(git describe --always --dirty); \
	PYTHONPATH=$(CURDIR)/mutants $(BIN)/mutmut run --max-children 2 > mutants.log 2>&1 \
	  || { tail -40 mutants.log; exit 1; }; \
	$(BIN)/python -c "$$MUTATE_SUMMARY" $$(( $$(date +%s) - start )) $$tree > docs/mutation-results.md
	cat docs/mutation-results.md

define MUTATE_SUMMARY
import collections, datetime, json, pathlib, sys
from mutmut.stats import status_by_exit_code
rows, names = {}, collections.defaultdict(list)
for meta in sorted(pathlib.Path("mutants").glob("qa2core/**/*.py.meta")):
    module = str(meta.relative_to("mutants"))[: -len(".meta")]
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    c = collections.Counter(status_by_exit_code[v] for v in codes.values())
    rows[module] = c
    for name, v in codes.items():
        if status_by_exit_code[v] not in ("killed", "timeout", "not checked"):
            names[status_by_exit_code[v]].append(name)
def line(module, c):
    total = sum(c.values())
    tested = total - c["skipped"] - c["not checked"]  # no tests: not killed
    k = c["killed"] + c["timeout"]
    rate = f"{100 * k / tested:.1f} %" if tested else "-"
    return (f"| {module} | {total} | {c['killed']} | {c['timeout']} | {c['survived']} | "
            f"{c['no tests']} | {c['not checked']} | {c['suspicious'] + c['segfault']} | {rate} |")
commit = sys.argv[2]  # the tree mutmut copied, when the run started
minutes = int(sys.argv[1]) / 60
print("# Mutation testing results (`make mutate`)\n")
print(f"Written by `make mutate` on {datetime.date.today()} (tree {commit}), {minutes:.0f} min wall on "
      "2 children. Kill rate = (killed + timeout) / (all - skipped - not checked): a mutant no "
      "test reaches counts as not killed. "
      "Survivors are triaged in docs/reliability.md, \"Mutation testing\".\n")
print("| module | mutants | killed | timeout | survived | no tests | not checked | other | kill rate |")
print("|---|---|---|---|---|---|---|---|---|")
for module, c in rows.items():
    print(line(module, c))
print(line("**all**", sum(rows.values(), collections.Counter())))
for status in sorted(names):
    print(f"\n## {status} ({len(names[status])})\n")
    print("\n".join(f"- `{n}`" for n in sorted(names[status])))
endef
export MUTATE_SUMMARY

clean:
	rm -rf $(VENV) demo-output
