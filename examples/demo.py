"""The demo behind `make demo`: StrAttack vs the C&W-ℓ2 objective on real MNIST test digits.

Attacks the first few bundled MNIST test images (foolbox's copy of the MNIST test set) with
the zoo model `mnist-cw`, one seeded random target each, and writes to --out:
summary.json (ASR, mean ℓ0/ℓ1/ℓ2/ℓ∞, group sparsity, gradient evaluations, provenance) and
demo.png (one row per digit: original | StrAttack adversarial, δ | C&W adversarial, δ).

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


NAMES = {"strattack": "StrAttack", "cw-l2": "C&W-ℓ2"}


def figure(model, x, results, path: Path) -> None:
    """One row per image: original | per attack, its adversarial example and δ. The two δ
    panels of a row share one colour scale (diverging, 0 white), labelled at the right."""
    n = x.shape[0]
    fig, axes = plt.subplots(n, 1 + 2 * len(results), figsize=(11, 2.1 * n + 0.6),
                             squeeze=False, constrained_layout=True)
    for i in range(n):
        first = next(iter(results.values()))
        axes[i, 0].imshow(x[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_ylabel(f"{int(first.labels[i])} → {int(first.targets[i])}", fontsize=12,
                              rotation=0, labelpad=28, va="center")
        lim = max(float(r.delta[i].abs().max()) for r in results.values()) or 1.0
        deltas = []
        for k, (name, res) in enumerate(results.items()):
            adv_ax, delta_ax = axes[i, 1 + 2 * k], axes[i, 2 + 2 * k]
            adv_ax.imshow(res.adversarial[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            with torch.no_grad():
                predicted = int(model(res.adversarial[i:i + 1]).argmax(1))
            ok = bool(res.success[i])
            adv_ax.set_xlabel(f"classified {predicted}" + ("" if ok else " (attack failed)"),
                              fontsize=8)
            im = delta_ax.imshow(res.delta[i, 0].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
            delta_ax.set_xlabel(f"{int(res.metrics['l0'][i])} pixels changed, "
                                f"ℓ2 = {float(res.metrics['l2'][i]):.2f}" if ok else "δ = 0",
                                fontsize=8)
            deltas.append(delta_ax)
            if i == 0:
                adv_ax.set_title(f"{NAMES.get(name, name)}\nadversarial", fontsize=10)
                delta_ax.set_title(f"{NAMES.get(name, name)}\nδ = adversarial − original",
                                   fontsize=10)
        bar = fig.colorbar(im, ax=deltas, fraction=0.05, pad=0.02)
        bar.set_label("δ (pixel value)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    axes[0, 0].set_title("original\n(true → target)", fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("Targeted attacks on mnist-cw: StrAttack changes few pixels, in groups; "
                 "C&W-ℓ2 spreads δ thinly", fontsize=11)
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
    figure(model, x, results, a.out / "demo.png")
    print(f"wrote {a.out / 'summary.json'} and {a.out / 'demo.png'}")


if __name__ == "__main__":
    main()
