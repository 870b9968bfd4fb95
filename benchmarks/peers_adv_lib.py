"""The modern minimum-norm and sparse attacks beside ours, and StrAttack's Pareto front in
(2×2 groups touched, ℓ2).

Peers: adv_lib 0.2.8 (Rony et al.), fetched into .cache/compat by ``python
tools/fetch_compat.py`` and imported from there, never from the venv; adv_lib imports
torchvision, visdom and tqdm for parts never called here (LPIPS, the live plots,
``run_attack``'s progress bar), so while it is imported each of them the venv lacks is a
stand-in module in ``sys.modules`` (:func:`stand_ins`), removed again afterwards. Each peer
is targeted (``targeted=True``, the labels are the targets) at adv_lib's defaults but for the
step count:

- ``fmn-l2``, ``fmn-l1``, ``fmn-l0``: FMN (Pintor et al. 2021), 1,000 steps;
- ``alma-l2``: ALMA (Rony et al. 2021), ``distance="l2"``, 1,000 steps;
- ``pdpgd-l1``, ``pdpgd-l0``: PDPGD (Matyasko & Chau 2021), 500 steps; ℓ0 with the ℓ2/3
  proximal operator (``proximal_operator=23``, which adv_lib's docstring prefers for ℓ0).

Ours: strattack, cw-l2, ead at their defaults, StrAttack (and its overlapping variant) swept
over τ, and two shipped specs (attacks/specs): ``strattack-group-l0`` (StrAttack with the
number of groups touched as a penalty λ·#{G : δ_G ≠ 0}, a block hard threshold) swept over λ,
and ``l1-attack`` (c·margin + ||δ||₁, refined), every one on the same examples (each image
against every other class) and the same counters as budget.py's peers: the peers run in one
batch on benchutil.CountingModel (gradient evaluations = rows run with autograd on /
examples), their success re-verified by budget.verified (our forward pass: in [0, 1], finite,
argmax == target); ``grid_ok``: the successes that still reach their target once rounded to
the 8-bit grid (ours are on the grid already). Distortions of every row by
attacks.metrics.distortions on the perturbation with the default 2×2 groups (so the
overlapping variant is counted in the same groups); means over the successes.

The front: x = mean 2×2 groups touched, y = mean ℓ2. A peer is dominated when one
StrAttack point (the τ sweeps and the λ sweep of strattack-group-l0) has 100% ASR, groups ≤
and ℓ2 ≤ the peer's, at ≤ its evaluations per example (``dominated_by``), both means taken
over the examples the peer fooled (a peer that fails on some examples is compared on the rest,
not on its mean beside ours over all of them). The ℓ2 goal (:func:`paired_ratios`): our
cw-l2's mean ℓ2 over ALMA-ℓ2's and FMN-ℓ2's, on the examples each of them fooled. The ℓ1 goal
(:func:`l1_ratio`): l1-attack's mean ℓ1 over the better of FMN-ℓ1's and PDPGD-ℓ1's.
Written: ``frontier.csv`` and ``frontier.png``.

The budget curves (:func:`curves`): budget.py's rows (ASR, medians, ratios to cw-l2) for our
attacks at each budget and each peer at as many steps, in ``curves.csv`` and ``curves.png``.

    python benchmarks/peers_adv_lib.py [--images N] [--data mnist-heldout] [--taus T ...]
                                       [--lambdas L ...] [--curve-images N]
                                       [--curve-budgets [B ...]] [--out-dir DIR] [--png PATH]
                                       [--threads 1]
    default: the frontier on 10 images x 9 targets, τ (per unit of distance to the boundary,
             StrAttack's default rule) in 0.2 0.4 0.8 1.6 3.2 (both variants), λ in
             0.15 0.25 0.5; the curves on 4 images x 9 targets at budgets 100 250 500 1000
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import sys
import types
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import attrs
import torch
from torch import Tensor

import benchutil as common
from attacks import CWL2, EAD, Attack, StrAttack
from attacks.catalogue import load_spec
from attacks.data import load_dataset
from attacks.metrics import distortions
from attacks.models import load_model
from attacks.spec import GroupSpec
from attacks.targets import expand_targets
import budget
from budget import verified, write_csv

ADV_LIB = {"adv_lib": "0.2.8"}
#: imported by adv_lib for parts never called here (LPIPS, visdom plots, a progress bar)
STAND_INS = ("torchvision", "visdom", "tqdm")
#: StrAttack's group weight per unit of distance to the boundary (its default rule; 0.8 is
#: the default)
TAUS = (0.2, 0.4, 0.8, 1.6, 3.2)
CURVE_BUDGETS = (100, 250, 500, 1000)
#: our shipped example specs in the frontier: the group-ℓ0 StrAttack, swept over its count's
#: weight λ (``LAMBDA_KEY``; the spec's own is 0.5), on the front; our ℓ1 attack against
#: FMN-ℓ1 and PDPGD-ℓ1
GROUP_L0, LAMBDA_KEY, LAMBDAS = "strattack-group-l0", "terms.count.params.weight", (0.15, 0.25,
                                                                                   0.5)
L1_ATTACK, L1_PEERS = "l1-attack", ("fmn-l1", "pdpgd-l1")
#: the ℓ2 goal: our C&W-ℓ2 against these peers, on the examples each fooled
L2_OURS, L2_PEERS = "cw-l2", ("alma-l2", "fmn-l2")
#: the sweeps drawn as lines: (row name prefix, colour, the swept parameter)
SWEEPS = (("strattack tau=", "tab:blue", "τ/s"), ("strattack-overlap tau=", "tab:cyan", "τ/s"),
          (f"{GROUP_L0} lambda=", "tab:green", "λ"))
#: the key of a row's per-example values (kept out of the CSV and the report)
PER_EXAMPLE = "per_example"
COLUMNS = ("attack", "settings", "examples", "asr", "l0", "l1", "l2", "groups",
           "evals_per_example", "grid_ok", "seconds_per_example", "dominated_by")



@attrs.frozen
class AdvLibPeer:
    """``adv_lib.attacks.<function>(model, x, targets, targeted=True, **fixed)`` with its step
    count (argument ``steps_key``) ``steps`` in the frontier, the budget in the curves."""

    function: str
    steps_key: str
    steps: int
    fixed: Dict[str, object] = attrs.field(factory=dict)

    def settings(self, steps: int) -> str:
        return ", ".join(f"{k}={v}" for k, v in {**self.fixed, self.steps_key: steps}.items())

    def run(self, lib, model, x: Tensor, targets: Tensor, steps: Optional[int] = None) -> Tensor:
        kw = {**self.fixed, self.steps_key: steps or self.steps}
        return getattr(lib, self.function)(model, x, targets, targeted=True, **kw)

    def budget_peer(self, lib):
        """This peer as budget.py's peers are (``factory(libs, budget)``), for
        budget.run_peers: ``budget`` steps."""
        return lambda _, b: (self.settings(b), lambda m, x, y, t: self.run(lib, m, x, t, b))


PEERS: Dict[str, AdvLibPeer] = {
    "fmn-l2": AdvLibPeer("fmn", "steps", 1000, {"norm": 2}),
    "alma-l2": AdvLibPeer("alma", "num_steps", 1000, {"distance": "l2"}),
    "fmn-l1": AdvLibPeer("fmn", "steps", 1000, {"norm": 1}),
    "pdpgd-l1": AdvLibPeer("pdpgd", "num_steps", 500, {"norm": 1}),
    "fmn-l0": AdvLibPeer("fmn", "steps", 1000, {"norm": 0}),
    "pdpgd-l0": AdvLibPeer("pdpgd", "num_steps", 500, {"norm": 0, "proximal_operator": 23}),
}


def _stand_in(name: str) -> types.ModuleType:
    """A module whose every attribute is a callable that fails, naming what it stands for."""
    mod = types.ModuleType(name, f"stand-in for {name}: adv_lib imports it for parts this "
                                 "benchmark never calls")

    def attribute(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def unavailable(*args, **kwargs):
            raise RuntimeError(f"{name}.{attr} is a stand-in (benchmarks/peers_adv_lib.py)")
        return unavailable
    mod.__getattr__ = attribute
    return mod


@contextlib.contextmanager
def stand_ins(names: Sequence[str] = STAND_INS) -> Iterator[List[str]]:
    """Stand-in modules for those of ``names`` that are neither loaded nor importable, in
    ``sys.modules`` inside the block only; yields their names."""
    added = [n for n in names if n not in sys.modules and importlib.util.find_spec(n) is None]
    sys.modules.update({n: _stand_in(n) for n in added})
    try:
        yield added
    finally:
        for n in added:
            sys.modules.pop(n, None)


@contextlib.contextmanager
def adv_lib(folder: Optional[Path] = None) -> Iterator[Tuple[Optional[types.ModuleType], str]]:
    """``adv_lib.attacks`` imported from ``folder`` (default .cache/compat) with the stand-ins:
    yields ``(module, "")``, or ``(None, why)`` when it is absent or not version 0.2.8."""
    with stand_ins(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its distutils, its docstrings
        with common.compat_libraries(folder, ADV_LIB) as (libs, why):
            yield (importlib.import_module("adv_lib.attacks") if libs else None), why


def _row(name: str, settings: str, x: Tensor, adv: Tensor, ok: Tensor, evals: float,
         seconds: float, grid_ok: int) -> dict:
    """ASR and the successes' mean ℓ0, ℓ1, ℓ2, ℓ∞ and 2×2 groups touched; under
    ``PER_EXAMPLE`` (never written out) the success, ℓ2 and groups of every example, for the
    paired comparisons."""
    groups = GroupSpec().resolve(tuple(x.shape[1:]))
    m = distortions(adv - x, groups)
    mean = lambda v: float(v[ok].double().mean()) if ok.any() else math.nan
    n = len(ok)
    return {"attack": name, "settings": settings, "examples": n,
            "asr": 100.0 * float(ok.float().mean()), "l0": mean(m["l0"]), "l1": mean(m["l1"]),
            "l2": mean(m["l2"]), "linf": mean(m["linf"]), "groups": mean(m["groups_nonzero"]),
            "evals_per_example": evals, "grid_ok": grid_ok, "successes": int(ok.sum()),
            "seconds_per_example": seconds / n,
            PER_EXAMPLE: {"ok": ok.cpu(), "l2": m["l2"].double().cpu(),
                          "groups": m["groups_nonzero"].double().cpu()}}


def ours(model, x: Tensor, y: Tensor, device, taus: Sequence[float] = TAUS,
         lambdas: Sequence[float] = LAMBDAS) -> List[dict]:
    """cw-l2 and ead at their defaults, StrAttack (both variants) at each τ (its other
    settings the defaults), the group-ℓ0 StrAttack at each λ and l1-attack as shipped: one
    row each, on every image × every other target."""
    default_tau = next(t.params["weight"] for t in StrAttack(model).spec.terms
                       if t.name == "groups")
    runs: Dict[str, Tuple[str, Callable]] = {"cw-l2": ("defaults", lambda: CWL2(model)),
                                             "ead": ("defaults", lambda: EAD(model))}
    for overlapping in (False, True):
        for tau in taus:
            name = f"strattack{'-overlap' if overlapping else ''} tau={tau:g}"
            runs[name] = (f"tau={tau:g}" + (" (the default)" if tau == default_tau else ""),
                          lambda t=tau, o=overlapping: StrAttack(model, tau=t, overlapping=o))
    default_lambda = next(t.params["weight"] for t in load_spec(GROUP_L0).spec.terms
                          if t.kind == "group_l0")
    for lam in lambdas:
        runs[f"{GROUP_L0} lambda={lam:g}"] = (
            f"lambda={lam:g}" + (" (the shipped spec)" if lam == default_lambda else ""),
            lambda v=lam: Attack(model, load_spec(GROUP_L0, [f"{LAMBDA_KEY}={v}"]).spec))
    runs[L1_ATTACK] = ("the shipped spec", lambda: Attack(model, load_spec(L1_ATTACK).spec))
    rows = []
    for name, (settings, attack) in runs.items():
        result, sec, _ = common.timed(lambda: attack()(x, y, targets="all"), device)
        rows.append(_row(name, settings, x[result.source_index], result.adversarial,
                         result.success, float(result.gradient_evals.double().mean()), sec,
                         int(result.success.sum())))
    return rows


def peers(lib, model, xs: Tensor, targets: Tensor, device,
          chosen: Dict[str, AdvLibPeer] = PEERS) -> List[dict]:
    """Each adv_lib peer (``lib``: ``adv_lib.attacks``) on the images ``xs`` towards
    ``targets``, in one batch, counted on the model; success from our own forward pass, before
    and after 8-bit rounding."""
    rows = []
    for name, peer in chosen.items():
        counted = common.CountingModel(model)
        adv, sec, _ = common.timed(lambda: peer.run(lib, counted, xs, targets), device)
        adv = adv.detach()
        ok = verified(model, xs, adv, targets)
        on_grid = verified(model, xs, (adv * 255).round() / 255, targets) & ok
        rows.append(_row(name, peer.settings(peer.steps), xs, adv, ok,
                         counted.grad_rows / len(ok), sec,
                         int(on_grid.sum())))
    return rows


def curves(lib, model, x: Tensor, y: Tensor, budgets: Sequence[int], device,
           chosen: Dict[str, AdvLibPeer] = PEERS,
           attacks: Dict[str, Callable] = budget.ATTACKS) -> List[dict]:
    """Budget curves: budget.py's rows (medians, ratios to cw-l2) for our ``attacks`` at each
    budget and each adv_lib peer at as many steps, on every image × every other target."""
    with torch.no_grad():
        classes = model(x[:1]).shape[1]
    index, tg = expand_targets(y, classes, "all")
    rows, l2 = budget.run_grid(model, x, y, budgets, attacks, device, index, tg.targets)
    more, more_l2 = budget.run_peers(None, model, x, y, budgets,
                                     {n: p.budget_peer(lib) for n, p in chosen.items()},
                                     device, index, tg.targets)
    rows += more
    budget.add_l2_ratios(rows, {**l2, **more_l2})
    return rows


def paired_means(row: dict, on: dict) -> Tuple[float, float]:
    """``row``'s mean groups and ℓ2 over the examples the row ``on`` fooled (both rows with
    per-example values, on the same examples); without them, ``row``'s own means."""
    mine, theirs = row.get(PER_EXAMPLE), on.get(PER_EXAMPLE)
    if mine is None or theirs is None or not theirs["ok"].any():
        return row["groups"], row["l2"]
    ok = theirs["ok"]
    return float(mine["groups"][ok].mean()), float(mine["l2"][ok].mean())


