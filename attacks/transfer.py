"""Transferability (the paper's Table 3 protocol): do adversarial examples crafted on a source
model fool other models?

Only examples that succeeded on the source count. Among those, an example *transfers* to a
model when

* targeted: its target is among the model's ``top_k`` classes (top-1 for MNIST; the paper
  follows Su et al. 2018 with top-5 on ImageNet);
* untargeted: its true label is not among the model's ``top_k`` classes (for k = 1: the
  prediction differs from the label).

The rate is ``transferred / source_successes`` (NaN when nothing succeeded on the source, so
an empty attack never reads as 0 % or 100 %).

    from attacks import StrAttack
    from attacks.transfer import evaluate_transfer
    result = StrAttack(load_model("mnist-cw"))(x, y, targets="random")
    evaluate_transfer(result, {n: load_model(n) for n in ("mnist-gap", "mnist-lenet", "mnist-mlp")})
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs
import torch
from torch import Tensor, nn

from attacks.result import AttackResult


@attrs.frozen
class TransferCount:
    """How many of the source's successful examples fool ``model``."""

    model: str
    transferred: int        # successful on the source and on this model
    source_successes: int   # the denominator: successful on the source
    examples: int           # all examples crafted (failures included)
    top_k: int

    @property
    def rate(self) -> float:
        return self.transferred / self.source_successes if self.source_successes else math.nan

    def to_dict(self) -> dict:
        return {**attrs.asdict(self), "rate": self.rate}


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@torch.no_grad()
def transfer_success(model: nn.Module, adversarial: Tensor, labels: Tensor, targets: Tensor,
                     targeted: Tensor, *, top_k: int = 1, batch_size: int = 500) -> Tensor:
    """(B,) bool: each example fools ``model`` (targeted: target in the top-k classes;
    untargeted: label not in the top-k), regardless of the source. Batched forward passes on
    the model's device; the mask comes back on ``adversarial``'s device."""
    b = adversarial.shape[0]
    for name, t in (("labels", labels), ("targets", targets), ("targeted", targeted)):
        if not isinstance(t, Tensor) or t.shape != (b,):
            raise ValueError(f"{name} must be a tensor of shape ({b},) (one per example); got "
                             f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
    if not (isinstance(top_k, int) and top_k >= 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    was_training = model.training
    model.eval()
    dev = _device(model)
    hits = []
    for i in range(0, b, batch_size):
        sl = slice(i, i + batch_size)
        logits = model(adversarial[sl].to(dev))
        if logits.ndim != 2 or logits.shape[1] < top_k:
            raise ValueError(f"model output must be (B, num_classes >= top_k={top_k}); got {tuple(logits.shape)}")
        top = logits.topk(top_k, dim=1).indices
        hit_target = (top == targets[sl].to(dev).view(-1, 1)).any(1)
        hit_label = (top == labels[sl].to(dev).view(-1, 1)).any(1)
        hits.append(torch.where(targeted[sl].to(dev), hit_target, ~hit_label).to(adversarial.device))
    model.train(was_training)
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool, device=adversarial.device)


def evaluate_transfer(result: AttackResult, models: Mapping[str, nn.Module], *, top_k: int = 1,
                      batch_size: int = 500) -> dict[str, TransferCount]:
    """For each named model, how many of ``result``'s source-successful examples fool it
    (see the module docstring). Returns {name: TransferCount}, in ``models``' order."""
    if not isinstance(result, AttackResult):
        raise ValueError(f"result must be an AttackResult, got {type(result).__name__}")
    ok = result.success.bool()
    n_ok = int(ok.sum())
    out = {}
    for name, model in models.items():
        fooled = transfer_success(model, result.adversarial[ok], result.labels[ok], result.targets[ok],
                                  result.targeted[ok], top_k=top_k, batch_size=batch_size)
        out[name] = TransferCount(name, int(fooled.sum()), n_ok, len(result), top_k)
    return out
