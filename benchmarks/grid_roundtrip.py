"""Issue-9 figures: do adversarial examples survive being saved as 8-bit PNG files?

For each attack, one continuous run (default settings, one seeded random target per image);
then (a) naive rounding of x0 + δ to 1/255 (what saving a float result as PNG does) and
(b) the grid option (attacks.grid.snap_to_grid: round, keep zeros, re-verify, repair on the
grid, else flag failed). Every (b) example is written to a real PNG file, re-loaded and
classified again. One JSON line per attack: the share of continuous successes that survive,
the ℓ0/ℓ2 means over the examples (b) keeps (continuous → grid; the worst per-example ℓ2
ratio too) and the evaluations the repair spent (mean over the continuous successes).

    python benchmarks/grid_roundtrip.py [--model mnist-cw --data mnist-test20] [-n 20]
        [--attacks strattack,cw-l2,ead] [--threads 1] [--out FILE.jsonl]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import benchutil as common
from attacks import CWL2, EAD, StrAttack
from attacks.data import load_dataset
from attacks.targets import Targets
from attacks.grid import snap_to_grid
from attacks.losses import is_adversarial
from attacks.metrics import L0_TOL
from attacks.models import load_model

ATTACKS = {"strattack": StrAttack, "cw-l2": CWL2, "ead": EAD}


def png_round_trip(images: torch.Tensor, folder: Path) -> torch.Tensor:
    """Write each (C, H, W) image as an 8-bit PNG and read it back as floats in [0, 1]."""
    out = []
    for i, img in enumerate(images):
        px = np.rint(img.numpy() * 255).astype(np.uint8)
        px = px[0] if px.shape[0] == 1 else px.transpose(1, 2, 0)
        Image.fromarray(px).save(folder / f"{i}.png")
        back = np.array(Image.open(folder / f"{i}.png")).astype(np.float32) / 255
        out.append(torch.from_numpy(back[None] if back.ndim == 2 else back.transpose(2, 0, 1)))
    return torch.stack(out)


def measure(name: str, model, x: torch.Tensor, y: torch.Tensor) -> dict:
    t = time.perf_counter()
    r = ATTACKS[name](model, seed=0, grid=False)(x, y, targets="random")  # continuous
    attack_s = time.perf_counter() - t
    x0, tg, ok = x[r.source_index], Targets(r.labels, r.targets, r.targeted), r.success
    adversarial = lambda img: is_adversarial(model(img), r.labels, r.targets, r.targeted)
    with torch.no_grad():
        naive_ok = ok & adversarial(((x0 + r.delta) * 255).round() / 255)
    t = time.perf_counter()
    snap = snap_to_grid(model, x0, r.delta, ok, tg)
    snap_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d:
        back = png_round_trip(snap.adversarial, Path(d))
    with torch.no_grad():
        png_ok = snap.success & adversarial(back)
    kept, n_ok = snap.success, max(1, int(ok.sum()))
    l0 = lambda d: (d.flatten(1).abs() > L0_TOL).sum(1).float()[kept]
    l2 = lambda d: d.flatten(1).norm(dim=1)[kept]
    d_grid = snap.adversarial - x0
    return {"attack": name, "examples": len(r), "successes": int(ok.sum()),
            "naive_rounding_survive_pct": 100 * float(naive_ok.sum()) / n_ok,
            "grid_png_survive_pct": 100 * float(png_ok.sum()) / n_ok,
            "grid_png_equals_example": bool(torch.equal(back, snap.adversarial)),
            "l0_continuous": float(l0(r.delta).mean()), "l0_grid": float(l0(d_grid).mean()),
            "l0_grew": int((l0(d_grid) > l0(r.delta)).sum()),
            "l2_continuous": float(l2(r.delta).mean()), "l2_grid": float(l2(d_grid).mean()),
            "l2_extra_pct": 100 * float(l2(d_grid).mean() / l2(r.delta).mean() - 1),
            "l2_ratio_max": float((l2(d_grid) / l2(r.delta)).max()),
            "repaired": int((snap.gradient_evals > 0)[kept].sum()),
            "repair_gradient_evals_mean": float(snap.gradient_evals[ok].float().mean()),
            "repair_gradient_evals_max": int(snap.gradient_evals.max()),
            "repair_forward_evals_mean": float(snap.forward_evals[ok].float().mean()),
            "attack_s": attack_s, "snap_s": snap_s}


if __name__ == "__main__":
    p = common.parser(__doc__, full=None, device=False, threads=False)
    p.add_argument("--model", default="mnist-cw")
    p.add_argument("--data", default="mnist-test20")
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=None, help="also append the JSON lines here")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model = load_model(a.model)
    x, y = load_dataset(a.data, n=a.n)
    for name in a.attacks.split(","):
        if name not in ATTACKS:
            p.error(f"--attacks: unknown attack {name!r}; expected some of {sorted(ATTACKS)}")
        row = {"model": a.model, "data": a.data, **measure(name, model, x, y)}
        line = json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        print(line, flush=True)
        if a.out:
            with a.out.open("a") as f:
                f.write(line + "\n")