def front_points(rows: List[dict]) -> List[dict]:
    """The points the StrAttack front is drawn from: every StrAttack row (the τ sweeps, the λ
    sweep of strattack-group-l0) with 100% ASR."""
    return [r for r in rows if r["attack"].startswith("strattack") and r["asr"] == 100.0]


def mark_dominated(rows: List[dict]) -> None:
    """``dominated_by`` of each non-StrAttack row: the first StrAttack point with 100% ASR,
    evaluations ≤ the row's and, on the examples the row fooled, mean groups ≤ and mean ℓ2 ≤
    the row's ("" when none)."""
    front = front_points(rows)
    for r in rows:
        if r["attack"].startswith("strattack"):
            r["dominated_by"] = ""
            continue
        own = (r["groups"], r["l2"])
        r["dominated_by"] = next(
            (p["attack"] for p in front if p["evals_per_example"] <= r["evals_per_example"]
             and all(a <= b for a, b in zip(paired_means(p, r), own))), "")


def paired_ratios(rows: List[dict]) -> Dict[str, float]:
    """The ℓ2 goal: our cw-l2's mean ℓ2 over each ℓ2 peer's, on the examples the peer
    fooled (absent rows: none)."""
    by = {r["attack"]: r for r in rows}
    if L2_OURS not in by:
        return {}
    return {f"{L2_OURS} l2 / {p} l2 (on {p}'s successes)":
            paired_means(by[L2_OURS], by[p])[1] / by[p]["l2"] for p in L2_PEERS if p in by}


