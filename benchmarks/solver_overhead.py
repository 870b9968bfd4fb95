"""The solver's own per-iteration work as a ratio of one forward+backward of the model.

Both are measured in the same run, on the same device, at the same batch: the StrAttack
problem (γ||δ||² + τ Σ||δ_G|| + box) on MNIST-sized inputs with the zoo's C&W MNIST CNN.
Solver-only time is an iteration whose smooth term costs nothing (a linear function), so
everything left is x-steps, z-step, dual step and freezing. Each figure is the fastest of a few
rounds, in CPU seconds of this process on a CPU device (wall seconds on a GPU), so that other
processes sharing the cores disturb it as little as possible.

    python benchmarks/solver_overhead.py [--full] [--batch 180] [--device cpu]
    quick (default): 10 iterations, 2 rounds per figure; --full: 30 iterations, 5 rounds
"""

from __future__ import annotations


import torch

import benchutil as common
from admmkit.smooth import Smooth
from admmkit.solver import LinearizedADMM
from attacks.builtin import builtin_spec
from attacks.models import load_model
from attacks.problems import attack_problem, loss_term, term_blocks
from attacks.spec import valid_box
from attacks.targets import Targets


def per_call(fn, calls: int, rounds: int, device) -> float:
    """Seconds per call of ``fn``: the fastest of ``rounds`` timings of ``calls`` calls each,
    after a warm-up call (the minimum is the figure least disturbed by other processes)."""
    fn()
    return min(common.timed(lambda: [fn() for _ in range(calls)], device)[1]
               for _ in range(rounds)) / calls


def measure(batch: int, device: str, iters: int, spec_name: str = "strattack",
            rounds: int = 3) -> dict:
    """Per iteration: one model forward+backward, the solver alone, and a full iteration."""
    dev = torch.device(device)
    torch.manual_seed(0)
    model = load_model("mnist-cw", device=device)
    x0 = torch.rand(batch, 1, 28, 28, device=dev)
    labels = torch.randint(0, 10, (batch,), device=dev)
    targets = (labels + 1) % 10
    targeted = torch.ones(batch, dtype=torch.bool, device=dev)
    c = torch.full((batch,), 0.5, device=dev)
    spec = builtin_spec(spec_name)
    smooth = loss_term(model, x0, Targets(labels, targets, targeted), c, 0.0)
    blocks, box = term_blocks(spec, tuple(x0.shape[1:])), valid_box(x0, spec.eps)
    problem = lambda f: attack_problem(spec, blocks, box, f)
    z = 0.01 * torch.randn_like(x0)
    weights = torch.randn_like(x0)
    free = Smooth(lambda z, rows: ((weights if rows is None else weights.index_select(0, rows))
                                   * z).flatten(1).sum(1), indexed=True)  # a constant gradient
    solver = LinearizedADMM(spec.solver.settings(iters))
    t_model = per_call(lambda: smooth.value_and_grad(z), iters, rounds, dev)
    t_free = per_call(lambda: solver.solve(problem(free), z), 1, rounds,
                      dev) / iters
    t_grad_free = per_call(lambda: free.value_and_grad(z), iters, rounds, dev)
    t_full = per_call(lambda: solver.solve(problem(smooth), z), 1, rounds,
                      dev) / iters
    solver_only = t_free - t_grad_free
    return {"spec": spec_name, "batch": batch, "device": str(dev), "iters": iters,
            "rounds": rounds, "model_fwd_bwd_ms": 1e3 * t_model,
            "solver_only_ms": 1e3 * solver_only, "full_iteration_ms": 1e3 * t_full,
            "solver_over_model": solver_only / t_model,
            "full_over_model": t_full / t_model - 1}


SPECS = ("strattack", "strattack-overlap", "cw-l2", "ead")
COLUMNS = ("spec", "batch", "model_fwd_bwd_ms", "solver_only_ms", "full_iteration_ms",
           "solver_over_model", "full_over_model")


def bench(full: bool = False, device: str = "cpu", threads: int = 1, *, batch: int = 180,
          iters=None, rounds=None, specs=SPECS) -> dict:
    dev = common.setup(device, threads)
    iters, rounds = iters or (30 if full else 10), rounds or (5 if full else 2)
    rows = [measure(batch, str(dev), iters, name, rounds) for name in specs]
    return {"benchmark": "solver_overhead",
            "config": {"batch": batch, "iters": iters, "rounds": rounds},
            "provenance": common.provenance(dev, threads), "rows": rows,
            "ratios": {f"{r['spec']}: solver only / model fwd+bwd": r["solver_over_model"]
                       for r in rows},
            "notes": ["the solver's own per-iteration work (x-steps, z-step, dual step, "
                      f"freezing) over one forward+backward of mnist-cw at batch {batch}; "
                      "target <= 0.05"]}


if __name__ == "__main__":
    p = common.parser(__doc__)
    p.add_argument("--batch", type=int, default=180)
    a = p.parse_args()
    common.emit(bench(a.full, a.device, a.threads, batch=a.batch), COLUMNS)
