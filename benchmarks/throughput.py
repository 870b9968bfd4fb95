"""Throughput of every attack on mnist-cw: adversarial examples per second and gradient
evaluations per example at several batch sizes, on the same examples, with the ASR that says
whether the comparison is at equal quality (100%).

Seconds are CPU seconds of this process on a CPU device (one intra-op thread: an idle
machine's wall time, hardly changed by other processes on shared cores) and wall seconds on a
GPU; wall seconds are reported beside them. ``model_share``: the part of them spent in the
model's forward and backward passes (the rest is the solver and the search's bookkeeping);
``peak_gpu_mib``: ``torch.cuda.max_memory_allocated`` of the run, on a GPU.

Batch b > 1: all ``n`` examples attacked in chunks of b (each chunk one call, as a user would).
Batch 1: ``single`` evenly spaced examples attacked one at a time; their seconds per gradient
evaluation times the mean gradient evaluations per example of all ``n`` examples (per-sample
searches do not depend on the batch) gives the extrapolated seconds per example.

    python benchmarks/throughput.py [--full] [--device cpu] [--threads 1]
                                    [--attacks A,B] [--batches 180,1000] [--n 1000]
    quick (default): n = 8, batches 1 and 8, 1 single example
    --full:          n = 180, batches 1, 32 and 180, 8 single examples

``strattack-uncompacted`` is StrAttack with ``solver.compact_below = 0``: every solve runs its
whole batch to the end (the model and the solver on the rows that have stopped too).
``strattack-long`` is the previous round's defaults (about 450 evaluations per example).
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence

import torch

import benchutil as common
import attrs

from attacks import CWL2, EAD, FGM, IFGSM, Attack, AttackResult, StrAttack
from attacks.builtin import builtin_spec
from attacks.models import load_model


def uncompacted(name: str):
    """The built-in spec ``name`` without batch compaction (``solver.compact_below = 0``)."""
    spec = builtin_spec(name)
    return attrs.evolve(spec, solver=attrs.evolve(spec.solver, compact_below=0.0))


ATTACKS: Dict[str, Callable] = {
    "strattack": lambda m: StrAttack(m),
    "strattack-uncompacted": lambda m: Attack(m, uncompacted("strattack")),
    # the previous round's defaults (τ = 2, search 250 + 500 rescue, refine 200)
    "strattack-long": lambda m: Attack(m, builtin_spec("strattack-long")),
    # the previous defaults' algorithm (binary search, 3% refine for 400): the baseline
    "strattack-paper": lambda m: Attack(m, builtin_spec("strattack-paper")),
    "strattack-overlap": lambda m: StrAttack(m, overlapping=True),
    "cw-l2": lambda m: CWL2(m),
    "ead": lambda m: EAD(m),
    "ifgsm": lambda m: IFGSM(m),
    "fgm": lambda m: FGM(m),
}
QUICK = dict(n=8, batches=(1, 8), single=1)
FULL = dict(n=180, batches=(1, 32, 180), single=8)
COLUMNS = ("attack", "batch", "examples", "asr", "examples_per_s", "seconds_per_example",
           "gradient_evals_per_example", "model_grad_rows_per_example", "model_share",
           "peak_gpu_mib", "l2", "l0")


def attack_in_chunks(attack, x, y, t, batch: int) -> AttackResult:
    """All examples, ``batch`` at a time, each chunk one call of the attack."""
    return AttackResult.concat(attack(x[i:i + batch], y[i:i + batch], targets=t[i:i + batch])
                               for i in range(0, x.shape[0], batch))


def _row(name, batch, result: AttackResult, seconds, wall, model, device) -> dict:
    s = result.summary()
    n = len(result)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"attack": name, "batch": batch, "examples": n, "asr": s["asr"],
            "seconds": seconds, "wall_seconds": wall, "seconds_per_example": seconds / n,
            "examples_per_s": n / seconds, "gradient_evals_per_example": s["gradient_evals"],
            "model_grad_rows_per_example": model.grad_rows / n,
            "model_share": model.model_seconds / seconds, "peak_gpu_mib": peak,
            "l2": s["l2"], "l0": s["l0"], "extrapolated": False}


def _measured(fn, counted, device):
    """``common.timed(fn)`` from a fresh count (and peak of GPU memory)."""
    counted.reset()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return common.timed(fn, device)


def measure(name: str, factory: Callable, model, x, y, t, batches: Sequence[int], single: int,
            device) -> list:
    """One row per batch size for one attack (see the module docstring)."""
    counted = common.CountingModel(model)
    attack = factory(counted)
    rows = {}
    for b in sorted(batches, reverse=True):  # the large batches first: they give the mean evals
        if b > 1:
            result, sec, wall = _measured(lambda: attack_in_chunks(attack, x, y, t, b), counted,
                                          device)
            rows[b] = _row(name, b, result, sec, wall, counted, device)
            continue
        pick = torch.linspace(0, x.shape[0] - 1, single).round().long().unique().to(x.device)
        result, sec, wall = _measured(
            lambda: attack_in_chunks(attack, x[pick], y[pick], t[pick], 1), counted, device)
        row = _row(name, 1, result, sec, wall, counted, device)
        evals = float(result.gradient_evals.double().sum())
        mean_evals = rows[max(rows)]["gradient_evals_per_example"] if rows else evals / len(result)
        per_example = sec / evals * mean_evals
        row.update(seconds_per_eval=sec / evals, seconds_per_example=per_example,
                   examples_per_s=1 / per_example, extrapolated=bool(rows),
                   extrapolated_with_evals=mean_evals)
        rows[1] = row
    return [rows[b] for b in batches]


def ratios(rows: list, batches: Sequence[int]) -> dict:
    """Ratios measured in this run: speed-up of the largest batch over batch 1 per attack, and
    time / gradient evaluations per example of each attack relative to cw-l2 per batch."""
    by = {(r["attack"], r["batch"]): r for r in rows}
    names = list(dict.fromkeys(r["attack"] for r in rows))  # in order of appearance
    out = {}
    lo, hi = min(batches), max(batches)
    for a in names:
        if lo != hi:
            out[f"{a}: examples/s batch {hi} / batch {lo}"] = (
                by[a, hi]["examples_per_s"] / by[a, lo]["examples_per_s"])
    if "strattack" in names and "strattack-uncompacted" in names:
        for b in batches:  # batch compaction on (the default) against off, same examples
            out[f"strattack / strattack-uncompacted: examples/s batch {b}"] = (
                by["strattack", b]["examples_per_s"]
                / by["strattack-uncompacted", b]["examples_per_s"])
    if "strattack" in names and "strattack-paper" in names:
        for b in batches:  # the new defaults against the previous ones, same examples
            out[f"strattack / strattack-paper: examples/s batch {b}"] = (
                by["strattack", b]["examples_per_s"] / by["strattack-paper", b]["examples_per_s"])
    if "cw-l2" in names:
        for a in names:
            if a == "cw-l2":
                continue
            for b in batches:
                out[f"{a} / cw-l2: seconds per example, batch {b}"] = (
                    by[a, b]["seconds_per_example"] / by["cw-l2", b]["seconds_per_example"])
            out[f"{a} / cw-l2: gradient evals per example"] = (
                by[a, hi]["gradient_evals_per_example"]
                / by["cw-l2", hi]["gradient_evals_per_example"])
    return out


def bench(full: bool = False, device: str = "cpu", threads: int = 1, *, n=None, batches=None,
          single=None, attacks: Dict[str, Callable] = ATTACKS, data: str = "mnist-heldout",
          model_name: str = "mnist-cw") -> dict:
    cfg = dict(FULL if full else QUICK)
    cfg.update({k: v for k, v in dict(n=n, batches=batches, single=single).items()
                if v is not None})
    if any(not isinstance(b, int) or b <= 0 for b in cfg["batches"]):
        raise ValueError(f"batches must be positive integers; got {cfg['batches']!r}")
    dev = common.setup(device, threads)
    model = load_model(model_name, device=dev)
    x, y, t = common.examples(data, cfg["n"], dev)
    common.warm_up(model, x)
    rows = []
    for name, factory in attacks.items():
        rows += measure(name, factory, model, x, y, t, cfg["batches"], cfg["single"], dev)
    full_quality = [a for a in attacks
                    if all(r["asr"] == 100.0 for r in rows if r["attack"] == a)]
    notes = [f"{model_name} on the first {cfg['n']} images of {data}, one seeded random target "
             f"each; batch 1 measured on {cfg['single']} of them one at a time and extrapolated "
             "by gradient evaluations",
             "ASR 100% at every batch (equal quality): " + (", ".join(full_quality) or "none"),
             "gradient evals: the attack's own count per example; model grad rows: rows the "
             "model actually ran forward+backward (includes samples frozen inside a batch)"]
    return {"benchmark": "throughput", "config": {**cfg, "data": data, "model": model_name},
            "provenance": common.provenance(dev, threads), "rows": rows,
            "ratios": ratios(rows, cfg["batches"]), "equal_quality": full_quality,
            "notes": notes}


if __name__ == "__main__":
    p = common.parser(__doc__)
    p.add_argument("--attacks", help=f"comma list of {', '.join(ATTACKS)} (default: all)")
    p.add_argument("--batches", help="comma list of batch sizes (default: the preset's)")
    p.add_argument("--n", type=int, help="examples (default: the preset's)")
    a = p.parse_args()
    chosen = ATTACKS if a.attacks is None else {k: ATTACKS[k] for k in a.attacks.split(",")}
    sizes = None if a.batches is None else tuple(int(b) for b in a.batches.split(","))
    common.emit(bench(a.full, a.device, a.threads, n=a.n, batches=sizes, attacks=chosen),
                COLUMNS)
