"""What both adapters share: run one of our attacks and return tensors, not an AttackResult."""

from __future__ import annotations

from typing import List, Optional, Tuple

import attrs
import torch
from torch import Tensor

from attacks.base import AttackBase
from attacks.result import AttackResult


def check_attack(attack) -> None:
    """``attack`` must be one of this project's attacks (:class:`AttackBase`)."""
    if not isinstance(attack, AttackBase):
        raise TypeError("attack must be one of this project's attacks, e.g. StrAttack(model) or "
                        f"CWL2(model); got {type(attack).__name__}")


def predict(attack: AttackBase, images: Tensor) -> Tensor:
    """The attacked model's classes for ``images`` (B,), on its device."""
    return attack.classifier.predict(images.to(attack.classifier.device))


def run_attack(attack: AttackBase, images: Tensor, labels: Tensor, targets: Optional[Tensor] = None
               ) -> Tuple[Tensor, Tensor, Optional[AttackResult]]:
    """``(adversarial, success, result)`` for every image, on the model's device.

    Untargeted when ``targets`` is None. With ``targets``, examples whose ``labels`` already
    equal their target (``labels`` may be the model's predictions) are returned clean and
    successful without being attacked; ``result`` covers the attacked ones (``source_index``
    into ``images``) and is None when there were none. Failures are the clean image.
    """
    dev = attack.classifier.device
    images, labels = images.to(dev), labels.to(dev).long()
    if targets is None:
        r = attack(images, labels)
        return r.adversarial, r.success, r
    targets = targets.to(dev).long()
    todo = (labels != targets).nonzero().squeeze(1)
    adversarial = images.clone()
    success = torch.ones(images.shape[0], dtype=torch.bool, device=dev)
    if todo.numel() == 0:
        return adversarial, success, None
    r = attack(images[todo], labels[todo], targets[todo])
    adversarial[todo] = r.adversarial.to(adversarial.dtype)
    success[todo] = r.success
    return adversarial, success, attrs.evolve(r, source_index=todo[r.source_index])


def verdicts(result: Optional[AttackResult], n: int, rows: Optional[Tensor] = None
             ) -> Tuple[List[str], List[str]]:
    """``(status, reasons)`` of each of ``n`` inputs (:mod:`attacks.indicators`): those of
    ``result``'s examples at their ``source_index`` (through ``rows``, the inputs the result's
    images were taken from; None: the same), "success" and "" for an input not attacked (its
    label was its target already)."""
    status, reasons = ["success"] * n, [""] * n
    if result is not None:
        index = result.source_index.cpu()
        index = index if rows is None else rows.cpu()[index]
        for i, st, why in zip(index.tolist(), result.status, result.reasons):
            status[i], reasons[i] = st, why
    return status, reasons
