"""The run layer: attack a :class:`Job` into a resumable run directory.

:func:`run_attack` is what ``solve``, each attack of ``eval`` and ``explain``, and the Python
API's runs share: start the run directory (resume key, provenance; :meth:`RunDir.start`),
attack the batches not stored yet (:func:`run_all`: each stored atomically as it finishes, live
ASR and mean ℓ0 / ℓ2 in a progress bar, batches shared out over torchrun ranks), then merge
them and write the outputs (metrics.csv, summary.json, adversarial.npz, png/ on the 8-bit
grid, figures/).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import attrs
import numpy as np
import torch

from attacks.base import AttackBase
from attacks.progress import BatchProgress
from attacks.result import AttackResult
from attacks.runs.figures import draw_examples
from attacks.runs.job import Job
from attacks.runs.outputs import result_arrays, summary, to_result, write_outputs, write_pngs
from attacks.runs.provenance import now, stopped
from attacks.store import PROVENANCE, RunDir, merge, run_fingerprint


def run_batch(attack: AttackBase, job: Job, sl: slice) -> AttackResult:
    """Attack the examples ``sl`` of the job; source indices refer to the full image set."""
    return attack.attack_batch(*job.examples.batch(sl), job.grid).to("cpu")


def run_all(run: RunDir, job: Job, *, quiet: bool = False
            ) -> Tuple[Optional[List[Dict[str, np.ndarray]]], int]:
    """All batches' arrays in order, and how many were loaded from ``run`` (not recomputed).

    Under torchrun the ranks take the batches as they free up (:meth:`Ranks.share`) and each
    computes the missing ones it takes; after a barrier rank 0 reads every batch back and
    returns them, the other ranks return ``None``.
    """
    slices, index, ranks = job.slices(), job.examples.index, job.ranks
    stored = lambda i: run.load_batch(i, index[slices[i]].numpy(),
                                      job.examples.targets.targets[slices[i]].numpy())
    parts: List[Optional[Dict[str, np.ndarray]]] = [stored(i) for i in range(len(slices))]
    resumed = sum(p is not None for p in parts)
    label = job.name + (f" [rank {ranks.rank}/{ranks.world}]" if ranks.world > 1 else "")
    # under torchrun a rank does not know beforehand how many batches it will take
    bar = BatchProgress(label + (f" (resumed {resumed})" if resumed else ""),
                        len(slices) if ranks.world == 1 else None, verbose=not quiet,
                        done=resumed)
    for p in parts:
        if p is not None:
            bar.stats.add(p["success"], p["metric_l0"], p["metric_l2"])
    with bar:
        for i in ranks.share(len(slices)):
            if parts[i] is not None:  # stored before this run started
                continue
            result = run_batch(job.attack, job, slices[i])
            parts[i] = result_arrays(result)
            run.save_batch(i, parts[i])
            bar.advance(result)
    ranks.barrier()
    if not ranks.main:
        return None, resumed
    parts = [p if p is not None else stored(i) for i, p in enumerate(parts)]
    missing = [i for i, p in enumerate(parts) if p is None]
    if missing:
        raise RuntimeError(f"batches {missing} were not found in {run.batches} after every "
                           "rank finished: do all ranks see the same --out directory?")
    return parts, resumed  # type: ignore[return-value]


@attrs.frozen
class Finished:
    """A finished run: its summary (as in summary.json) and every example's result."""

    summary: Dict[str, Any]
    result: AttackResult


def run_attack(job: Job, out: Path, *, restart: bool = False, quiet: bool = False,
               figures: int = 0) -> Optional[Finished]:
    """Run ``job`` into the run directory ``out``; return what it found (``None`` on torchrun
    ranks other than 0, which only attack their batches).

    The job's resume key identifies the run (a different stored run is refused, the same one
    resumed); its record is the provenance written with it, its files (e.g. ``spec.toml``)
    are written when the run starts. ``figures`` examples are drawn with the attack's group
    heatmap. An interruption records itself in the provenance (status ``interrupted``) and
    re-raises ``KeyboardInterrupt`` with how many batches were kept; any other error (a model
    that raises or exits) records status ``failed`` with the error, and is re-raised. The lock
    is released either way.
    """
    run, ranks = RunDir(out, fingerprint=run_fingerprint(job.key)), job.ranks
    entry = dict(job.entry)
    record = {**job.record, "status": "running", "resume_key": job.key}
    history = ranks.run_on_main(lambda: run.start(record, restart=restart, key=job.key,
                                                  entry=entry, files=job.files,
                                                  batches=len(job.slices())))
    torch.manual_seed(job.seed)
    try:
        return _attack_and_write(run, job, record, history, entry, quiet, figures)
    finally:
        run.unlock()


def _attack_and_write(run: RunDir, job: Job, record: Dict[str, Any], history: List[Any],
                      entry: Dict[str, Any], quiet: bool, figures: int) -> Optional[Finished]:
    ranks, examples = job.ranks, job.examples
    start = time.perf_counter()
    try:
        parts, resumed = run_all(run, job, quiet=quiet or not ranks.main)
    except BaseException as e:  # Ctrl-C, SIGTERM, or a model that raised (or exited)
        status, fields = stopped(e)
        if ranks.main:
            entry.update(fields)
            run.write_json(PROVENANCE, {**record, "status": status,
                                        "history": history + [entry]})
        if status == "interrupted":
            done = len(list(run.batches.glob("batch-*.npz")))
            raise KeyboardInterrupt(f"{done} of {len(job.slices())} batches saved in "
                                    f"{run.root}") from None
        raise
    seconds = time.perf_counter() - start
    if parts is None:  # a rank other than 0: its batches are stored, rank 0 merges
        return None

    arrays = merge(parts)
    result = to_result(arrays, job.name, grid=job.grid)
    originals = examples.originals
    summ = summary(result, images=int(examples.images.shape[0]), batches=len(parts),
                   resumed=resumed, seconds=seconds)
    write_outputs(run, arrays, originals, summ)
    if job.grid:
        write_pngs(run, arrays)
    if figures:
        classifier = job.attack.classifier
        draw_examples(run, arrays, originals, figures, classifier.model, classifier.device,
                      groups=job.groups, attack=job.name)
    entry.update(finished=now(), batches_computed=len(parts) - resumed,
                 batches_resumed=resumed)
    run.write_json(PROVENANCE, {**record, "status": "complete", "history": history + [entry]})
    run.tidy()   # what killed writes of earlier invocations left
    return Finished(summ, result)
