"""Checks on what a model returns, shared by the command line and the Python API: a broken
model must never look robust."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from attacks.errors import UserError


class ModelOutputError(UserError):
    """The model's outputs cannot be attacked (not finite, wrong shape)."""


def check_batch_logits(out: Any, batch: int, classes: Optional[int] = None,
                       model: str = "the model") -> Tensor:
    """``out`` if it is floating-point logits of shape (``batch``, ``classes``) (``classes``
    ``None``: any); else a :class:`ModelOutputError`. Metadata only (no device sync): cheap
    enough for every call of the model, so a model that changes its outputs' shape or type
    during an attack stops it with one line."""
    if not isinstance(out, Tensor):
        raise ModelOutputError(f"{model} returned {type(out).__name__}, expected a tensor of "
                               "logits")
    if out.dim() != 2 or out.shape[0] != batch or classes not in (None, out.shape[1]):
        raise ModelOutputError(f"{model} returned outputs of shape {tuple(out.shape)} for a "
                               f"batch of {batch}; expected logits of shape (batch, classes) = "
                               f"({batch}, {classes or 'classes'})")
    if not out.is_floating_point():
        raise ModelOutputError(f"{model} returned {out.dtype} outputs; expected floating-point "
                               "logits (integer scores have no gradient to follow)")
    return out


def check_logits(logits: Tensor, model: str = "the model") -> Optional[str]:
    """Refuse non-finite outputs on clean images; return a warning (else ``None``) when the
    outputs look like probabilities — every row in [0, 1] summing to 1 — since the margin
    loss expects logits (it still runs, but saturates and the attack is weaker)."""
    if logits.ndim != 2:
        raise ModelOutputError(f"{model} returned outputs of shape {tuple(logits.shape)}; "
                               "expected (batch, classes) logits")
    bad = ~torch.isfinite(logits).all(dim=1)
    if bool(bad.any()):
        which = ", ".join(str(i) for i in bad.nonzero().flatten()[:5].tolist())
        raise ModelOutputError(f"{model} returned non-finite outputs (NaN or inf) on "
                               f"{int(bad.sum())} of {logits.shape[0]} clean images (first: "
                               f"{which}); a model that cannot classify cannot be attacked")
    sums = logits.sum(dim=1)
    if (bool((logits >= 0).all()) and bool((logits <= 1).all())
            and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3))):
        return (f"{model} returns probabilities (rows in [0, 1] summing to 1), not logits: "
                "the margin loss is weak on probabilities; remove the final softmax")
    return None
