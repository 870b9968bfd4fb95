"""Resumable runs: what ``solve``, ``eval``, ``explain``, the experiments and the Python API's
runs write, and how they read it back.

:mod:`attacks.runs.job` holds a :class:`Job` (one run: attack, checked examples, resume key,
provenance); :mod:`attacks.runs.runner` attacks it into a :class:`RunDir` (batches stored
atomically, resumed, shared over torchrun ranks, merged into the result's files,
:mod:`attacks.result_io`); :mod:`attacks.runs.provenance` records what produced a run. The
directory itself (claimed, locked, atomic writes) is :mod:`attacks.store`, below both the
result's formats and this package.
"""

from attacks.runs.distributed import Ranks
from attacks.store import RunDir

__all__ = ["Ranks", "RunDir"]
