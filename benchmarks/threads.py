"""CPU threads: wall time of one solve with 1 thread and with one per core, on a quiet and on a
loaded machine, all measured in this run.

"Loaded" starts one busy process per core (a pure-Python spin loop, as another user's job
would be) for the duration of those timings and stops it afterwards. The solve is StrAttack
on the zoo's mnist-cw with random targets, the workload of ``admm-attack solve``. Figures are
wall seconds (the point is contention, which CPU time of this process hides), the median of
``rounds`` timings; the ratios are threads=all over threads=1. The machine is never truly
quiet on a shared host: ``loadavg`` records what else ran.

    python benchmarks/threads.py [--full] [--threads-all N]
    quick (default): 2 images, 1 search step x 30 iterations, 3 rounds (about 1.5 min on 2 cores)
    --full: 4 images, 1 step x 60 iterations, 3 rounds (about 6 min on 2 cores)
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time

import torch

import benchutil as common
from attacks import StrAttack
from attacks.models import load_model
from attacks.runtime import TORCH_DEFAULT_THREADS, default_threads
from attacks.spec import BinarySearch, SearchSpec

COLUMNS = ("load", "threads", "seconds", "rounds", "loadavg")


@contextlib.contextmanager
def busy(processes: int):
    """``processes`` CPU-bound spin loops running while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.5)  # let them get scheduled
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def solve_seconds(threads: int, n: int, steps: int, iterations: int, rounds: int) -> float:
    torch.set_num_threads(threads)
    model = load_model("mnist-cw")
    x, y, _ = common.examples("mnist-test20", n, torch.device("cpu"))
    attack = StrAttack(model, refine=False, search=SearchSpec(
        iterations=iterations, sections=[BinarySearch(steps=steps)]))
    attack(x[:1], y[:1], targets="random")  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        attack(x, y, targets="random")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(full: bool = False, device: str = "cpu", threads: int = 1, *, n=None, steps=None,
          iterations=None, rounds=None, threads_all=None, load_processes=None) -> dict:
    if device != "cpu":
        return {"benchmark": "threads", "rows": [], "ratios": {},
                "skipped": "CPU threads only matter on a CPU device"}
    n, steps = n or (4 if full else 2), steps or 1
    iterations, rounds = iterations or (60 if full else 30), rounds or 3
    cores = os.cpu_count() or 1
    threads_all = threads_all or max(TORCH_DEFAULT_THREADS, cores)
    load_processes = cores if load_processes is None else load_processes
    before = torch.get_num_threads()
    rows = []
    try:
        for load in ("quiet", "loaded"):
            ctx = busy(load_processes) if load == "loaded" else contextlib.nullcontext()
            with ctx:
                for t in (1, threads_all):
                    s = solve_seconds(t, n, steps, iterations, rounds)
                    rows.append({"load": load, "threads": t, "seconds": s, "rounds": rounds,
                                 "loadavg": round(os.getloadavg()[0], 2)})
    finally:
        torch.set_num_threads(before)
    sec = {(r["load"], r["threads"]): r["seconds"] for r in rows}
    ratios = {f"{load}: {threads_all} threads / 1 thread": sec[(load, threads_all)] / sec[(load, 1)]
              for load in ("quiet", "loaded")}
    ratios["loaded / quiet at 1 thread"] = sec[("loaded", 1)] / sec[("quiet", 1)]
    ratios[f"loaded / quiet at {threads_all} threads"] = sec[("loaded", threads_all)] / sec[("quiet", threads_all)]
    return {"benchmark": "threads",
            "config": {"n": n, "steps": steps, "iterations": iterations, "rounds": rounds,
                       "cores": cores, "threads_all": threads_all, "load_processes": load_processes},
            "provenance": common.provenance(torch.device("cpu"), threads_all),
            "rows": rows, "ratios": ratios,
            "notes": [f"StrAttack, {n} images, {steps} search step(s) x {iterations} iterations; "
                      f"'loaded' = {load_processes} spinning processes on {cores} cores",
                      f"default_threads() here = {default_threads()} (attacks.runtime)"]}


if __name__ == "__main__":
    p = common.parser(__doc__, device=False, threads=False)
    p.add_argument("--threads-all", type=int, default=None,
                   help="the 'all cores' count (default: torch's default or the CPU count)")
    a = p.parse_args()
    common.emit(bench(a.full, threads_all=a.threads_all), COLUMNS)
