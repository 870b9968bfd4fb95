"""Quality against a hard budget of gradient evaluations per example (``search.budget``).

Every ADMM attack at each budget on the same examples (each image against every other class):
ASR, median ℓ0, ℓ2, ℓ∞ and non-zero groups of the successes, mean gradient evaluations and
CPU seconds per example, and — the search tail — the largest per-example ratio of StrAttack's
ℓ2 to cw-l2's for the same image, target and budget. Written as a CSV and a PNG plot (log x).
Then the cost on an ImageNet-sized model: a 224×224 ResNet-18-shaped TorchScript model with
random weights (the subject is cost, not quality), 13×13 groups, StrAttack at its default
budget: seconds and peak memory per example.

The peers (torchattacks CW, foolbox EAD/C&W) are run only where they import; they are not
installed in this environment, which the report says.

    python benchmarks/budget.py [--full] [--device cpu] [--threads 1] [--out-dir DIR]
    quick (default): 2 images x 9 targets, budgets 100 and 500; ImageNet case 1 example, budget 50
    --full:          10 images x 9 targets, budgets 100, 200, 500, 1000, 2000; ImageNet case
                     2 examples at budget 500
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
from pathlib import Path
from typing import Callable, Dict, Sequence

import torch
from torch import Tensor, nn

import benchutil as common
from attacks import CWL2, EAD, StrAttack
from attacks.data import load_dataset
from attacks.models import load_model
from attacks.targets import expand_targets

ATTACKS: Dict[str, Callable] = {
    "strattack": lambda m, budget: StrAttack(m, budget=budget),
    "cw-l2": lambda m, budget: CWL2(m, budget=budget),
    "ead": lambda m, budget: EAD(m, budget=budget),
}
QUICK = dict(images=2, budgets=(100, 500), imagenet_examples=1, imagenet_budget=50)
FULL = dict(images=10, budgets=(100, 200, 500, 1000, 2000), imagenet_examples=2,
            imagenet_budget=500)
COLUMNS = ("attack", "budget", "examples", "asr", "evals_per_example", "seconds_per_example",
           "l0", "l2", "linf", "groups", "max_l2_ratio_to_cw")
PEERS = ("torchattacks", "foolbox")


def _median(v: Tensor, ok: Tensor) -> float:
    return float(v[ok].double().median()) if ok.any() else math.nan


def run_grid(model, x, y, budgets: Sequence[int], attacks: Dict[str, Callable], device):
    """One row per (attack, budget) on all ``x`` × all other targets; plus per-example ℓ2."""
    rows, l2 = [], {}
    for name, factory in attacks.items():
        for b in budgets:
            result, sec, wall = common.timed(lambda: factory(model, b)(x, y, targets="all"),
                                             device)
            ok, m = result.success, result.metrics
            n = len(result)
            l2[name, b] = m["l2"]
            rows.append({"attack": name, "budget": b, "examples": n,
                         "asr": 100.0 * float(ok.float().mean()),
                         "evals_per_example": float(result.gradient_evals.double().mean()),
                         "max_evals": int(result.gradient_evals.max()),
                         "seconds_per_example": sec / n, "wall_seconds": wall,
                         "l0": _median(m["l0"], ok), "l2": _median(m["l2"], ok),
                         "linf": _median(m["linf"], ok),
                         "groups": _median(m["groups_nonzero"], ok),
                         "mean_l2": float(m["l2"][ok].double().mean()) if ok.any() else math.nan})
    for row in rows:  # the search tail: worst per-example ℓ2 against cw-l2 at the same budget
        ref = l2.get(("cw-l2", row["budget"]))
        mine = l2[row["attack"], row["budget"]]
        both = torch.isfinite(mine) & torch.isfinite(ref) if ref is not None else None
        row["max_l2_ratio_to_cw"] = (float((mine[both] / ref[both]).max())
                                     if both is not None and both.any() else math.nan)
        row["mean_l2_ratio_to_cw"] = (float(mine[both].mean() / ref[both].mean())
                                      if both is not None and both.any() else math.nan)
    return rows


def write_csv(rows, path: Path) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def plot(rows, path: Path) -> bool:
    """ASR and median ℓ0, ℓ2, ℓ∞, groups against the budget (log x), one line per attack."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = ("asr", "l0", "l2", "linf", "groups")
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, key in zip(axes, panels):
        for name in dict.fromkeys(r["attack"] for r in rows):
            pts = [(r["evals_per_example"], r[key]) for r in rows if r["attack"] == name]
            ax.plot(*zip(*pts), marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("gradient evaluations / example")
        ax.set_title("ASR %" if key == "asr" else f"median {key}")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# -- the ImageNet-sized cost case ---------------------------------------------------------
class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.down(x))


