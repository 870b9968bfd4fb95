"""The paper's Table 2: attacks under an ℓ∞ bound ε against the PGD-trained model (Madry
et al. 2017).

Untargeted, on the first N held-out digits the model classifies correctly, each attack solved
*subject to* ||δ||∞ ≤ ε for ε in {0.1, 0.2, 0.3, 0.4}:

* ``ifgsm``     — 10 signed-gradient steps within ε, bisection for the smallest ε that works;
* ``cw-l2-eps`` — the C&W-ℓ2 objective with the box ||δ||∞ ≤ ε (the ADMM engine's ε; a
  C&W-*style* ℓ∞-bounded attack — not C&W's own iterative ℓ∞ algorithm);
* ``linf``      — the ℓ∞-constrained StrAttack (γ = 0, ||δ||∞ ≤ ε, refined; eq. 20).

ASR at ε = fraction of the images with a verified adversarial example within ε; ℓ0 is the mean
number of perturbed pixels of those examples. Continuous outputs (no 8-bit rounding), so the
bound is exact.

    python experiments/pgd_table2.py [--model mnist-pgd --data mnist-heldout -n 50 --out t2.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import attrs
import torch

from attacks import IFGSM, Attack, builtin_spec
from attacks.data import load_dataset
from attacks.models import load_model
from attacks.runs.provenance import environment

EPS = (0.1, 0.2, 0.3, 0.4)
PAPER = {"ifgsm": ((0.01, 0.02, 0.09, 0.94), 654), "cw-l2-eps": ((0.01, 0.02, 0.10, 0.96), 723),
         "linf": ((0.01, 0.02, 0.10, 0.99), 279)}


def make_attack(name: str, model, eps: float):
    if name == "ifgsm":
        return IFGSM(model, eps_max=eps)
    if name == "cw-l2-eps":
        return Attack(model, attrs.evolve(builtin_spec("cw-l2"), eps=eps))
    if name == "linf":
        return Attack(model, builtin_spec("linf", eps=eps))
    raise ValueError(f"unknown attack {name!r}")


def table2(model_name: str, data: str, n: int, attacks=tuple(PAPER), eps=EPS) -> dict:
    model = load_model(model_name)  # the attacks are deterministic (no random targets here)
    x, y = load_dataset(data)
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero().squeeze(1)[:n]
    x, y = x[right], y[right]
    rows = []
    for name in attacks:
        for e in eps:
            t0 = time.process_time()
            res = make_attack(name, model, e)(x, y)  # untargeted
            ok = res.success & (res.metrics["linf"] <= e + 1e-6)
            rows.append({"attack": name, "eps": e, "asr": float(ok.float().mean()),
                         "successes": int(ok.sum()), "images": len(y),
                         "l0": float(res.metrics["l0"][ok].mean()) if ok.any() else None,
                         "gradient_evals": float(res.gradient_evals.float().mean()),
                         "cpu_s": round(time.process_time() - t0, 1)})
            print(rows[-1], flush=True)
    return {"model": model_name, "data": data, "images": len(y),
            "image_indices": right.tolist(), "rows": rows, **environment()}


def markdown(t: dict) -> str:
    eps = sorted({r["eps"] for r in t["rows"]})
    head = (["attack"] + [f"ASR at ε = {e}" for e in eps] + [f"ℓ0 at ε = {e}" for e in eps]
            + ["paper: ASR at 0.1 / 0.2 / 0.3 / 0.4, ℓ0"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in dict.fromkeys(r["attack"] for r in t["rows"]):
        rs = {r["eps"]: r for r in t["rows"] if r["attack"] == name}
        asr = [f"{rs[e]['asr']:.2f}" for e in eps]
        l0 = [f"{rs[e]['l0']:.0f}" if rs[e]["l0"] is not None else "–" for e in eps]
        paper = PAPER.get(name)
        ref = (" / ".join(map(str, paper[0])) + f", {paper[1]}") if paper else "–"
        lines.append("| " + " | ".join([name] + asr + l0 + [ref]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mnist-pgd")
    p.add_argument("--data", default="mnist-heldout")
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t = table2(a.model, a.data, a.n)
    print(markdown(t))
    if a.out:
        a.out.write_text(json.dumps(t, indent=2) + "\n")
