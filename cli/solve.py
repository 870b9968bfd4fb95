"""``admm-attack solve``: run a spec on a model and data into a resumable run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from attacks.api import Attack
from attacks.runs import Finished, Plan, run_attack
from attacks.runs.provenance import fingerprint, model_fingerprint
from attacks.catalogue import LoadedSpec, load_spec
from cli.setup import Prepared, batch_size_for, check_counts, fits, parse_targets, prepare

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
                    device=device,
                    threads=threads, grid=grid)
    fits(loaded.spec, tuple(ready.images.shape[1:]), f"--spec {spec}")
    plan = target_plan(ready, targets, seed, batch_size)
    done = run_spec(out, ready, plan, loaded, "admm-attack solve", options,
                    identity=dict(model=model, weights=weights, data=data, n=n,
                                  targets=targets, **normalized(normalize)),
                    seed=seed, restart=restart, quiet=quiet, figures=figures)
    return None if done is None else done.summary


def normalized(normalize: Optional[tuple]) -> Dict[str, Any]:
    """The resume-key entry of ``--mean/--std`` (none without them: older keys stay valid)."""
    return {} if normalize is None else {"normalize": [list(normalize[0]), list(normalize[1])]}


def target_plan(ready: Prepared, targets: str, seed: int, batch_size: Optional[int]) -> Plan:
    """The examples of ``--targets`` in batches of ``--batch-size`` (default: see
    :func:`cli.setup.batch_size_for`)."""
    index, tg = parse_targets(targets, ready.labels, ready.num_classes, seed)
    batch = batch_size_for(batch_size, DEFAULT_BATCH_SIZE, ready.ranks)
    return Plan(ready.images, ready.labels, index, tg, batch)


def run_spec(out: Path, ready: Prepared, plan: Plan, loaded: LoadedSpec, tool: str,
             options: Dict[str, Any], *, identity: Dict[str, Any], seed: int, restart: bool,
             quiet: bool, figures: int) -> Optional[Finished]:
    """One spec attack as a solve-like run directory in ``out``; ``identity`` (the model,
    data and targets options) and the fingerprints of model and data form its resume key."""
    key = {"spec": loaded.spec.to_dict(), **identity,
           "model_sha256_16": model_fingerprint(ready.model),
           "data_sha256_16": fingerprint(ready.images, ready.labels), "seed": seed,
           "batch_size": plan.batch_size, "grid": ready.grid}
    spec_text = loaded.spec.to_toml()
    record = {**ready.record(tool, plan, options), "spec_toml": spec_text,
              "spec_origin": loaded.origin, "seed": seed}
    torch.manual_seed(seed)
    attack = Attack(ready.model, loaded.spec, seed=seed, grid=ready.grid)
    return run_attack(out, ready.inputs(plan, options), attack, name=loaded.spec.name,
                      key=key, record=record, files={"spec.toml": spec_text},
                      restart=restart, quiet=quiet, figures=figures,
                      groups=loaded.spec.groups(tuple(ready.images.shape[1:])))
