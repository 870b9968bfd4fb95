"""Resumable run directories: what ``solve``, ``eval``, ``explain``, the experiments and the
Python API's runs write, and how they read it back.

:mod:`attacks.runs.job` holds a :class:`Job` (one run: attack, checked examples, resume key,
provenance); :mod:`attacks.runs.runner` attacks it into a :class:`RunDir` (batches stored
atomically, resumed, shared over torchrun ranks, merged into the result's files,
:mod:`attacks.result_io`);
:mod:`attacks.runs.store` owns the directory (claimed, locked, atomic writes) and
:mod:`attacks.runs.provenance` what produced a run. The package imports only its leaves, so the
result's formats (below the runner) can use the directory.
"""

from attacks.runs.distributed import Ranks
from attacks.runs.store import RunDir

__all__ = ["Ranks", "RunDir"]
