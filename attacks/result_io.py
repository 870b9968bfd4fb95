"""Attack results as files, in the run-directory formats the CLI writes (attacks.runs).

A results directory (what :meth:`AttackResult.save` writes; a finished ``admm-attack solve``
run directory has the same files plus provenance.json and spec.toml)::

    batches/batch-00000.npz   every per-example field (metrics as ``metric_<name>``), lossless
    adversarial.npz           adversarial, delta, original, success, source_index, labels,
                              targets, targeted
    metrics.csv               one row per example (distortions and c are ``nan`` on failure)
    summary.json              ASR, mean distortions over successes, counts, attack, grid

It is a run directory like any other (marker, manifest, lock): :func:`save` claims it (new,
empty or an earlier save, whose files it replaces) and refuses anything else. :func:`load`
reads the batches back (the complete record) with the attack's name and ``grid`` from
summary.json, or from provenance.json for a CLI run that has not finished.
"""

from __future__ import annotations

import json
from pathlib import Path

from attacks.result import AttackResult
from attacks.runs.outputs import result_arrays, summary, to_result, write_outputs
from attacks.runs.store import PROVENANCE, RunDir, run_fingerprint

SUMMARY = "summary.json"


def save(result: AttackResult, path) -> Path:
    """Write ``result`` as a results directory at ``path`` (see the module docstring);
    ``original`` is ``adversarial − delta``. Replaces an earlier :func:`save` there; refuses a
    CLI run directory (it holds provenance.json) and any other non-empty directory."""
    run = RunDir(Path(path), fingerprint=run_fingerprint({"saved": result.attack}))
    if run.path(PROVENANCE).exists():
        raise ValueError(f"path {run.root}: holds a CLI run (provenance.json); save elsewhere")
    run.claim(restart=True)
    try:
        a = result_arrays(result)
        run.own([run.batch_name(0)])
        run.save_batch(0, a)
        summ = summary(result, images=int(result.source_index.unique().numel()), batches=1,
                       resumed=0, seconds=0.0)
        write_outputs(run, a, a["adversarial"] - a["delta"], {**summ, "grid": result.grid})
    finally:
        run.unlock()
    return run.root


def load(path) -> AttackResult:
    """The result in a results directory: one written by :func:`save`, or a CLI run directory
    (finished, or interrupted: then the batches stored so far)."""
    run = RunDir(Path(path))
    if not any(run.batches.glob("batch-*.npz")):
        raise FileNotFoundError(f"path {run.root}: no batches/batch-*.npz (not a results "
                                "directory, or a run with no finished batch)")
    if run.path(SUMMARY).is_file():
        info = json.loads(run.path(SUMMARY).read_text(encoding="utf-8"))
        attack, grid = info.get("attack"), info.get("grid", False)
    elif run.path(PROVENANCE).is_file():
        key = (run.stored_provenance() or {}).get("resume_key", {})
        attack, grid = key.get("spec", {}).get("name"), key.get("grid", False)
    else:
        raise FileNotFoundError(f"path {run.root}: neither {SUMMARY} nor {PROVENANCE} (which "
                                "name the attack)")
    return to_result(run.examples(), attack or "unknown", grid=bool(grid))
