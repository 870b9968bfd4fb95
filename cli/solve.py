"""``admm-attack solve``: run a spec on a model and data into a resumable run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from attacks.api import Attack
from attacks.base import Examples
from attacks.runs.runner import Finished, run_attack
from attacks.catalogue import LoadedSpec, load_spec
from attacks.indicators import nothing_judged
from cli.errors import UserError
from cli.setup import (Prepared, batch_size_for, check_counts, checked_examples, fits,
                       parse_targets, prepare)

DEFAULT_BATCH_SIZE = 16


def solve(*, spec: str, sets: List[str], model: str, weights: Optional[str], data: str,
          normalize: Optional[tuple] = None,
          n: Optional[int], targets: str, device: str, batch_size: Optional[int], seed: int,
          out: Path, figures: int, restart: bool, quiet: bool, threads: Optional[int] = None,
          grid: Optional[bool] = None) -> Optional[Dict[str, Any]]:
    """Everything ``admm-attack solve`` does; returns the summary (``None`` on torchrun
    ranks other than 0). User errors raise :class:`UserError`; an interruption leaves the
    finished batches in ``out``."""
    options = dict(spec=spec, set=list(sets), model=model, weights=weights, normalize=normalize,
                   data=data, n=n,
                   targets=targets, device=device, batch_size=batch_size, seed=seed,
                   out=str(out), figures=figures, restart=restart, threads=threads,
                   grid=grid, quiet=quiet)
    check_counts(batch_size=batch_size, threads=threads, figures=figures)
    loaded = load_spec(spec, sets)
    ready = prepare(model=model, weights=weights, normalize=normalize, data=data, n=n,
                    device=device, threads=threads, grid=grid, options=options)
    attack = spec_attack(ready, loaded, seed)
    examples = checked_examples(ready, attack, parse_targets(targets, ready.labels), targets)
    fits(loaded.spec, tuple(ready.images.shape[1:]), f"--spec {spec}")
    done = run_spec(out, ready, attack, examples, loaded, "admm-attack solve",
                    batch_size=batch_size_for(batch_size, DEFAULT_BATCH_SIZE, ready.ranks),
                    targets=targets, restart=restart, quiet=quiet, figures=figures)
    if done is None:
        return None
    nothing = nothing_judged(done.summary)
    if nothing:  # the run's files are written; its verdict is that there is none
        raise UserError(f"--model {model}: {nothing}")
    return done.summary


def spec_attack(ready: Prepared, loaded: LoadedSpec, seed: int) -> Attack:
    """The spec's attack on the invocation's model (with its --mean/--std and --grid)."""
    return Attack(ready.net, loaded.spec, normalize=ready.normalize, seed=seed, grid=ready.grid)


def run_spec(out: Path, ready: Prepared, attack: Attack, examples: Examples,
             loaded: LoadedSpec, tool: str, *, batch_size: int, targets: str, restart: bool,
             quiet: bool, figures: int) -> Optional[Finished]:
    """One spec attack as a solve-like run directory in ``out``; the model, data and
    targets options and the fingerprints of model and data form its resume key."""
    job = ready.job(attack, examples, batch_size, tool, ready.identity(targets),
                    record={"spec_toml": loaded.spec.to_toml(), "spec_origin": loaded.origin,
                            "seed": attack.seed})
    return run_attack(job, out, restart=restart, quiet=quiet, figures=figures)
