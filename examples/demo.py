"""The demo behind `make demo`: StrAttack vs the C&W-ℓ2 objective on real MNIST test digits.

Attacks the first few bundled MNIST test images (foolbox's copy of the MNIST test set) with
the zoo model `mnist-cw`, one seeded random target each, and writes to --out:
summary.json (ASR, mean ℓ0/ℓ1/ℓ2/ℓ∞, group sparsity, gradient evaluations, provenance) and
demo.png (image, adversarial, perturbation and per-group ℓ2 heatmap for both attacks).

    python examples/demo.py --out runs/demo [-n 5] [--seed 0] [--threads N]

It prints a progress line every few seconds while an attack runs, and uses one CPU thread
unless told otherwise (attacks.runtime: the default that is never catastrophic on a busy
machine; --threads 0 for torch's default of one per core).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from attacks import CWL2, StrAttack  # noqa: E402
from attacks.data import load_dataset  # noqa: E402
from attacks.models import load_model  # noqa: E402
from attacks.runtime import set_threads  # noqa: E402
from attacks.spec import GroupSpec  # noqa: E402


def figure(x, results, path: Path) -> None:
    groups = GroupSpec().resolve(tuple(x.shape[1:]))
    rows = len(results) * x.shape[0]
    fig, axes = plt.subplots(rows, 4, figsize=(9, 2.3 * rows), squeeze=False)
    r = 0
    for name, res in results.items():
        for i in range(x.shape[0]):
            d = res.delta[i, 0]
            heat = groups.group_norms(res.delta[i:i + 1])[0]
            lim = float(d.abs().max()) or 1.0
            status = "success" if res.success[i] else "FAILED"
            panels = [(x[i, 0], "gray", f"original: {int(res.labels[i])}", (0, 1)),
                      (res.adversarial[i, 0], "gray",
                       f"{name}: → {int(res.targets[i])} ({status})", (0, 1)),
                      (d, "seismic", f"δ  (ℓ0={int(res.metrics['l0'][i]) if res.success[i] else '-'})",
                       (-lim, lim)),
                      (heat, "hot", "per-group ℓ2 of δ (2×2)", (0, float(heat.max()) or 1.0))]
            for ax, (img, cmap, title, (lo, hi)) in zip(axes[r], panels):
                im = ax.imshow(img.numpy(), cmap=cmap, vmin=lo, vmax=hi)
                ax.set_title(title, fontsize=8)
                ax.set_xticks([]), ax.set_yticks([])
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            r += 1
    fig.suptitle("StrAttack vs C&W-ℓ2 objective on mnist-cw (targeted)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class Heartbeat:
    """A forward hook on the model that prints how far an attack has got every ``every`` s
    (it only counts the images the model sees; the results do not change)."""

    def __init__(self, model: torch.nn.Module, every: float = 5.0):
        self.every, self.label, self.rows, self.start = every, "", 0, 0.0
        model.register_forward_hook(self._hook)

    def begin(self, label: str) -> None:
        self.label, self.rows = label, 0
        self.start = self.last = time.perf_counter()
        print(f"{label}: running ...", flush=True)

    def _hook(self, module, inputs, output) -> None:
        self.rows += inputs[0].shape[0]
        now = time.perf_counter()
        if self.label and now - self.last >= self.every:
            self.last = now
            print(f"  {self.label}: {now - self.start:4.0f} s, {self.rows} model evaluations so far",
                  flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("-n", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: 1, or $OMP_NUM_THREADS; 0: torch's default)")
    a = p.parse_args()
    threads = set_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(a.seed)
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-test20", n=a.n)
    print(f"attacking {x.shape[0]} MNIST test digits (mnist-test20) on mnist-cw, one random "
          f"target each, {threads} CPU thread(s)", flush=True)
    beat = Heartbeat(model)
    results, summary = {}, {}
    for name, attack in [("strattack", StrAttack(model, seed=a.seed)),
                         ("cw-l2", CWL2(model, seed=a.seed))]:
        t = time.perf_counter()
        beat.begin(name)
        res = attack(x, y, targets="random")
        beat.label = ""
        results[name] = res
        summary[name] = {**res.summary(), "seconds": round(time.perf_counter() - t, 2)}
        s = summary[name]
        print(f"{name:10s} ASR {s['asr']:5.1f}%  ℓ0 {s['l0']:7.1f}  ℓ2 {s['l2']:.3f}  "
              f"non-zero groups {100 * s['groups_fraction']:.1f}%  "
              f"{s['gradient_evals']:.0f} gradient evals/example  {s['seconds']} s")
    summary["provenance"] = {"model": "mnist-cw", "data": "mnist-test20", "n": a.n,
                             "seed": a.seed, "targets": "random", "threads": threads,
                             "torch": torch.__version__,
                             "python": platform.python_version()}
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2))
    figure(x, results, a.out / "demo.png")
    print(f"wrote {a.out / 'summary.json'} and {a.out / 'demo.png'}")


if __name__ == "__main__":
    main()
