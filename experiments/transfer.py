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

from attacks.models import load_model
from attacks.transfer import transfer_success
from attacks.runs.provenance import environment
from evaldir import attack_examples, by_example, eval_setup


def transfer_table(eval_dir: Path, attacks: List[str], targets: List[str],
                   common: bool = False) -> Dict:
    """Counts per attack and model; ``common`` keeps only the (image, target) pairs on which
    every listed attack succeeded, so the attacks are compared on the same examples."""
    setup, images, labels = eval_setup(eval_dir)
    models = {name: load_model(name) for name in targets}
    with torch.no_grad():
        clean = {name: float((m(images).argmax(1) == labels).float().mean())
                 for name, m in models.items()}
    runs = {attack: attack_examples(eval_dir, attack) for attack in attacks}
    if common:
        shared = set.intersection(*({k for k, j in by_example(a).items() if a["success"][j]}
                                    for a in runs.values()))
    rows = []
    for attack, a in runs.items():
        ok = torch.from_numpy(a["success"])
        if common:
            ok = ok & torch.tensor([k in shared for k in by_example(a)], dtype=torch.bool)
        adv = torch.from_numpy(a["adversarial"])[ok]
        lab, tgt = (torch.from_numpy(a[k])[ok] for k in ("labels", "targets"))
        targeted = torch.ones(len(adv), dtype=torch.bool)
        row = {"attack": attack, "examples": int(ok.numel()), "source_successes": len(adv)}
        for name, m in models.items():
            with torch.no_grad():
                hit = transfer_success(m, adv, lab, tgt, targeted)
                fooled = transfer_success(m, adv, lab, tgt, ~targeted)
            row[name] = {"targeted": int(hit.sum()), "untargeted": int(fooled.sum())}
        rows.append(row)
    return {"eval": str(eval_dir), "source_model": setup["model"], "data": setup["data"],
            "images": len(labels), "common": common, "eval_commit": setup["git"].get("commit"),
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
