"""Interpretability of StrAttack vs the C&W-ℓ2 objective (paper section 6, Fig. 3, Fig. A2),
through the Python API; `admm-attack explain` does the same from the command line (with
resumable attack runs and provenance).

Attacks the first -n images of a bundled test set with one seeded random target per image
(the same targets for both attacks), then writes the interpretability score
IS = ||B∘δ||₂/||δ||₂ (eq. 23) against the percentile ν of every map the model offers (ASM,
CAM for a GAP model, Grad-CAM), per-example scores, overlays and summary.json to --out
(files: attacks.interpret.report).

    python examples/interpretability.py --out runs/interpretability -n 5
    python examples/interpretability.py --model mnist-gap --out runs/interpretability-gap
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from attacks import CWL2, StrAttack
from attacks.data import load_dataset
from attacks.interpret.report import Comparison, map_settings, write_report
from attacks.models import load_model
from attacks.spec import SearchSpec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/interpretability"))
    p.add_argument("-n", type=int, default=5, help="images to attack (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random targets")
    p.add_argument("--model", default="mnist-cw")
    p.add_argument("--data", default="mnist-test20")
    p.add_argument("--iterations", type=int, default=150,
                   help="ADMM iterations of each attack's search (default 150)")
    a = p.parse_args()
    torch.set_num_threads(1)
    model = load_model(a.model)
    x, y = load_dataset(a.data, n=a.n)
    k = int(model(x[:1]).shape[1])
    g = torch.Generator().manual_seed(a.seed)
    targets = (y + torch.randint(1, k, y.shape, generator=g)) % k
    search = SearchSpec(iterations=a.iterations)

    results, timings = {}, {}
    for name, cls in [("StrAttack", StrAttack), ("C&W-l2", CWL2)]:
        t = time.perf_counter()
        results[name] = cls(model, search=search, seed=a.seed)(x, y, targets)
        timings[name] = round(time.perf_counter() - t, 1)
        s = results[name].summary()
        print(f"{name:10s} ASR {s['asr']:5.1f}%  ℓ0 {s['l0']:6.1f}  ℓ2 {s['l2']:.3f}  "
              f"{timings[name]} s")

    offered = map_settings(model, x, required=False)   # what this model supports
    maps = (["asm"] + (["cam-true", "cam-target"] if offered.head is not None else [])
            + (["gradcam-true", "gradcam-target"] if offered.layer is not None else []))
    summary = write_report(a.out, model, Comparison.from_results(x, results), maps=maps,
                           class_names=getattr(model, "class_names", None),
                           title=f"{a.model} on {a.data}",
                           extra={"model": a.model, "data": a.data, "seed": a.seed,
                                  "targets": targets.tolist(), "steps": a.steps,
                                  "iterations": a.iterations, "seconds": timings})
    print(f"\nmean IS over the {summary['counted']} examples fooled by both attacks "
          f"(ν = {', '.join(f'{v:g}' for v in summary['nus'])}):")
    for m, row in summary["mean_is"].items():
        for n, vals in row.items():
            print(f"  {m:15s} {n:22s} " + " ".join(f"{v:.3f}" for v in vals))
    print(f"wrote {a.out}/is_curve.csv, is_per_example.csv, is_curve.png, figures/, "
          "summary.json")


if __name__ == "__main__":
    main()
