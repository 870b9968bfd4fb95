"""GPU figures in one run: examples per second of StrAttack and cw-l2 at batch 180 and 1,000
on MNIST, CIFAR-10 and a 224×224 model, with the peak GPU memory and the share of the time
spent in the model's forward+backward passes (:mod:`throughput`'s rows).

    python benchmarks/gpu_check.py [--device cuda] [--minutes 4] [--out FILE.json]
                                   [--n 1000] [--batches 180,1000]   (smaller: a smoke test)

Cases (1,000 examples each, one seeded random target per example):

    mnist     mnist-cw on the 1,000 images of mnist-heldout, the attacks' defaults
    cifar10   cifar10-cnn on the 20 images of cifar10-test20, each 50 times (other targets)
    224px     a ResNet-18-shaped model (random weights, TorchScript) on random 224×224
              images; ``search.budget`` = 20 gradient evaluations per example (the figure
              is the time per evaluation at these batch sizes, not a full attack)

A case that does not fit in memory gives a row saying so; when ``--minutes`` have passed no
further case starts. ``benchmarks/gpu_check.sh`` runs this, ``make bench`` on the GPU and the
test suite's CUDA variants in one go.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

import benchutil as common
import throughput
from attacks import CWL2, StrAttack
from attacks.data import load_dataset
from attacks.models import load_model
from attacks.targets import expand_targets
from budget import ResNet18Shaped

BATCHES = (180, 1000)
N = 1000
BUDGET_224 = 20


def mnist(device, n: int):
    x, y, t = common.examples("mnist-heldout", n, device)
    return load_model("mnist-cw", device=device), x, y, t, {}


def cifar10(device, n: int):
    x, y = load_dataset("cifar10-test20")
    reps = -(-n // x.shape[0])
    x, y = x.repeat(reps, 1, 1, 1)[:n], y.repeat(reps)[:n]
    _, tg = expand_targets(y, 10, "random", 0)
    return load_model("cifar10-cnn", device=device), x.to(device), y.to(device), \
        tg.targets.to(device), {}


def px224(device, n: int):
    torch.manual_seed(0)
    net = torch.jit.script(ResNet18Shaped().eval()).to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.rand(n, 3, 224, 224, device=device)
    with torch.no_grad():
        y = torch.cat([net(x[i:i + 100]).argmax(1) for i in range(0, n, 100)])
    _, tg = expand_targets(y, 1000, "random", 0)
    return net, x, y, tg.targets, {"budget": BUDGET_224}


CASES = {"mnist": mnist, "cifar10": cifar10, "224px": px224}


def bench(device: str = "cuda", minutes: float = 4.0, n: int = N, batches=BATCHES) -> dict:
    dev = common.setup(device, 1)
    start, rows, notes = time.perf_counter(), [], []
    for case, load in CASES.items():
        if time.perf_counter() - start > 60 * minutes:
            notes.append(f"{case}: not started, {minutes} minutes had passed")
            continue
        model, x, y, t, kw = load(dev, n)
        common.warm_up(model, x)
        attacks = {"strattack": lambda m: StrAttack(m, **kw), "cw-l2": lambda m: CWL2(m, **kw)}
        for name, factory in attacks.items():
            try:
                found = throughput.measure(name, factory, model, x, y, t, batches, 0, dev)
            except torch.cuda.OutOfMemoryError as e:
                found = [{"attack": name, "error": f"out of memory: {str(e).splitlines()[0]}"}]
            rows += [{"case": case, **r} for r in found]
            print(json.dumps(common.jsonable(rows[-1])), flush=True)
        del model, x, y, t
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return {"benchmark": "gpu_check", "provenance": common.provenance(dev, 1), "rows": rows,
            "ratios": {}, "notes": notes + [f"224px: search.budget {BUDGET_224}"],
            "wall_seconds": time.perf_counter() - start}


COLUMNS = ("case", "attack", "batch", "examples", "asr", "examples_per_s",
           "gradient_evals_per_example", "model_share", "peak_gpu_mib", "error")

if __name__ == "__main__":
    p = common.parser(__doc__, full=None, threads=False)
    p.set_defaults(device="cuda")
    p.add_argument("--minutes", type=float, default=4.0, help="start no case after this")
    p.add_argument("--out", help="also write the report to this JSON file")
    p.add_argument("--n", type=int, default=N, help="examples per case")
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    a = p.parse_args()
    try:
        common.setup(a.device, 1)
    except ValueError as e:
        p.exit(2, f"error: --device {a.device}: {e}\n")
    report = bench(a.device, a.minutes, a.n, tuple(int(b) for b in a.batches.split(",")))
    common.emit(report, COLUMNS)
    if a.out:
        Path(a.out).write_text(json.dumps(common.jsonable(report), indent=2))
