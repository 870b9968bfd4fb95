"""Transferability (the paper's Table 3 protocol, section 5) on the project's own models.

The examples crafted on the source model of a finished ``admm-attack eval`` directory (every
image × every other class) are replayed on other zoo models. Among the examples that succeeded
on the source, a model is fooled

* targeted: when it predicts the attack's target (top-1; the paper used top-5 on ImageNet's
  1,000 classes, which has no analogue with 10 classes);
* untargeted: when it no longer predicts the true label.

    python experiments/transfer.py runs/table1-mnist --to mnist-lenet,mnist-mlp,mnist-gap \\
        [--attacks strattack,cw-l2,ifgsm] [--common] [--out transfer.json]

The clean accuracy of each model on the same images is printed beside the rates: an image a
model already misclassifies counts as "untargeted fooled" without any attack.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List

import torch

from attacks.data import load_dataset
from attacks.models import load_model
from attacks.transfer import transfer_success
from cli.provenance import environment
from cli.store import RunDir


def _key(a: Dict) -> List[tuple]:
    return list(zip(a["source_index"].tolist(), a["targets"].tolist()))


def transfer_table(eval_dir: Path, attacks: List[str], targets: List[str],
                   common: bool = False) -> Dict:
    """Counts per attack and model; ``common`` keeps only the (image, target) pairs on which
    every listed attack succeeded, so the attacks are compared on the same examples."""
    prov = json.loads((eval_dir / "provenance.json").read_text())
    run = prov["common"]
    images, labels = load_dataset(run["data"], prov["options"].get("n"))
    models = {name: load_model(name) for name in targets}
    with torch.no_grad():
        clean = {name: float((m(images).argmax(1) == labels).float().mean())
                 for name, m in models.items()}
    runs = {attack: RunDir(eval_dir / attack).examples() for attack in attacks}
    both = set.intersection(*({k for k, s in zip(_key(a), a["success"]) if s}
                              for a in runs.values()))
    rows = []
    for attack, a in runs.items():
        ok = torch.from_numpy(a["success"])
        if common:
            ok = ok & torch.tensor([k in both for k in _key(a)], dtype=torch.bool)
        adv = torch.from_numpy(a["adversarial"])[ok]
        lab, tgt = (torch.from_numpy(a[k])[ok] for k in ("labels", "targets"))
        row = {"attack": attack, "examples": int(ok.numel()), "source_successes": int(ok.sum())}
        for name, m in models.items():
            with torch.no_grad():
                hit = transfer_success(m, adv, lab, tgt, torch.ones_like(ok[ok]))
                fooled = transfer_success(m, adv, lab, tgt, torch.zeros_like(ok[ok]))
            row[name] = {"targeted": int(hit.sum()), "untargeted": int(fooled.sum())}
        rows.append(row)
    return {"eval": str(eval_dir), "source_model": run["model"], "data": run["data"],
            "images": len(labels), "common": common,
            "eval_commit": prov.get("git", {}).get("commit"),
            "clean_accuracy": clean, "rows": rows, **environment()}


def markdown(t: Dict) -> str:
    names = list(t["clean_accuracy"])
    head = ["attack (source successes)"] + [f"{n} targeted / untargeted" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t["rows"]:
        n = r["source_successes"]
        cells = [f"{r['attack']} ({n})"]
        for m in names:
            c = r[m]
            cells.append(f"{100 * c['targeted'] / n:.1f}% / {100 * c['untargeted'] / n:.1f}%"
                         if n else "–")
        lines.append("| " + " | ".join(cells) + " |")
    acc = ", ".join(f"{m} {100 * a:.1f}%" for m, a in t["clean_accuracy"].items())
    return "\n".join(lines) + f"\n\nClean accuracy on the same {t['images']} images: {acc}.\n"


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eval_dir", type=Path)
    p.add_argument("--to", default="mnist-lenet,mnist-mlp,mnist-gap",
                   help="comma list of zoo models to replay the examples on")
    p.add_argument("--attacks", default="strattack,cw-l2,ifgsm")
    p.add_argument("--common", action="store_true",
                   help="count only the examples on which every listed attack succeeded")
    p.add_argument("--out", type=Path, help="also write the counts as JSON here")
    a = p.parse_args()
    table = transfer_table(a.eval_dir, a.attacks.split(","), a.to.split(","), a.common)
    print(markdown(table))
    if a.out:
        a.out.write_text(json.dumps(table, indent=2) + "\n")
