"""This project's C&W-ℓ2 (and StrAttack, for context) against torchattacks' ``CW``, on the same
model, images and targets: ASR, mean ℓ2 and ℓ0, wall time and model gradient rows.

torchattacks' CW (3.5.1) optimises ``||x' − x||² + c·f(x')`` over ``x' = (tanh(w) + 1)/2`` with
Adam from ``w = atanh(2x − 1)``, a fixed ``c`` (no binary search) and an early stop when the
batch's total cost rises. A pixel at exactly 0 or 1 starts at ``w = ∓∞``, where ``tanh`` has
zero gradient, so it can never change: ``saturated_moved`` measures that (the fraction of
the successful examples' pixels at 0 or 1 that the attack changed).

Each case runs torchattacks at its defaults (c=1, κ=0, 50 steps, lr 0.01) and at a larger
budget (the case's ``budget``: on CIFAR-10 the smallest tried that reaches 100%; on MNIST none
tried does — the row is the best found); ``--full`` adds the other budgets tried (``search``)
and StrAttack for context. Success is checked here for every attack by the same fresh forward
pass (argmax == target). Seconds: CPU seconds of this process on a CPU device, wall seconds
on a GPU (see benchutil.timed). Quick (default): MNIST, 8 images; ``--full``: MNIST 50, CIFAR-10 20.

torchattacks is imported from ``.cache/compat`` (``python tools/fetch_compat.py``, which
``make test`` runs; never from the venv, see benchutil.compat_libraries), as the budget
benchmark's peers are. Without it: a message, no rows.

    python benchmarks/vs_torchattacks.py [--full] [--case mnist|cifar10]
                                         [--budgets C,STEPS,LR ...] [--device cpu]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch

import benchutil as common
from attacks import CWL2, StrAttack
from attacks.models import load_model

PINNED = common.COMPAT_VERSIONS["torchattacks"]
DEFAULTS = {"c": 1.0, "steps": 50, "lr": 0.01}  # torchattacks.CW's own defaults (κ = 0)
CASES = {  # budget: the one reported; search: the others tried in --full runs
    "mnist": {"model": "mnist-cw", "data": "mnist-heldout",
              "budget": {"c": 100.0, "steps": 1000, "lr": 0.1},
              "search": [{"c": 1.0, "steps": 1000, "lr": 0.01},
                         {"c": 10.0, "steps": 1000, "lr": 0.1},
                         {"c": 1e4, "steps": 1000, "lr": 0.1}]},
    "cifar10": {"model": "cifar10-cnn", "data": "cifar10-test20",
                "budget": {"c": 1.0, "steps": 200, "lr": 0.01},
                "search": [{"c": 1.0, "steps": 1000, "lr": 0.01},
                           {"c": 10.0, "steps": 200, "lr": 0.01}]},
}
QUICK_CASES = ("mnist",)
QUICK_N = {"mnist": 8, "cifar10": 4}
FULL_N = {"mnist": 50, "cifar10": 20}
COLUMNS = ("case", "attack", "settings", "asr", "l2", "l0", "seconds",
           "model_grad_rows_per_example", "saturated_moved")

Runner = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def torchattacks_cw(module, c: float, steps: int, lr: float) -> Runner:
    """A runner for torchattacks' CW, targeted at our targets (passed as its labels)."""
    def run(model, x, y, t):
        attack = module.CW(model, c=c, kappa=0, steps=steps, lr=lr)
        attack.set_mode_targeted_by_label(quiet=True)
        return attack(x, t)
    return run


def ours(factory) -> Runner:
    return lambda model, x, y, t: factory(model)(x, y, targets=t).adversarial


def score(name: str, settings: str, run: Runner, model, x, y, t, device) -> dict:
    """Run one attack and measure it the same way for everyone."""
    counted = common.CountingModel(model)
    adv, seconds, wall = common.timed(lambda: run(counted, x, y, t), device)
    if model.training:
        raise RuntimeError(f"{name} left the model in training mode; its success check would "
                           "run with dropout/batch-norm updates")
    ok = common.targeted_success(model, adv, t)
    saturated = ((x == 0) | (x == 1))[ok]
    moved = ((adv - x).abs() > 1e-7)[ok] & saturated
    return {"attack": name, "settings": settings, "examples": x.shape[0],
            "asr": 100.0 * float(ok.float().mean()), **common.distortion(x, adv, ok),
            "seconds": seconds, "wall_seconds": wall,
            "model_grad_rows_per_example": counted.grad_rows / x.shape[0],
            "saturated_moved": float(moved.sum()) / max(int(saturated.sum()), 1),
            "_success": ok, "_delta_l2": (adv - x).flatten(1).norm(dim=1)}


