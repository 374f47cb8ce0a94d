# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
# torch==2.13.0 goes in first: it is the CPU wheel, so the `torch>=2.4` range in
# the [convert] extra is met and pip never reaches for a multi-GB CUDA build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test bench conformance fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py --out demo_out

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A larger fuzz run than the one in `make test` (tests/fuzz): mutated model files of
# every format and the crafted hostile files, with every check mode; prints the counts
# and the files the caller did not survive (exit 1 if any). FUZZ_ARGS="--per-format 2000".
FUZZ_ARGS ?= --per-format 500 --seed 1
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.harness $(FUZZ_ARGS)

bench: $(STAMP)
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# ONNX's node tests through both targets (about 25 minutes on 2 cores); the table
# goes to docs/CONFORMANCE.md, outcomes that changed against the expectations file are listed.
conformance: $(STAMP)
	$(BIN)/python -m tests.conformance.runner --json conformance.json --table docs/CONFORMANCE.table.md

clean:
	rm -rf $(VENV) demo_out .pytest_cache

# The Android demo's bundled model, labels and samples (android_demo/README.md).
.PHONY: android-assets
android-assets: $(STAMP)
	$(BIN)/python android_demo/scripts/build_demo_assets.py
