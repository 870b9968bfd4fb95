"""The paper's Table 2: attacks under an ℓ∞ bound ε against the PGD-trained model (Madry
et al. 2017).

Untargeted, on the first N held-out digits the model classifies correctly, each attack solved
*subject to* ||δ||∞ ≤ ε for ε in {0.1, 0.2, 0.3, 0.4}:

* ``ifgsm``     — 10 signed-gradient steps within ε, bisection for the smallest ε that works;
* ``cw-l2-eps`` — the C&W-ℓ2 objective with the box ||δ||∞ ≤ ε (the ADMM engine's ε; a
  C&W-*style* ℓ∞-bounded attack — not C&W's own iterative ℓ∞ algorithm);
* ``linf``      — the ℓ∞-constrained StrAttack (γ = 0, ||δ||∞ ≤ ε, refined; eq. 20);
* ``pgd-100``   — the reference: 100 PGD steps on the cross-entropy from a random start
  (:class:`attacks.baselines.PGD`, step 2.5ε/100, seed 0);
* ``apgd-ce``   — the second reference: torchattacks' APGD-CE (Croce & Hein 2020, the ε-bounded
  attack of AutoAttack), 100 steps, one restart, seed 0, from .cache/compat (skipped when
  absent).

ASR at ε = fraction of the images with a verified adversarial example within ε; ℓ0 is the mean
number of perturbed pixels of those examples, cost the mean gradient evaluations (forward +
backward passes) per example. Continuous outputs (no 8-bit rounding), so the bound is exact.
``--offset`` skips that many of the correctly classified digits (tune on others than the
reported ones).

    python experiments/pgd_table2.py [--model mnist-pgd --data mnist-heldout -n 50 --out t2.json]
        [--offset 100 --attacks linf,pgd-100 --eps 0.3,0.4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import attrs
import torch

from attacks import IFGSM, Attack, builtin_spec
from attacks.baselines import PGD
from attacks.data import load_dataset
from attacks.models import load_model
from attacks.runs.provenance import environment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from benchutil import CountingModel, compat_libraries  # noqa: E402

EPS = (0.1, 0.2, 0.3, 0.4)
PAPER = {"ifgsm": ((0.01, 0.02, 0.09, 0.94), 654), "cw-l2-eps": ((0.01, 0.02, 0.10, 0.96), 723),
         "linf": ((0.01, 0.02, 0.10, 0.99), 279)}
ATTACKS = ("pgd-100", "apgd-ce", *PAPER)


class APGDCE:
    """torchattacks' APGD-CE as an attack of this table: ``(images, labels) -> (adversarial,
    gradient evaluations per example)``, counted on the model (:class:`CountingModel`)."""

    def __init__(self, model, eps: float, steps: int = 100):
        self.model, self.eps, self.steps = CountingModel(model), eps, steps

    def __call__(self, x, y):
        with compat_libraries() as (libs, why):
            if libs is None:
                raise RuntimeError(f"apgd-ce needs torchattacks: {why}")
            attack = libs.torchattacks.APGD(self.model, norm="Linf", eps=self.eps,
                                            steps=self.steps, n_restarts=1, seed=0, loss="ce")
            self.model.reset()
            adv = attack(x, y)
        return adv, self.model.grad_rows / len(y)


def make_attack(name: str, model, eps: float, overrides=()):
    """The attack ``name`` at ``eps``; ``overrides`` (``KEY=VALUE``) apply to the ADMM specs."""
    if name == "pgd-100":
        return PGD(model, eps=eps, steps=100, loss="ce", random_start=True, seed=0)
    if name == "apgd-ce":
        return APGDCE(model, eps)
    if name == "ifgsm":
        return IFGSM(model, eps_max=eps)
    if name == "cw-l2-eps":
        spec = attrs.evolve(builtin_spec("cw-l2"), eps=eps)
        return Attack(model, spec.with_overrides(*overrides), grid=False)
    if name == "linf":
        return Attack(model, builtin_spec("linf", eps=eps).with_overrides(*overrides),
                      grid=False)
    raise ValueError(f"unknown attack {name!r}")


def verified(model, x, y, adv, eps: float):
    """Success within ε by a fresh forward pass, and ℓ0 (changed pixels) per example."""
    delta = adv - x
    with torch.no_grad():
        fooled = model(adv).argmax(1) != y
    ok = fooled & (delta.flatten(1).abs().amax(1) <= eps + 1e-6)
    return ok, (delta.flatten(1).abs() > 1e-7).sum(1).float()


def table2(model_name: str, data: str, n: int, attacks=ATTACKS, eps=EPS,
           offset: int = 0, overrides=()) -> dict:
    model = load_model(model_name)  # every attack is seeded (PGD's and APGD's random starts)
    x, y = load_dataset(data)
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero().squeeze(1)[offset:offset + n]
    x, y = x[right], y[right]
    rows = []
    for name in attacks:
        for e in eps:
            t0 = time.process_time()
            res = make_attack(name, model, e, overrides)(x, y)  # untargeted
            if name == "apgd-ce":
                adv, evals = res
            else:
                adv, evals = res.adversarial, float(res.gradient_evals.float().mean())
            ok, l0 = verified(model, x, y, adv, e)
            rows.append({"attack": name, "eps": e, "asr": float(ok.float().mean()),
                         "successes": int(ok.sum()), "images": len(y),
                         "l0": float(l0[ok].mean()) if ok.any() else None,
                         "gradient_evals": evals,
                         "cpu_s": round(time.process_time() - t0, 1),
                         "success_mask": ok.int().tolist()})
            print({k: v for k, v in rows[-1].items() if k != "success_mask"}, flush=True)
    return {"model": model_name, "data": data, "images": len(y), "offset": offset,
            "overrides": list(overrides),
            "image_indices": right.tolist(), "rows": rows, **environment()}


def markdown(t: dict) -> str:
    eps = sorted({r["eps"] for r in t["rows"]})
    head = (["attack"] + [f"ASR at ε = {e}" for e in eps] + [f"ℓ0 at ε = {e}" for e in eps]
            + [f"grad. evals at ε = {e}" for e in eps]
            + ["paper: ASR at 0.1 / 0.2 / 0.3 / 0.4, ℓ0"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in dict.fromkeys(r["attack"] for r in t["rows"]):
        rs = {r["eps"]: r for r in t["rows"] if r["attack"] == name}
        asr = [f"{rs[e]['asr']:.2f}" for e in eps]
        l0 = [f"{rs[e]['l0']:.0f}" if rs[e]["l0"] is not None else "–" for e in eps]
        cost = [f"{rs[e]['gradient_evals']:.0f}" for e in eps]
        paper = PAPER.get(name)
        ref = (" / ".join(map(str, paper[0])) + f", {paper[1]}") if paper else "–"
        lines.append("| " + " | ".join([name] + asr + l0 + cost + [ref]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mnist-pgd")
    p.add_argument("--data", default="mnist-heldout")
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--offset", type=int, default=0,
                   help="skip this many correctly classified digits (tuning set: 100)")
    p.add_argument("--attacks", default=",".join(ATTACKS),
                   help=f"comma-separated, of {', '.join(ATTACKS)}")
    p.add_argument("--eps", default=",".join(map(str, EPS)), help="comma-separated ε")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a spec override for the ADMM attacks (repeatable)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    names = tuple(a.attacks.split(","))
    unknown = [k for k in names if k not in ATTACKS]
    if unknown:
        p.error(f"--attacks: unknown {unknown}; expected names among {list(ATTACKS)}")
    t = table2(a.model, a.data, a.n, names, tuple(float(e) for e in a.eps.split(",")), a.offset,
               tuple(a.set))
    print(markdown(t))
    if a.out:
        a.out.write_text(json.dumps(t, indent=2) + "\n")
