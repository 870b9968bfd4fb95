"""What batch compaction saves: the solver's time per iteration once only a few rows still run.

A pure admmkit StrAttack-shaped problem (γ||δ||² + τ Σ||δ_G||₂ + the valid box, per-sample
bounds) on MNIST-sized inputs, a cheap per-row smooth term (no model: the engine already runs
the model on the live rows only, so what compaction saves is the solver's own steps). All rows
but ``long`` stop after ``short`` iterations (a callback's per-row caps, as the attack engine's),
the ``long`` ones go on to ``short + tail``. Timed in one run, the fastest of ``rounds``:

    head     ``short`` iterations of the whole batch
    whole    the capped solve without compaction
    compact  the same with ``compact_below=0.5`` (the loop goes on with the live rows)

The tail's time per iteration is ``(solve − head) / tail``; the ratio whole / compact is the
speed-up of an iteration once only the long rows run. The results are compared: the same
iterations per row, iterates equal up to the last bit of the smooth term's softplus.

    python benchmarks/compaction.py [--batch 180] [--long 4] [--device cpu]
"""

from __future__ import annotations

import argparse

import torch

import benchutil as common
from admmkit.groups import SlidingGroups
from admmkit.problem import Block, Problem
from admmkit.prox import BoxLinf, GroupL2, SquaredL2
from admmkit.smooth import Smooth
from admmkit.solver import ADMMSettings, LinearizedADMM


def problem_and_caps(batch: int, long: int, short: int, tail: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(batch, 1, 28, 28, generator=gen).to(device)
    w = torch.randn(batch, 1, 28, 28, generator=gen).to(device)

    def f(z, rows):
        ww = w if rows is None else w.index_select(0, rows)
        return torch.nn.functional.softplus((ww * z).flatten(1).sum(1))
    blocks = [Block(SquaredL2(1.0)), Block(GroupL2(2.0), SlidingGroups((1, 28, 28), 2, 2)),
              Block(BoxLinf(-x0, 1 - x0, 0.3), name="valid")]
    caps = torch.full((batch,), short, device=device)
    caps[torch.randperm(batch, generator=gen)[:long].to(device)] = short + tail
    return Problem(blocks, smooth=Smooth(f, indexed=True)), torch.zeros_like(x0), caps


def measure(batch: int, long: int, short: int, tail: int, device: torch.device,
            rounds: int) -> dict:
    problem, z0, caps = problem_and_caps(batch, long, short, tail, device)

    def capped(info):
        rows = slice(None) if info.rows is None else info.rows
        return info.state.iterations >= caps[rows]

    settings = ADMMSettings(max_iter=short + tail, tol_abs=0.0, tol_rel=0.0)
    runs = {"head": lambda: LinearizedADMM(settings, max_iter=short).solve(problem, z0),
            "whole": lambda: LinearizedADMM(settings).solve(problem, z0, callback=capped),
            "compact": lambda: LinearizedADMM(settings, compact_below=0.5).solve(
                problem, z0, callback=capped)}
    seconds, results = {}, {}
    for name, run in runs.items():
        run()  # warm-up
        timings = [common.timed(run, device) for _ in range(rounds)]
        results[name] = timings[0][0]
        seconds[name] = min(t[1] for t in timings)
    whole, compact = results["whole"], results["compact"]
    same_counts = torch.equal(whole.iterations, compact.iterations)
    diff = max(float((a - b).abs().max()) for a, b in zip([whole.z, *whole.xs, *whole.state.us],
                                                          [compact.z, *compact.xs,
                                                           *compact.state.us]))
    per_it = {k: (seconds[k] - seconds["head"]) / tail for k in ("whole", "compact")}
    return {"batch": batch, "long_rows": long, "short": short, "tail": tail,
            "head_ms_per_iteration": 1e3 * seconds["head"] / short,
            "tail_ms_per_iteration_whole": 1e3 * per_it["whole"],
            "tail_ms_per_iteration_compact": 1e3 * per_it["compact"],
            "solve_s_whole": seconds["whole"], "solve_s_compact": seconds["compact"],
            "tail_speedup": per_it["whole"] / per_it["compact"],
            "solve_speedup": seconds["whole"] / seconds["compact"],
            "same_iterations": same_counts, "max_abs_difference": diff}


COLUMNS = ("batch", "long_rows", "head_ms_per_iteration", "tail_ms_per_iteration_whole",
           "tail_ms_per_iteration_compact", "tail_speedup", "solve_speedup", "max_abs_difference")


def bench(full: bool = False, device: str = "cpu", threads: int = 1, *, batch: int = 180,
          long: int = 4, short: int = 20, tail: int = 200, rounds: int = 3) -> dict:
    """The measurement above (``full``: the same settings; the solver alone takes seconds)."""
    dev = common.setup(device, threads)
    row = measure(batch, long, short, tail, dev, rounds)
    return {"benchmark": "compaction",
            "config": {"batch": batch, "long": long, "short": short, "tail": tail,
                       "rounds": rounds},
            "provenance": common.provenance(dev, threads), "rows": [row],
            "ratios": {f"tail iteration, whole / compacted (batch {batch}, {long} long rows)":
                       row["tail_speedup"],
                       "capped solve, whole / compacted": row["solve_speedup"]},
            "notes": ["the solver alone (a model-free smooth term); the same iterations per "
                      f"row: {row['same_iterations']}; iterates differ by at most "
                      f"{row['max_abs_difference']:.2g} (the smooth term's softplus, evaluated "
                      "on SIMD lanes or a scalar tail by a row's position in the batch)"]}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=180)
    p.add_argument("--long", type=int, default=4)
    p.add_argument("--short", type=int, default=20)
    p.add_argument("--tail", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    common.emit(bench(device=a.device, threads=a.threads, batch=a.batch, long=a.long,
                      short=a.short, tail=a.tail, rounds=a.rounds), COLUMNS)
