"""Resumable run directories: what ``solve``, ``eval``, ``explain``, the experiments and the
Python API's runs write, and how they read it back.

A :class:`Job` is one run (attack, checked examples, resume key, provenance);
:func:`run_attack` attacks it into a :class:`RunDir` (batches stored atomically, resumed,
shared over torchrun ranks, merged into metrics.csv, summary.json, adversarial.npz);
:mod:`attacks.runs.outputs` holds the file formats, :mod:`attacks.runs.provenance` what
produced a run.
"""

from attacks.runs.distributed import Ranks
from attacks.runs.job import Job, normalized, python_job, resume_key
from attacks.runs.runner import Finished, run_all, run_attack
from attacks.runs.store import RunDir

__all__ = ["Finished", "Job", "Ranks", "RunDir", "normalized", "python_job", "resume_key",
           "run_all", "run_attack"]