def public(rows: List[dict]) -> List[dict]:
    """The rows without their per-example values (what the CSV and the report hold)."""
    return [{k: v for k, v in r.items() if k != PER_EXAMPLE} for r in rows]


def l1_ratio(rows: List[dict]) -> float:
    """The ℓ1 goal: l1-attack's mean ℓ1 over the lower of FMN-ℓ1's and PDPGD-ℓ1's (nan when
    either side is missing)."""
    l1 = {r["attack"]: r["l1"] for r in rows}
    peers_l1 = [l1[p] for p in L1_PEERS if p in l1]
    return l1[L1_ATTACK] / min(peers_l1) if L1_ATTACK in l1 and peers_l1 else math.nan


def pareto(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the points no other point beats in both coordinates (lower is better),
    sorted by the first."""
    keep = [i for i, (a, b) in enumerate(points)
            if not any((c <= a and d <= b) and (c, d) != (a, b) for c, d in points)]
    return sorted(keep, key=lambda i: points[i])


def plot(rows: List[dict], path: Path, title: str) -> bool:
    """Groups touched against ℓ2: each StrAttack sweep (:data:`SWEEPS`) as a line (τ or λ at
    each point), their front in bold, every other row a labelled marker; evaluations per
    example in the legend."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(9, 6))
    for prefix, colour, symbol in SWEEPS:
        sweep = [r for r in rows if r["attack"].startswith(prefix)]
        if not sweep:
            continue
        evals = sum(r["evals_per_example"] for r in sweep) / len(sweep)
        ax.plot([r["groups"] for r in sweep], [r["l2"] for r in sweep], "-o", color=colour,
                label=f"ours: {prefix.split()[0]} over {symbol} ({evals:.0f} evals/ex)")
        for r in sweep:
            ax.annotate(f"{symbol}={r['attack'][len(prefix):]}", (r["groups"], r["l2"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8, color=colour)
    ours = front_points(rows)
    front = [ours[i] for i in pareto([(r["groups"], r["l2"]) for r in ours])]
    ax.plot([r["groups"] for r in front], [r["l2"] for r in front], "-", color="black",
            linewidth=2.5, alpha=0.35, label="StrAttack front (100% ASR)")
    markers = iter("s^vD<>pP*Xh")
    for r in rows:
        if any(r["attack"].startswith(prefix) for prefix, _, _ in SWEEPS):
            continue
        peer = "adv_lib " if r["attack"] in PEERS else "ours: "
        ax.plot(r["groups"], r["l2"], linestyle="none", marker=next(markers), markersize=9,
                label=f"{peer}{r['attack']} ({r['evals_per_example']:.0f} evals/ex, "
                      f"ASR {r['asr']:.0f}%)")
        ax.annotate(r["attack"], (r["groups"], r["l2"]), textcoords="offset points",
                    xytext=(6, -10), fontsize=8)
    ax.set_xscale("log")
    ax.margins(x=0.08)
    lo, hi = ax.get_xlim()
    ticks = [t for t in (2, 5, 10, 15, 20, 30, 50, 100, 150, 200) if lo <= t <= hi]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("2×2 groups touched (mean over successes, of 196; log scale)")
    ax.set_ylabel("ℓ2 of the perturbation (mean over successes)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def bench(images: int = 10, data: str = "mnist-heldout", model_name: str = "mnist-cw",
          taus: Sequence[float] = TAUS, lambdas: Sequence[float] = LAMBDAS,
          curve_images: int = 4,
          curve_budgets: Sequence[int] = CURVE_BUDGETS, device: str = "cpu", threads: int = 1,
          out_dir: Optional[str] = "runs/bench-frontier", png: Optional[str] = None,
          chosen: Dict[str, AdvLibPeer] = PEERS) -> dict:
    """The frontier on ``images`` images (0: none) and the budget curves on ``curve_images``
    at ``curve_budgets`` (none: no curves)."""
    dev = common.setup(device, threads)
    model = load_model(model_name, device=dev)
    x, y = load_dataset(data, n=max(images, curve_images if curve_budgets else 0))
    x, y = x.to(dev), y.to(dev)
    common.warm_up(model, x)
    rows, curve_rows = [], []
    notes = [f"{model_name}, images of {data} x every other target; groups: 2x2 groups "
             "touched (of 196 on MNIST); evals_per_example: gradient evaluations"]
    if images:
        notes.append(f"frontier: the first {images} images, means over the successes; "
                     "dominated_by and the cw-l2 ratios compare means over the examples the "
                     "peer fooled; grid_ok: successes that survive 8-bit rounding")
    with adv_lib() as (lib, why):
        if images:
            rows = ours(model, x[:images], y[:images], dev, taus, lambdas)
        if lib is None:
            notes.append(f"adv_lib peers not run: {why}")
        else:
            notes.append(f"peers: adv_lib {ADV_LIB['adv_lib']} from {common.COMPAT}, one batch "
                         "each, targeted; success and distortions from our own forward pass")
            if images:
                with torch.no_grad():
                    classes = model(x[:1]).shape[1]
                index, tg = expand_targets(y[:images], classes, "all")
                rows += peers(lib, model, x[index], tg.targets, dev, chosen)
            if curve_budgets:
                curve_rows = curves(lib, model, x[:curve_images], y[:curve_images],
                                    curve_budgets, dev, chosen)
                notes.append(f"curves: the first {curve_images} images, medians (budget.py's "
                             "rows), each peer at as many steps as the budget")
    mark_dominated(rows)
    ratios = {"l1-attack l1 / best adv_lib l1": l1_ratio(rows), **paired_ratios(rows)} \
        if rows else {}
    rows = public(rows)
    files = {}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if rows:
            write_csv(rows, out / "frontier.csv")
            files["csv"] = str(out / "frontier.csv")
            png_path = Path(png) if png else out / "frontier.png"
            title = (f"{model_name}, {images} {data} images × 9 targets: groups touched vs ℓ2 "
                     "(lower left is better)")
            if plot(rows, png_path, title):
                files["png"] = str(png_path)
        if curve_rows:
            write_csv(curve_rows, out / "curves.csv")
            files["curves_csv"] = str(out / "curves.csv")
            if budget.plot(curve_rows, out / "curves.png", dashed=tuple(chosen)):
                files["curves_png"] = str(out / "curves.png")
    return {"benchmark": "peers_adv_lib", "rows": rows + curve_rows, "ratios": ratios,
            "notes": notes, "files": files, "provenance": common.provenance(dev, threads)}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", type=int, default=10, help="the frontier's (0: no frontier)")
    p.add_argument("--data", default="mnist-heldout")
    p.add_argument("--taus", type=float, nargs="+", default=list(TAUS))
    p.add_argument("--lambdas", type=float, nargs="*", default=list(LAMBDAS),
                   help=f"{GROUP_L0}'s group-count weights (none: not run)")
    p.add_argument("--curve-images", type=int, default=4)
    p.add_argument("--curve-budgets", type=int, nargs="*", default=list(CURVE_BUDGETS),
                   help="the curves' budgets (none: no curves)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", default="runs/bench-frontier")
    p.add_argument("--png", default=None, help="where the plot goes (default: in --out-dir)")
    a = p.parse_args()
    common.emit(bench(a.images, a.data, taus=a.taus, lambdas=a.lambdas,
                      curve_images=a.curve_images,
                      curve_budgets=a.curve_budgets, device=a.device, threads=a.threads,
                      out_dir=a.out_dir, png=a.png), COLUMNS + ("budget",))
