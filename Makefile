# omniactor — the two set-up commands are `make demo` and `make test`; both build the
# virtual environment they need on a fresh machine.
#
# torch is installed first and on its own: TORCH_SPEC pins the build (torch==2.13.0 is the
# CPU wheel on the project's machines); an unpinned torch would pull a multi-GB CUDA build.
# On a GPU machine, override it: `make test TORCH_SPEC="torch==2.13.0" TORCH_INDEX=<your CUDA index>`.
#
# Everything else is installed at the versions of constraints.txt, the set the test suite last
# passed with, so an upstream release cannot change what `make test` runs. To move to newer
# versions: `make clean && make test CONSTRAINTS= && make lock`, then commit constraints.txt.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
CONSTRAINTS ?= constraints.txt
EXTRAS ?= dev
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST_ARGS ?=
EXAMPLES ?= 2000
DEMO_OUT ?= outputs/demo

.PHONY: help venv test test-fast test-explore demo bench lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml Makefile $(CONSTRAINTS)
	bash scripts/install_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -e ".[$(EXTRAS)]" $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS))
	touch $@

venv: $(VENV)/.installed  ## create the virtual environment and install omniactor with its test extras

test: venv  ## run the whole test suite
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: venv  ## the suite without tests marked slow
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-explore: venv  ## property tests with random seeds and many examples (EXAMPLES=2000); pin what fails with @example
	HYPOTHESIS_PROFILE=explore HYPOTHESIS_EXAMPLES=$(EXAMPLES) $(PY) -m pytest -q -m property $(PYTEST_ARGS)

demo: venv  ## the main job: run the end-to-end demo into $(DEMO_OUT)
	$(VENV)/bin/omniactor demo --out $(DEMO_OUT)

bench: venv  ## run every benchmark (each prints one JSON line last)
	for b in benchmarks/bench_*.py; do $(PY) $$b --json || exit 1; done

lock: venv  ## write constraints.txt: the versions installed now (torch and omniactor excluded)
	{ echo "# Versions the test suite passed with; \`make venv\` installs these (see the Makefile)."; \
	  echo "# Rewritten by \`make lock\`. torch is installed first, by TORCH_SPEC."; \
	  $(PIP) freeze --exclude-editable | grep -v -i -E '^(torch|omniactor)=='; } > constraints.txt

clean:  ## remove the environment and caches (keeps outputs/)
	rm -rf $(VENV) .pytest_cache .hypothesis src/*.egg-info
