"""``admm-attack solve``: run a spec on a model and data into a resumable run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from attacks.base import DEFAULT_BATCH_SIZE, AttackBase, Examples
from attacks.runs.runner import Finished, run_attack
from attacks.catalogue import LoadedSpec, load_spec
from attacks.indicators import nothing_judged
from cli.errors import UserError
from cli.options import RunOptions
from cli.setup import (ChosenAttack, Prepared, batch_size_for, check_counts, checked_examples,
                       fits, parse_targets, prepare)


def solve(run: RunOptions, *, spec: str, sets: List[str], targets: str = "untargeted",
          figures: int = 4) -> Optional[Dict[str, Any]]:
    """Everything ``admm-attack solve`` does; returns the summary (``None`` on torchrun
    ranks other than 0). User errors raise :class:`UserError`; an interruption leaves the
    finished batches in ``run.out``."""
    options = dict(spec=spec, set=list(sets), targets=targets, figures=figures,
                   **run.recorded())
    check_counts(run, figures)
    loaded = load_spec(spec, sets)
    ready = prepare(run, options)
    attack = ChosenAttack(spec, spec, loaded).build(ready, run.seed)
    examples = checked_examples(ready, attack, parse_targets(targets, ready.labels), targets)
    fits(loaded.spec, tuple(ready.images.shape[1:]), f"--spec {spec}")
    done = run_spec(run.out, ready, attack, examples, loaded, "admm-attack solve",
                    batch_size=batch_size_for(run.batch_size, DEFAULT_BATCH_SIZE),
                    targets=targets, restart=run.restart, quiet=run.quiet, figures=figures)
    if done is None:
        return None
    nothing = nothing_judged(done.summary)
    if nothing:  # the run's files are written; its verdict is that there is none
        raise UserError(f"--model {run.model}: {nothing}")
    return done.summary


def run_spec(out: Path, ready: Prepared, attack: AttackBase, examples: Examples,
             loaded: LoadedSpec, tool: str, *, batch_size: int, targets: str, restart: bool,
             quiet: bool, figures: int) -> Optional[Finished]:
    """One spec attack as a solve-like run directory in ``out``; the model, data and
    targets options and the fingerprints of model and data form its resume key."""
    job = ready.job(attack, examples, batch_size, tool, ready.identity(targets),
                    record={"spec_toml": loaded.spec.to_toml(), "spec_origin": loaded.origin,
                            "seed": attack.seed})
    return run_attack(job, out, restart=restart, quiet=quiet, figures=figures)
