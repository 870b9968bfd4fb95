"""Quality against a hard budget of gradient evaluations per example (``search.budget``), and
the peers at their own step counts.

Every ADMM attack (strattack, cw-l2, ead) at each budget on the same examples (each image
against every other class): ASR, median ℓ0, ℓ2, ℓ∞ and non-zero 2×2 groups of the
successes, mean gradient (and forward-only) evaluations and CPU seconds per example, and,
against cw-l2 at the closest budget, the largest per-example ratio of ℓ2 (the search tail)
and the ratio of mean ℓ2 on the common successes.

The peers run on the same examples in one batch where .cache/compat holds them
(``python tools/fetch_compat.py``; imported from there, never from the venv, see
benchutil.compat_libraries; without them the notes say so and only the project's rows are
written), each sized for a budget of the same grid, its settings in the ``settings`` column:

- torchattacks 3.5.1 ``CW``: c=100, lr=0.1 (vs_torchattacks' MNIST settings, the best found
  there; its tanh start cannot move pixels at exactly 0 or 1, so it misses targets on MNIST
  at any budget) with steps = the budget;
- foolbox 3.3.4 ``L2CarliniWagnerAttack``: 9 binary-search steps × budget // 9 steps, with
  stepsize 0.1 and its other defaults (its default stepsize 0.01 moves too little in tanh
  space: on 2 images it reached no target at 9 × 11 or 9 × 55 steps, and 94% at a median ℓ2
  of 2.4 at 9 × 222, where 0.1 reaches 100% at 1.5);
- foolbox 3.3.4 ``EADAttack``: 9 × budget // 9 steps at its defaults (β = 0.01, EN rule; one
  more forward pass per step, see ``forward_evals_per_example``).

Their gradient evaluations are measured, not taken from the settings: the model is wrapped in
benchutil.CountingModel and the rows it ran with autograd on are divided by the examples
(all three stop early, so they can spend less than their steps). Their success is re-checked
by a forward pass of our own on the returned images: in [0, 1] and finite, logits finite,
argmax == target, and not foolbox's all-zero "nothing found" placeholder (``zero_images``;
foolbox itself counts that blank image a success where the model puts it in the target class,
class 1 for mnist-cw). Their ℓ0, ℓ2, ℓ∞ and groups are computed from those images by
attacks.metrics.distortions with the default groups, NaN for failures, as for our rows.

Written as a CSV and a PNG plot against measured evaluations per example (log x; the peers
dashed). Then the cost on an ImageNet-sized model: a 224×224 ResNet-18-shaped TorchScript
model with random weights (the subject is cost, not quality), 13×13 groups, StrAttack at its
default budget: seconds and peak memory per example.

    python benchmarks/budget.py [--full] [--device cpu] [--threads 1] [--out-dir DIR]
                                [--images N] [--budgets B ...] [--peer-budgets [B ...]]
    quick (default): 2 images x 9 targets, budgets 100 and 500, the peers at 100 and 500;
                     ImageNet case 1 example, budget 50
    --full:          10 images x 9 targets, budgets 100, 200, 500, 1000, 2000, the peers at
                     all of them; ImageNet case 2 examples at the default budget
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

import benchutil as common
import vs_torchattacks
from attacks import CWL2, EAD, StrAttack
from attacks.data import load_dataset
from attacks.metrics import distortions
from attacks.models import load_model
from attacks.spec import GroupSpec
from attacks.targets import expand_targets

ATTACKS: Dict[str, Callable] = {
    "strattack": lambda m, budget: StrAttack(m, budget=budget),
    "cw-l2": lambda m, budget: CWL2(m, budget=budget),
    "ead": lambda m, budget: EAD(m, budget=budget),
}
QUICK = dict(images=2, budgets=(100, 500), peer_budgets=(100, 500), imagenet_examples=1,
             imagenet_budget=50)
FULL = dict(images=10, budgets=(100, 200, 500, 1000, 2000),
            peer_budgets=(100, 200, 500, 1000, 2000), imagenet_examples=2,
            imagenet_budget=None)  # None: the defaults
COLUMNS = ("attack", "budget", "settings", "examples", "asr", "evals_per_example",
           "seconds_per_example", "l0", "l2", "linf", "groups", "cw_budget",
           "max_l2_ratio_to_cw", "mean_l2_ratio_to_cw")
FOOLBOX_BINARY_STEPS = 9

# A peer: factory(libs, budget) -> (settings, runner); runner(model, x, labels, targets) -> images
Peer = Callable[[object, int], Tuple[str, Callable]]


def _settings(kw: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in kw.items())


def torchattacks_cw(libs, budget: int):
    """torchattacks' CW, ``budget`` Adam steps at vs_torchattacks' MNIST c and lr."""
    kw = {**vs_torchattacks.CASES["mnist"]["budget"], "steps": budget}
    return _settings(kw), vs_torchattacks.torchattacks_cw(libs.torchattacks, **kw)


def foolbox_attack(name: str, **fixed) -> Peer:
    """A peer running foolbox's ``name`` (targeted, ``epsilons=None``) with
    ``FOOLBOX_BINARY_STEPS`` binary-search steps × budget // that many steps and ``fixed``."""
    def factory(libs, budget: int):
        kw = {"binary_search_steps": FOOLBOX_BINARY_STEPS,
              "steps": max(1, budget // FOOLBOX_BINARY_STEPS), **fixed}

        def run(model, x, y, t):
            fb = libs.foolbox
            attack = getattr(fb.attacks, name)(**kw)
            _, adv, _ = attack(fb.PyTorchModel(model, bounds=(0, 1)), x,
                               fb.criteria.TargetedMisclassification(t), epsilons=None)
            return adv
        return _settings(kw), run
    return factory


PEERS: Dict[str, Peer] = {
    "torchattacks-cw": torchattacks_cw,
    "foolbox-cw": foolbox_attack("L2CarliniWagnerAttack", stepsize=0.1),
    "foolbox-ead": foolbox_attack("EADAttack"),
}

PEER_NOTE = ("peers: torchattacks {}, foolbox {} from {}, one batch of all the examples each "
             "(their early stops look at the whole batch's loss); budget: the grid point they "
             "were sized for, evals_per_example: the gradient rows counted on the model / "
             "examples; success and distortions from our own forward pass; zero_images: "
             "all-zero images returned (foolbox's 'nothing found'), counted as failures")


def _median(v: Tensor, ok: Tensor) -> float:
    return float(v[ok].double().median()) if ok.any() else math.nan


def _row(name: str, budget: int, settings: str, ok: Tensor, m: Dict[str, Tensor],
         evals: float, forward: float, sec: float, wall: float, **extra) -> dict:
    """One CSV row: ASR, evaluations, seconds and the successes' median distortions."""
    n = len(ok)
    return {"attack": name, "budget": budget, "settings": settings, "examples": n,
            "asr": 100.0 * float(ok.float().mean()), "evals_per_example": evals,
            "forward_evals_per_example": forward, **extra,
            "seconds_per_example": sec / n, "wall_seconds": wall,
            "l0": _median(m["l0"], ok), "l2": _median(m["l2"], ok),
            "linf": _median(m["linf"], ok), "groups": _median(m["groups_nonzero"], ok),
            "mean_l2": float(m["l2"][ok].double().mean()) if ok.any() else math.nan}


def run_grid(model, x, y, budgets: Sequence[int], attacks: Dict[str, Callable], device,
             index: Tensor, targets: Tensor):
    """One row per (attack, budget) on all ``x`` × all other targets (``index``, ``targets``:
    the expected order of the examples); plus each row's per-example ℓ2."""
    rows, l2 = [], {}
    for name, factory in attacks.items():
        for b in budgets:
            result, sec, wall = common.timed(lambda: factory(model, b)(x, y, targets="all"),
                                             device)
            if not (torch.equal(result.source_index, index)
                    and torch.equal(result.targets, targets)):
                raise RuntimeError(f"{name}: examples not in expand_targets' order")
            l2[name, b] = result.metrics["l2"]
            rows.append(_row(name, b, f"budget={b}", result.success, result.metrics,
                             float(result.gradient_evals.double().mean()),
                             float(result.forward_evals.double().mean()), sec, wall,
                             max_evals=int(result.gradient_evals.max())))
    return rows, l2


def verified(model: nn.Module, x: Tensor, adv: Tensor, targets: Tensor) -> Tensor:
    """Our own check of a peer's returned images ``adv`` for ``x``: (B,) bool, True where the
    image is in [0, 1] and finite, the model's logits are finite with argmax == target, and the
    image is not foolbox's all-zero placeholder for "nothing found"."""
    if adv.shape != x.shape:
        raise RuntimeError(f"a peer returned shape {tuple(adv.shape)} for {tuple(x.shape)}")
    with torch.no_grad():
        logits = model(adv)
    flat = adv.flatten(1)
    valid = torch.isfinite(flat).all(1) & (flat >= 0).all(1) & (flat <= 1).all(1)
    return (valid & ~_zero_image(x, adv) & torch.isfinite(logits).all(1)
            & (logits.argmax(1) == targets))


def _zero_image(x: Tensor, adv: Tensor) -> Tensor:
    """(B,) bool: ``adv`` is all zeros where ``x`` is not (foolbox's "nothing found")."""
    return (adv.flatten(1) == 0).all(1) & (x.flatten(1) != 0).any(1)


def run_peers(libs, model, x, y, budgets: Sequence[int], peers: Dict[str, Peer], device,
              index: Tensor, targets: Tensor):
    """One row per (peer, budget) on the same examples as :func:`run_grid`, in one batch:
    evaluations counted on the model, success and distortions from our own forward pass."""
    xs, ys = x[index], y[index]
    groups = GroupSpec().resolve(tuple(x.shape[1:]))
    rows, l2 = [], {}
    for name, factory in peers.items():
        for b in budgets:
            settings, run = factory(libs, b)
            counted = common.CountingModel(model)
            adv, sec, wall = common.timed(lambda: run(counted, xs, ys, targets), device)
            if model.training:
                raise RuntimeError(f"{name} left the model in training mode")
            adv = adv.detach()
            ok = verified(model, xs, adv, targets)
            m = {k: v.masked_fill(~ok, math.nan)
                 for k, v in distortions(adv - xs, groups).items()}
            l2[name, b] = m["l2"]
            n = len(ok)
            rows.append(_row(name, b, settings, ok, m, counted.grad_rows / n,
                             (counted.rows - counted.grad_rows) / n, sec, wall,
                             zero_images=int(_zero_image(xs, adv).sum())))
    return rows, l2


def add_l2_ratios(rows, l2: Dict[tuple, Tensor]) -> None:
    """Each row against cw-l2 at the closest budget (log scale; the same budget for the
    project's attacks), per example: the largest ratio of ℓ2 (the search tail) and the ratio
    of mean ℓ2 on the examples both attacked successfully (NaN without one)."""
    cw = [b for a, b in l2 if a == "cw-l2"]
    for row in rows:
        ref_b = min(cw, key=lambda b: abs(math.log(b / row["budget"]))) if cw else None
        mine = l2[row["attack"], row["budget"]]
        ref = l2["cw-l2", ref_b] if cw else torch.full_like(mine, math.nan)
        both = torch.isfinite(mine) & torch.isfinite(ref)
        row["cw_budget"] = ref_b
        row["max_l2_ratio_to_cw"] = (float((mine[both] / ref[both]).max())
                                     if both.any() else math.nan)
        row["mean_l2_ratio_to_cw"] = (float(mine[both].mean() / ref[both].mean())
                                      if both.any() else math.nan)


def write_csv(rows, path: Path) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def plot(rows, path: Path, dashed: Sequence[str] = tuple(PEERS)) -> bool:
    """ASR and median ℓ0, ℓ2, ℓ∞, groups against the measured evaluations (log x), one line
    per attack; ``dashed``: the peers."""
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
            ax.plot(*zip(*pts), marker="o", label=name,
                    linestyle="--" if name in dashed else "-")
        ax.set_xscale("log")
        ax.set_xlabel("gradient evaluations / example")
        ax.set_title("ASR %" if key == "asr" else f"median {key}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
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


def imagenet_case(n: int, device, budget: Optional[int] = None, seed: int = 0) -> dict:
    """StrAttack at ``budget`` (None: its defaults) on ``n`` random 224×224 images of a
    scripted ResNet-18-shaped model with random weights: seconds and peak memory per
    example."""
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
          budgets=None, peer_budgets=None, imagenet_examples=None, imagenet_budget=None,
          attacks: Dict[str, Callable] = ATTACKS, peers: Dict[str, Peer] = PEERS,
          data: str = "mnist-heldout", model_name: str = "mnist-cw",
          out_dir: str | None = "runs/bench-budget") -> dict:
    cfg = dict(FULL if full else QUICK)
    cfg.update({k: v for k, v in dict(images=images, budgets=budgets, peer_budgets=peer_budgets,
                                      imagenet_examples=imagenet_examples,
                                      imagenet_budget=imagenet_budget).items()
                if v is not None})
    dev = common.setup(device, threads)
    model = load_model(model_name, device=dev)
    x, y = load_dataset(data, n=cfg["images"])
    x, y = x.to(dev), y.to(dev)
    common.warm_up(model, x)
    with torch.no_grad():
        classes = model(x[:1]).shape[1]
    index, tg = expand_targets(y, classes, "all")
    rows, l2 = run_grid(model, x, y, cfg["budgets"], attacks, dev, index, tg.targets)
    notes = [f"{model_name} on the first {cfg['images']} images of {data} x every other target; "
             "l0, l2, linf, groups: medians over the successes; cw_budget: the cw-l2 budget "
             "closest to the row's; max_l2_ratio_to_cw: the largest per-example ratio of the "
             "attack's l2 to cw-l2's there for the same image and target (the search tail); "
             "mean_l2_ratio_to_cw: mean l2 / cw-l2's mean l2 on the common successes"]
    if peers and cfg["peer_budgets"]:
        with common.compat_libraries() as (libs, why):
            if libs is None:
                notes.append(f"peers not run: {why}")
            else:
                more, more_l2 = run_peers(libs, model, x, y, cfg["peer_budgets"], peers, dev,
                                          index, tg.targets)
                rows, l2 = rows + more, {**l2, **more_l2}
                notes.append(PEER_NOTE.format(libs.torchattacks.__version__,
                                              libs.foolbox.__version__, common.COMPAT))
    add_l2_ratios(rows, l2)
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
        if plot(rows, out / "budget.png", dashed=tuple(peers)):
            files["png"] = str(out / "budget.png")
    ratios = {f"{r['attack']} {kind} l2 / cw-l2, budget {r['budget']}": r[f"{kind}_l2_ratio_to_cw"]
              for kind in ("max", "mean") for r in rows if r["attack"] != "cw-l2"}
    return {"benchmark": "budget", "config": {**cfg, "data": data, "model": model_name},
            "provenance": common.provenance(dev, threads), "rows": rows, "ratios": ratios,
            "notes": notes, "files": files, **extra}


if __name__ == "__main__":
    p = common.parser(__doc__)
    p.add_argument("--images", type=int, default=None)
    p.add_argument("--budgets", type=int, nargs="+", default=None)
    p.add_argument("--peer-budgets", type=int, nargs="*", default=None,
                   help="the peers' budgets (none: no peers)")
    p.add_argument("--imagenet-examples", type=int, default=None)
    p.add_argument("--imagenet-budget", type=int, default=None)
    p.add_argument("--data", default="mnist-heldout")
    p.add_argument("--out-dir", default="runs/bench-budget")
    a = p.parse_args()
    common.emit(bench(a.full, a.device, a.threads, images=a.images, budgets=a.budgets,
                      peer_budgets=a.peer_budgets, imagenet_examples=a.imagenet_examples,
                      imagenet_budget=a.imagenet_budget, data=a.data, out_dir=a.out_dir),
                COLUMNS)