class ResNet18Shaped(nn.Module):
    """The ResNet-18 layout (64-128-256-512 channels, 2 basic blocks each, 1000 classes)."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                  nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_Basic(cin, cout, stride), _Basic(cout, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def imagenet_case(n: int, device, budget: int = 500, seed: int = 0) -> dict:
    """StrAttack at ``budget`` on ``n`` random 224×224 images of a scripted ResNet-18-shaped
    model with random weights: seconds and peak memory per example."""
    import memory  # the benchmarks' peak-memory probe (CUDA allocator or CPU RSS growth)
    torch.manual_seed(seed)
    net = torch.jit.script(ResNet18Shaped().eval()).to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.rand(n, 3, 224, 224, device=device)
    with torch.no_grad():
        y = net(x).argmax(1)
    _, tg = expand_targets(y, 1000, "random", seed)
    attack = StrAttack(net, budget=budget)
    common.warm_up(net, x)
    (result, sec, wall), peak = memory.peak_bytes(
        lambda: common.timed(lambda: attack(x, y, targets=tg.targets), device), device)
    return {"attack": "strattack", "model": "resnet18-shaped (random weights, TorchScript)",
            "examples": n, "budget": budget, "asr": 100.0 * result.success_rate,
            "evals_per_example": float(result.gradient_evals.double().mean()),
            "seconds_per_example": sec / n, "wall_seconds": wall,
            "peak_mb_per_example": peak / 2 ** 20 / n,
            "groups": f"{attack.spec.groups((3, 224, 224)).size}"}


def bench(full: bool = False, device: str = "cpu", threads: int = 1, *, images=None,
          budgets=None, imagenet_examples=None, imagenet_budget=None, attacks: Dict[str, Callable] = ATTACKS,
          data: str = "mnist-heldout", model_name: str = "mnist-cw",
          out_dir: str | None = "runs/bench-budget") -> dict:
    cfg = dict(FULL if full else QUICK)
    cfg.update({k: v for k, v in dict(images=images, budgets=budgets,
                                      imagenet_examples=imagenet_examples,
                                      imagenet_budget=imagenet_budget).items()
                if v is not None})
    dev = common.setup(device, threads)
    model = load_model(model_name, device=dev)
    x, y = load_dataset(data, n=cfg["images"])
    x, y = x.to(dev), y.to(dev)
    common.warm_up(model, x)
    rows = run_grid(model, x, y, cfg["budgets"], attacks, dev)
    notes = [f"{model_name} on the first {cfg['images']} images of {data} x every other target; "
             "l0, l2, linf, groups: medians over the successes; max_l2_ratio_to_cw: the largest "
             "per-example ratio of the attack's l2 to cw-l2's for the same image, target and "
             "budget (the search tail)"]
    missing = [p for p in PEERS if importlib.util.find_spec(p) is None]
    if missing:
        notes.append(f"peers not run: {', '.join(missing)} not installed (bench extra)")
    extra = {}
    if cfg["imagenet_examples"]:
        extra["imagenet"] = imagenet_case(cfg["imagenet_examples"], dev, cfg["imagenet_budget"])
        notes.append(f"ImageNet-sized case on {dev.type}: {extra['imagenet']}")
    files = {}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "budget.csv")
        files["csv"] = str(out / "budget.csv")
        if plot(rows, out / "budget.png"):
            files["png"] = str(out / "budget.png")
    ratios = {f"{r['attack']} max l2 / cw-l2, budget {r['budget']}": r["max_l2_ratio_to_cw"]
              for r in rows if r["attack"] != "cw-l2"}
    ratios.update({f"{r['attack']} mean l2 / cw-l2, budget {r['budget']}": r["mean_l2_ratio_to_cw"]
                   for r in rows if r["attack"] != "cw-l2"})
    return {"benchmark": "budget", "config": {**cfg, "data": data, "model": model_name},
            "provenance": common.provenance(dev, threads), "rows": rows, "ratios": ratios,
            "notes": notes, "files": files, **extra}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--full", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--images", type=int, default=None)
    p.add_argument("--budgets", type=int, nargs="+", default=None)
    p.add_argument("--imagenet-examples", type=int, default=None)
    p.add_argument("--imagenet-budget", type=int, default=None)
    p.add_argument("--data", default="mnist-heldout")
    p.add_argument("--out-dir", default="runs/bench-budget")
    a = p.parse_args()
    common.emit(bench(a.full, a.device, a.threads, images=a.images, budgets=a.budgets,
                      imagenet_examples=a.imagenet_examples, imagenet_budget=a.imagenet_budget,
                      data=a.data, out_dir=a.out_dir),
                COLUMNS)
