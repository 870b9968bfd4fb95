"""Which class each example is pushed towards: explicit, seeded random, all others, or none."""

from __future__ import annotations

import operator
from typing import Union

import attrs
import torch
from torch import Tensor

from attacks.limits import SEED_RANGE

TargetChoice = Union[None, str, Tensor]
#: the dtypes of class indices (not bool: True is no class; not complex or floating point)
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_seed(seed) -> int:
    """``seed`` if it is an integer a torch generator takes (:data:`SEED_RANGE`), else a
    ``ValueError``."""
    try:
        value = None if isinstance(seed, bool) else operator.index(seed)  # NumPy ints too
    except TypeError:
        value = None
    if value is None or not SEED_RANGE[0] <= value < SEED_RANGE[1]:
        shown = repr(seed) if value is None else str(value) if abs(value) < 10**30 else \
            f"an integer of {value.bit_length()} bits"
        raise ValueError(f"seed must be an integer in [-2**63, 2**64); got {shown}")
    return value


@attrs.define
class Targets:
    """Per-example labels, targets and whether each example is targeted, (B,) each."""

    labels: Tensor
    targets: Tensor
    targeted: Tensor

    def select(self, idx: Tensor) -> "Targets":
        return Targets(*(t.index_select(0, idx) for t in attrs.astuple(self, recurse=False)))

    def to(self, device) -> "Targets":
        return Targets(*(t.to(device) for t in attrs.astuple(self, recurse=False)))


def expand_targets(labels: Tensor, num_classes: int, targets: TargetChoice = None,
                   seed: int = 0):
    """Return ``(source_index, Targets)`` for the examples to attack.

    targets: ``None`` or ``"untargeted"``; ``"random"`` (one other class per image, seeded);
    ``"all"`` (each image against every other class — the paper's protocol, B·(K−1) examples,
    image-major, targets ascending); or a (B,) integer tensor.
    """
    b, dev = labels.shape[0], labels.device
    check_seed(seed)
    index = torch.arange(b, device=dev)
    if targets is None or (isinstance(targets, str) and targets == "untargeted"):
        return index, Targets(labels, labels.clone(), torch.zeros(b, dtype=torch.bool, device=dev))
    if isinstance(targets, str):
        if targets == "random":
            g = torch.Generator().manual_seed(int(seed))
            shift = torch.randint(1, num_classes, (b,), generator=g).to(dev)
            t = (labels + shift) % num_classes
        elif targets == "all":
            others = torch.arange(num_classes - 1, device=dev).view(1, -1)
            t = (others + (others >= labels.view(-1, 1)).long()).reshape(-1)
            index = index.repeat_interleave(num_classes - 1)
            labels = labels.index_select(0, index)
        else:
            raise ValueError(f'targets must be None, "untargeted", "random", "all" or a tensor; '
                             f"got {targets!r}")
        return index, Targets(labels, t, torch.ones_like(t, dtype=torch.bool))
    t = torch.as_tensor(targets, device=dev)
    if t.shape != (b,) or t.dtype not in INTEGER_DTYPES:
        raise ValueError(f"targets must be an integer tensor of shape ({b},); got "
                         f"{t.dtype} {tuple(t.shape)}")
    t = t.long()
    if t.min() < 0 or t.max() >= num_classes:
        raise ValueError(f"targets must be in [0, {num_classes}); got values in "
                         f"[{t.min().item()}, {t.max().item()}]")
    if (t == labels).any():
        i = int((t == labels).nonzero()[0])
        raise ValueError(f"targets[{i}] equals the true label {int(labels[i])}: a targeted "
                         "attack needs a different class")
    return index, Targets(labels, t, torch.ones(b, dtype=torch.bool, device=dev))