def common_l2_ratio(a: dict, b: dict) -> float:
    """Mean ℓ2 of ``a`` / mean ℓ2 of ``b`` over the examples both attacked successfully."""
    both = a["_success"] & b["_success"]
    if not both.any():
        return float("nan")
    return float(a["_delta_l2"][both].mean() / b["_delta_l2"][both].mean())


def compare(case: str, runners: Sequence[tuple], model, x, y, t, device,
            reference: str = "cw-l2") -> tuple:
    """Score every ``(name, settings, runner)`` on the same examples; ratios of each to
    ``reference`` (ℓ2 on the common successes, wall time)."""
    rows = [dict(case=case, **score(name, settings, run, model, x, y, t, device))
            for name, settings, run in runners]
    ref = next(r for r in rows if r["attack"] == reference)
    ratios = {}
    for r in rows:
        if r is ref:
            continue
        key = f"{case}: {r['attack']} ({r['settings']}) / {reference}"
        ratios[f"{key}: l2 on common successes"] = common_l2_ratio(r, ref)
        ratios[f"{key}: seconds"] = r["seconds"] / ref["seconds"]
    return rows, ratios


def _fmt(b: dict) -> str:
    return f"c={b['c']:g}, steps={b['steps']}, lr={b['lr']:g}"


def bench(full: bool = False, device: str = "cpu", threads: int = 1, *,
          cases: Optional[Sequence[str]] = None, n: Optional[Dict[str, int]] = None,
          budgets: Optional[Sequence[dict]] = None, ours_factories=None,
          compat: Optional[Path] = None) -> dict:
    """The comparison, with torchattacks from ``compat`` (default benchutil.COMPAT)."""
    with common.compat_libraries(compat) as (libs, why):
        if libs is None:
            return {"benchmark": "vs_torchattacks", "rows": [], "ratios": {},
                    "skipped": f"torchattacks {PINNED} not available: {why}", "notes": []}
        return _bench(libs.torchattacks, full, device, threads, cases, n, budgets,
                      ours_factories)


def _bench(ta, full, device, threads, cases, n, budgets, ours_factories) -> dict:
    cases = cases or (tuple(CASES) if full else QUICK_CASES)
    for case in cases:
        if case not in CASES:
            raise ValueError(f"case must be one of {sorted(CASES)}; got {case!r}")
    dev = common.setup(device, threads)
    sizes = {**(FULL_N if full else QUICK_N), **(n or {})}
    factories = ours_factories or ({"cw-l2": CWL2, "strattack": StrAttack} if full
                                   else {"cw-l2": CWL2})
    rows, ratios = [], {}
    for case in cases:
        cfg = CASES[case]
        model = load_model(cfg["model"], device=dev)
        x, y, t = common.examples(cfg["data"], sizes[case], dev)
        common.warm_up(model, x)
        runners = [(name, "defaults", ours(f)) for name, f in factories.items()]
        tried = budgets or [cfg["budget"]] + (cfg["search"] if full else [])
        runners += [("torchattacks-cw", _fmt(b), torchattacks_cw(ta, **b))
                    for b in [DEFAULTS, *tried]]
        r, q = compare(case, runners, model, x, y, t, dev)
        rows += r
        ratios.update(q)
    version = getattr(ta, "__version__", "unknown")
    notes = [f"torchattacks {version} from .cache/compat; targeted, one seeded random target "
             "per image, the same for every attack; success re-checked by one forward pass",
             "saturated_moved: fraction of the successful examples' pixels at exactly 0 or 1 "
             "that changed (torchattacks' tanh start cannot move them)",
             "torchattacks' early stop compares the whole batch's cost every steps/10 steps, "
             "so its result depends on the batch: here each case's images form one batch"]
    for r in rows:
        r.pop("_success"), r.pop("_delta_l2")
    return {"benchmark": "vs_torchattacks", "config": {"cases": list(cases), "n": sizes},
            "provenance": {**common.provenance(dev, threads), "torchattacks": version},
            "rows": rows, "ratios": ratios, "notes": notes}


def _budget(text: str) -> dict:
    try:
        c, steps, lr = text.split(",")
        return {"c": float(c), "steps": int(steps), "lr": float(lr)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"a budget is C,STEPS,LR (e.g. 100,1000,0.1); "
                                         f"got {text!r}") from None


if __name__ == "__main__":
    p = common.parser(__doc__)
    p.add_argument("--case", choices=sorted(CASES), action="append")
    p.add_argument("-n", type=int, default=None, help="images per case")
    p.add_argument("--budgets", type=_budget, nargs="+", default=None,
                   help="torchattacks budgets to run instead of the case's own")
    a = p.parse_args()
    report = bench(a.full, a.device, a.threads, cases=a.case, budgets=a.budgets,
                   n={c: a.n for c in (a.case or CASES)} if a.n else None)
    common.emit(report, COLUMNS)
