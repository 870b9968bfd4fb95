"""Resumable run directories: what ``solve``, ``eval``, ``explain``, the experiments and the
Python API's runs write, and how they read it back.

:func:`run_attack` attacks a :class:`Plan` into a :class:`RunDir` (batches stored atomically,
resumed, shared over torchrun ranks, merged into metrics.csv, summary.json, adversarial.npz);
:mod:`attacks.runs.outputs` holds the file formats, :mod:`attacks.runs.provenance` what
produced a run.
"""

from attacks.runs.distributed import Ranks
from attacks.runs.runner import Finished, Inputs, Plan, run_attack, run_all, start_run
from attacks.runs.store import RunDir

__all__ = ["Finished", "Inputs", "Plan", "Ranks", "RunDir", "run_all", "run_attack", "start_run"]
