"""Interpretability of StrAttack vs the C&W-ℓ2 objective (paper section 6, Fig. 3, Fig. A2).

Attacks the first -n images of a bundled test set (default: mnist-test20 with the zoo model
mnist-cw) with one seeded random target per image (the same targets for both attacks), then
measures the interpretability score IS = ||B∘δ||₂/||δ||₂ (eq. 23) against the percentile ν of
three maps B is cut from: the adversarial saliency map ASM(x0, t) (eq. 61), Grad-CAM of the
true label t0 and Grad-CAM of the target t. Means are over the examples both attacks fooled.
For reference the curves also hold the score of a perturbation spread evenly over the image
(IS = sqrt(|B|/d), what a perturbation that ignores the map gets).
Writes to --out:

    is_curve.csv           map, rule, ν, attack, mean IS, examples (ASM also with the ≥ rule)
    is_per_example.csv     every example's IS per map, ν and attack
    is_curve.png           mean IS vs ν, one panel per map (paper Fig. 3(a))
    example_<i>.png        image, ASM, B_ASM∘δ per attack, Grad-CAM of t0 and t, δ per attack
    summary.json           the numbers above, attack summaries, timings and provenance

    python examples/interpretability.py --out runs/interpretability -n 5
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import time
from pathlib import Path

import torch

from attacks import CWL2, StrAttack
from attacks.data import load_dataset
from attacks.interpret import result_maps, results_is_curve, write_csv
from attacks.interpret.figures import plot_example, plot_is_curves
from attacks.models import load_model
from attacks.spec import SearchSpec

MAPS = ("asm", "gradcam-true", "gradcam-target")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/interpretability"))
    p.add_argument("-n", type=int, default=5, help="images to attack (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random targets")
    p.add_argument("--model", default="mnist-cw")
    p.add_argument("--data", default="mnist-test20")
    p.add_argument("--steps", type=int, default=4, help="c-search steps per attack")
    p.add_argument("--iterations", type=int, default=150, help="ADMM iterations per step")
    p.add_argument("--nu", type=float, default=90, help="percentile ν of the example figures")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    model = load_model(a.model)
    x, y = load_dataset(a.data, n=a.n)
    k = int(model(x[:1]).shape[1])
    g = torch.Generator().manual_seed(a.seed)
    targets = (y + torch.randint(1, k, y.shape, generator=g)) % k
    search = SearchSpec(steps=a.steps, iterations=a.iterations)

    results, attacks_summary = {}, {}
    for name, cls in [("StrAttack", StrAttack), ("C&W-l2", CWL2)]:
        t = time.perf_counter()
        res = cls(model, search=search, seed=a.seed)(x, y, targets)
        results[name] = res
        s = {**res.summary(), "seconds": round(time.perf_counter() - t, 1)}
        attacks_summary[name] = s
        print(f"{name:10s} ASR {s['asr']:5.1f}%  ℓ0 {s['l0']:6.1f}  ℓ2 {s['l2']:.3f}  "
              f"{s['seconds']} s")

    curves = [results_is_curve(model, x, results, m, reference=True) for m in MAPS]
    loose = results_is_curve(model, x, results, "asm", strict=False, reference=True)
    write_csv(a.out / "is_curve.csv", curves + [loose])
    with (a.out / "is_per_example.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["map", "nu", "attack", "example", "source_index", "label", "target", "is"])
        for c in curves:
            for name, per in c.per_example.items():
                if name not in results:
                    continue
                r = results[name]
                for i in range(per.shape[0]):
                    for j, nu in enumerate(c.nus.tolist()):
                        v = float(per[i, j])
                        w.writerow([c.map, nu, name, i, int(r.source_index[i]),
                                    int(r.labels[i]), int(r.targets[i]),
                                    "" if math.isnan(v) else f"{v:.6f}"])
    n_common = curves[0].count[next(iter(results))]
    plot_is_curves(a.out / "is_curve.png", curves,
                   title=f"Interpretability score vs ν: {a.model} on {a.data}, {n_common} "
                         f"examples fooled by both attacks (random targets, seed {a.seed})")

    asm = result_maps(model, x, results, "asm")
    cam_t0 = result_maps(model, x, results, "gradcam-true")
    cam_t = result_maps(model, x, results, "gradcam-target")
    first = next(iter(results.values()))
    names = getattr(model, "class_names", None)
    for i in range(len(first)):
        ok = ", ".join(f"{n}: {'fooled' if r.success[i] else 'FAILED'}"
                       for n, r in results.items())
        plot_example(a.out / f"example_{i}.png", x[int(first.source_index[i])], asm[i],
                     {n: r.delta[i] for n, r in results.items()}, cam_t0[i], cam_t[i],
                     label=int(first.labels[i]), target=int(first.targets[i]), nu=a.nu,
                     class_names=names,
                     title=f"{a.model}, {a.data} image {int(first.source_index[i])} ({ok})")

    table = {c.map: {n: [round(float(v), 4) for v in m] for n, m in c.mean.items()}
             for c in curves}
    table["asm (>= rule)"] = {n: [round(float(v), 4) for v in m] for n, m in loose.mean.items()}
    summary = {"nus": curves[0].nus.tolist(), "mean_is": table,
               "examples_counted": n_common, "attacks": attacks_summary,
               "provenance": {"model": a.model, "data": a.data, "n": a.n, "seed": a.seed,
                              "targets": targets.tolist(), "steps": a.steps,
                              "iterations": a.iterations, "torch": torch.__version__,
                              "python": platform.python_version()}}
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nmean IS over {n_common} examples fooled by both attacks "
          f"(ν = {', '.join(f'{v:g}' for v in curves[0].nus.tolist())}):")
    for m, row in table.items():
        for n, vals in row.items():
            print(f"  {m:15s} {n:22s} " + " ".join(f"{v:.3f}" for v in vals))
    print(f"wrote {a.out}/is_curve.csv, is_per_example.csv, is_curve.png, example_*.png, "
          "summary.json")


if __name__ == "__main__":
    main()
