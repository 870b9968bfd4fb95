"""Test-wide settings: one intra-op thread, so timings stay sane on a shared 2-core machine."""

import torch

torch.set_num_threads(1)


# -- torchattacks and foolbox for tests/test_adapters.py, from .cache/compat ------------------
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import benchutil  # noqa: E402


@pytest.fixture(scope="module")
def compat():
    """torchattacks and foolbox imported from .cache/compat (``python tools/fetch_compat.py``),
    never from the venv (:func:`benchutil.compat_libraries`); skips when absent. Afterwards the
    path and every module imported from it are removed again, so other test modules see the
    environment unchanged."""
    with benchutil.compat_libraries() as (libs, why):
        if libs is None:
            pytest.skip(why)
        yield libs
