"""attacks.runtime: the default CPU thread count and how a requested count is applied."""

import pytest
import torch

from attacks import runtime


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_one_thread_unless_omp_num_threads_is_set(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.default_threads() == 3
    for junk in ("", "0", "-2", "many"):
        monkeypatch.setenv("OMP_NUM_THREADS", junk)
        assert runtime.default_threads() == 1


def test_set_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.set_threads() == 1 and torch.get_num_threads() == 1
    assert runtime.set_threads(2) == 2 and torch.get_num_threads() == 2
    assert runtime.set_threads(0) == runtime.TORCH_DEFAULT_THREADS == torch.get_num_threads()
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be"):
            runtime.set_threads(bad)


def test_using_threads_restores_torchs_setting_also_after_an_error(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(3)
    with runtime.using_threads() as n:
        assert n == torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    with pytest.raises(RuntimeError, match="inside"):
        with runtime.using_threads(2):
            assert torch.get_num_threads() == 2
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with runtime.using_threads() as n:
        assert n == torch.get_num_threads() == 2
    with runtime.using_threads(0) as n:
        assert n == runtime.TORCH_DEFAULT_THREADS
    with pytest.raises(ValueError, match="threads must be"):
        with runtime.using_threads(-1):
            pass
    assert torch.get_num_threads() == 3


def test_the_library_refuses_a_thread_count_torch_cannot_start():
    from attacks.limits import MAX_THREADS
    from attacks.runtime import resolve_threads
    assert resolve_threads(MAX_THREADS) == MAX_THREADS  # accepted, not set
    for bad in (MAX_THREADS + 1, 100_000, 99999999999999999999):
        with pytest.raises(ValueError, match="threads must be .* up to 1024"):
            resolve_threads(bad)
