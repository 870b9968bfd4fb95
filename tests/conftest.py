"""Test-wide settings: one intra-op thread, so timings stay sane on a shared 2-core machine."""

import torch

torch.set_num_threads(1)


# -- torchattacks and foolbox for tests/test_adapters.py, from .cache/compat ------------------
import importlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402

COMPAT = Path(__file__).resolve().parent.parent / ".cache" / "compat"
COMPAT_VERSIONS = {"torchattacks": "3.5.1", "foolbox": "3.3.4"}


@pytest.fixture(scope="module")
def compat():
    """torchattacks and foolbox imported from .cache/compat (``python tools/fetch_compat.py``),
    never from the venv; skips when absent. Afterwards the path and every module imported from
    it are removed again, so other test modules see the environment unchanged."""
    if not COMPAT.is_dir():
        pytest.skip(f"{COMPAT} is absent: run `python tools/fetch_compat.py`")
    sys.path.insert(0, str(COMPAT))
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # foolbox.zoo imports GitPython
    try:
        libs = {name: importlib.import_module(name) for name in COMPAT_VERSIONS}
        wrong = {n: m.__version__ for n, m in libs.items() if m.__version__ != COMPAT_VERSIONS[n]}
        if wrong:
            pytest.skip(f"{COMPAT} holds {wrong}, expected {COMPAT_VERSIONS}")
        yield SimpleNamespace(**libs)
    except ImportError as e:
        pytest.skip(f"cannot import from {COMPAT}: {e}")
    finally:
        sys.path.remove(str(COMPAT))
        for name, mod in list(sys.modules.items()):
            if str(getattr(mod, "__file__", None) or "").startswith(str(COMPAT)):
                del sys.modules[name]
