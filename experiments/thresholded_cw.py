"""The paper's sparsity check (section 5): threshold each C&W perturbation down to StrAttack's
ℓ0 on the same (image, target) — keep its largest-magnitude entries only — and count how many
stay adversarial. The paper found 6.7%: C&W's perturbation is not sparse in disguise.

Reads a finished ``admm-attack eval`` directory holding both attacks, or the sparse one from
another eval directory of the same model, data and targets (``--sparse-dir``):

    python experiments/thresholded_cw.py runs/table1-mnist [--dense cw-l2 --sparse strattack]
        [--sparse-dir runs/table1-mnist-strattack]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from attacks.evaluation import threshold_to_l0
from attacks.losses import is_adversarial
from attacks.models import load_model
from evaldir import attack_examples, by_example, eval_setup


def check(eval_dir: Path, dense: str, sparse: str, sparse_dir: Path = None) -> dict:
    common, images, _ = eval_setup(eval_dir)
    if sparse_dir is not None:
        other = eval_setup(sparse_dir)[0]
        for key in ("model", "weights", "data"):
            if other.get(key) != common.get(key):
                raise SystemExit(f"--sparse-dir {sparse_dir}: {key} {other.get(key)!r} is not "
                                 f"{eval_dir}'s {common.get(key)!r}")
    model = load_model(common["model"], weights=common.get("weights"))
    d, s = attack_examples(eval_dir, dense), attack_examples(sparse_dir or eval_dir, sparse)
    kd, ks = by_example(d), by_example(s)
    pairs = [(kd[k], ks[k]) for k in sorted(kd.keys() & ks.keys())
             if d["success"][kd[k]] and s["success"][ks[k]]]
    if not pairs:
        raise SystemExit("no (image, target) pair where both attacks succeeded")
    jd, js = (np.array(v) for v in zip(*pairs))
    x0 = images[torch.from_numpy(d["source_index"][jd]).long()]
    delta = torch.from_numpy(d["delta"][jd])
    l0 = torch.from_numpy(s["metric_l0"][js])
    cut = threshold_to_l0(delta, l0)
    with torch.no_grad():
        ok = is_adversarial(model((x0 + cut).clamp(0, 1)),
                            torch.from_numpy(d["labels"][jd]).long(),
                            torch.from_numpy(d["targets"][jd]).long(),
                            torch.ones(len(jd), dtype=torch.bool))
    return {"eval": str(eval_dir), "sparse_eval": str(sparse_dir or eval_dir), "dense": dense,
            "sparse": sparse, "pairs": len(pairs),
            "still_adversarial": int(ok.sum()), "rate_percent": 100.0 * float(ok.float().mean()),
            "dense_l0_mean": float(d["metric_l0"][jd].mean()),
            "sparse_l0_mean": float(l0.mean()), "paper_rate_percent": 6.7}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eval_dir", type=Path)
    p.add_argument("--dense", default="cw-l2")
    p.add_argument("--sparse", default="strattack")
    p.add_argument("--sparse-dir", type=Path, default=None,
                   help="the eval directory holding --sparse (default: EVAL_DIR)")
    a = p.parse_args()
    print(json.dumps(check(a.eval_dir, a.dense, a.sparse, a.sparse_dir), indent=2))
