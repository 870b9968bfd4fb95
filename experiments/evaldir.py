"""Reading a finished ``admm-attack eval`` directory back: what the experiments share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch

from attacks.data import load_dataset
from attacks.store import RunDir


def eval_setup(eval_dir: Path) -> Tuple[dict, torch.Tensor, torch.Tensor]:
    """The eval's shared record (model, weights, data, seed...) and its images and labels."""
    prov = json.loads((Path(eval_dir) / "provenance.json").read_text())
    common = {**prov["common"], "git": prov.get("git", {})}
    images, labels = load_dataset(common["data"], prov["options"].get("n"))
    return common, images, labels


def attack_examples(eval_dir: Path, attack: str) -> Dict[str, np.ndarray]:
    """Every stored example of one attack of the eval (see ``RunDir.examples``)."""
    return RunDir(Path(eval_dir) / attack).examples()


def by_example(arrays: Dict[str, np.ndarray]) -> Dict[Tuple[int, int], int]:
    """{(image index, target): row} — to match the same examples across attacks."""
    return {(int(i), int(t)): j for j, (i, t) in
            enumerate(zip(arrays["source_index"], arrays["targets"]))}
