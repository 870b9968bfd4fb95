"""Issue-3 quality and cost figures: every image against all 9 other classes on mnist-cw.

Reports ASR, mean ℓ0/ℓ1/ℓ2/ℓ∞, group sparsity and gradient evaluations per example for
strattack, strattack-overlap and cw-l2 on the same examples, and the ratios the issue asks for
(strattack ℓ0 / cw-l2 ℓ0 ≤ 0.25, strattack ℓ2 / cw-l2 ℓ2 ≤ 1.15).

    python benchmarks/attack_quality.py [-n 20] [--data mnist-heldout] [--out FILE.json]
"""

from __future__ import annotations

import json
import time

import torch

import benchutil as common
from attacks import CWL2, StrAttack
from attacks.data import load_dataset
from attacks.models import load_model

if __name__ == "__main__":
    p = common.parser(__doc__, full=None, device=False, threads=False)
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--data", default="mnist-heldout")
    p.add_argument("--batch-size", type=int, default=180)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    model = load_model("mnist-cw")
    x, y = load_dataset(a.data, n=a.n)
    rows = {}
    for name, attack in [("strattack", StrAttack(model, batch_size=a.batch_size)),
                         ("strattack-overlap", StrAttack(model, overlapping=True,
                                                         batch_size=a.batch_size)),
                         ("cw-l2", CWL2(model, batch_size=a.batch_size))]:
        t = time.perf_counter()
        r = attack(x, y, targets="all")
        s = r.summary()
        s["max_gradient_evals"] = int(r.gradient_evals.max())
        s["seconds"] = round(time.perf_counter() - t, 1)
        rows[name] = s
        print(name, json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                for k, v in s.items()}), flush=True)
    ratios = {"l0 strattack/cw-l2": rows["strattack"]["l0"] / rows["cw-l2"]["l0"],
              "l2 strattack/cw-l2": rows["strattack"]["l2"] / rows["cw-l2"]["l2"],
              "l0 overlap/cw-l2": rows["strattack-overlap"]["l0"] / rows["cw-l2"]["l0"]}
    print(json.dumps({k: round(v, 3) for k, v in ratios.items()}))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"data": a.data, "n": a.n, "targets": "all", "model": "mnist-cw",
                       "torch": torch.__version__, "results": rows, "ratios": ratios}, f,
                      indent=2)
