"""Process-wide run-time settings: the number of CPU threads torch uses.

Policy (measured in ``benchmarks/threads.py``, figures in docs/benchmarks.md): **one intra-op
thread by default.** The attacks run small convolutions on batches of a few hundred images
at most, where extra threads buy little on a quiet machine, while on a machine whose cores
are busy torch's default (one thread per core) makes OpenMP threads wait on each other and a
solve can take several times longer (the issue behind this measured 169 s vs 24 s on a
loaded 2-core machine). One thread is never the catastrophic case. A user who wants more
asks for it: ``--threads N`` (``set_threads(N)``), ``--threads 0`` for torch's own default
(one per core), or ``OMP_NUM_THREADS=N`` in the environment, which the default respects.

The command line sets the count once per process; the Python API and the adapters set it for
the duration of each attack call (:func:`using_threads`, an attack's ``threads=``) and give the
caller's setting back afterwards.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Optional

import torch

from attacks.limits import MAX_THREADS

THREADS_ENV = "OMP_NUM_THREADS"
# torch's own choice, read before anything here changes it (one per physical core, or
# OMP_NUM_THREADS when that is set)
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def default_threads() -> int:
    """The thread count used when the user asks for none: ``OMP_NUM_THREADS`` when it is set
    to a positive integer, else 1."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return 1


def resolve_threads(threads: Optional[int] = None) -> int:
    """The count ``set_threads(threads)`` would use: None -> :func:`default_threads`,
    0 -> torch's own default (one per core), N > 0 -> N."""
    if threads is None:
        return default_threads()
    if (isinstance(threads, bool) or not isinstance(threads, int)
            or not 0 <= threads <= MAX_THREADS):
        raise ValueError(f"threads must be None, 0 (torch's default: one per core) or a positive "
                         f"integer up to {MAX_THREADS}; got {threads!r}")
    return TORCH_DEFAULT_THREADS if threads == 0 else threads


def set_threads(threads: Optional[int] = None) -> int:
    """Set torch's intra-op CPU threads by the policy above and return the count set."""
    n = resolve_threads(threads)
    torch.set_num_threads(n)
    return n


@contextmanager
def using_threads(threads: Optional[int] = None) -> Iterator[int]:
    """``with using_threads(threads) as n:`` torch runs on ``n`` threads by the policy above
    (see :func:`resolve_threads`) inside the block; the count it had before comes back when
    the block ends, also when it raises."""
    before = torch.get_num_threads()
    try:
        yield set_threads(threads)
    finally:
        torch.set_num_threads(before)
