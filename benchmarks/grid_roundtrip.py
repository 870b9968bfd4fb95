"""Issue-9 figures: do adversarial examples survive being saved as 8-bit PNG files?

For each attack, one continuous run; then (a) naive rounding of x0 + δ to 1/255 (what saving
a float result as PNG does) and (b) this project's grid option (attacks.grid.snap_to_grid:
round, keep zeros, re-verify, repair). Every (b) example is written to a real PNG file,
re-loaded and classified again. Reports the share of successes that survive and the ℓ0/ℓ2
cost of (b) relative to the continuous result.

    python benchmarks/grid_roundtrip.py [--model mnist-cw --data mnist-test20] [-n 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from attacks import CWL2, EAD, StrAttack
from attacks.data import load_dataset
from attacks.engine import Targets
from attacks.grid import snap_to_grid
from attacks.losses import is_adversarial
from attacks.models import load_model


def png_round_trip(images: torch.Tensor, folder: Path) -> torch.Tensor:
    out = []
    for i, img in enumerate(images):
        px = np.rint(img.numpy() * 255).astype(np.uint8)
        px = px[0] if px.shape[0] == 1 else px.transpose(1, 2, 0)
        Image.fromarray(px).save(folder / f"{i}.png")
        back = np.array(Image.open(folder / f"{i}.png")).astype(np.float32) / 255
        out.append(torch.from_numpy(back[None] if back.ndim == 2 else back.transpose(2, 0, 1)))
    return torch.stack(out)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="mnist-cw")
    p.add_argument("--data", default="mnist-test20")
    p.add_argument("-n", type=int, default=20)
    a = p.parse_args()
    model = load_model(a.model)
    x, y = load_dataset(a.data, n=a.n)
    for name, cls in (("strattack", StrAttack), ("cw-l2", CWL2), ("ead", EAD)):
        r = cls(model, seed=0)(x, y, targets="random")
        x0 = x[r.source_index]
        tg = Targets(r.labels, r.targets, r.targeted)
        ok = r.success
        naive = ((x0 + r.delta) * 255).round() / 255
        with torch.no_grad():
            naive_ok = ok & is_adversarial(model(naive), r.labels, r.targets, r.targeted)
        adv, grid_ok = snap_to_grid(model, x0, r.delta, ok, tg)
        with tempfile.TemporaryDirectory() as d:
            back = png_round_trip(adv, Path(d))
        with torch.no_grad():
            png_ok = grid_ok & is_adversarial(model(back), r.labels, r.targets, r.targeted)
        d_grid = adv - x0
        both = grid_ok
        l0 = lambda d: (d.flatten(1).abs() > 1e-7).sum(1).float()
        row = {"attack": name, "model": a.model, "data": a.data, "examples": len(r),
               "successes": int(ok.sum()),
               "naive_rounding_survive_pct": 100 * float(naive_ok.sum()) / max(1, int(ok.sum())),
               "grid_png_survive_pct": 100 * float(png_ok.sum()) / max(1, int(ok.sum())),
               "grid_png_equals_example": bool(torch.equal(back, adv)),
               "l0_continuous": float(l0(r.delta)[both].mean()),
               "l0_grid": float(l0(d_grid)[both].mean()),
               "l2_continuous": float(r.delta.flatten(1).norm(dim=1)[both].mean()),
               "l2_grid": float(d_grid.flatten(1).norm(dim=1)[both].mean())}
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
              flush=True)
