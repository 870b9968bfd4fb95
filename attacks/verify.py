"""What an attack hands back before metrics: the verified examples and their accounting.

:class:`Evaluations` counts, per example, what the model computed for it and holds the hard
budget of gradient evaluations an example may cost (``search.budget``); :func:`verify` is the
fresh forward pass that decides success; :class:`Outcome` is what :func:`attacks.result.
build_result` turns into an :class:`attacks.result.AttackResult`.
"""

from __future__ import annotations

from typing import Optional

import attrs
import torch
from torch import Tensor

from admmkit import batch_where
from attacks.indicators import NONFINITE, Evidence
from attacks.losses import is_adversarial

UNLIMITED = torch.iinfo(torch.long).max // 2


@attrs.define
class Evaluations:
    """Per-example counts, (B,) long each: ``gradient`` evaluations (a forward+backward of the
    model on that example's row: one per ADMM iteration, one per grid repair round) and
    ``forward``-only evaluations (success checks). ``budget``: the most gradient evaluations
    one example may cost (None: unlimited); every stage asks :meth:`left` before it spends."""

    gradient: Tensor
    forward: Tensor
    budget: Optional[int] = None
    #: the indicators of attack failure seen so far (attacks.indicators)
    evidence: Optional[Evidence] = None

    @classmethod
    def zeros(cls, b: int, device, budget: Optional[int] = None) -> "Evaluations":
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)
                                   or budget <= 0):
            raise ValueError(f"budget must be a positive integer or None; got {budget!r}")
        z = torch.zeros(b, dtype=torch.long, device=device)
        return cls(gradient=z, forward=z.clone(), budget=budget, evidence=Evidence(b, device))

    def left(self, idx: Optional[Tensor] = None, until: Optional[int] = None) -> Tensor:
        """Gradient evaluations each example (of ``idx``) may still spend, (B,) long: up to
        the budget, or with ``until`` up to that many in all (a stage's share)."""
        spent = self.gradient if idx is None else self.gradient.index_select(0, idx)
        limit = min(x for x in (self.budget, until, UNLIMITED) if x is not None)
        return (limit - spent).clamp(min=0)

    def add_gradients(self, idx: Optional[Tensor], n) -> None:
        """Count ``n`` gradient evaluations for the examples ``idx`` (None: all)."""
        if idx is None:
            self.gradient += n
        else:
            self.gradient.index_add_(0, idx, n)

    def flag_nonfinite(self, idx: Tensor, bad: Tensor) -> None:
        """Mark the examples ``idx[bad]``: the model gave them NaN or infinite logits."""
        if self.evidence is not None:
            self.evidence.flag(NONFINITE, bad, idx)

    def add_forwards(self, idx: Optional[Tensor], n) -> None:
        if idx is None:
            self.forward += n
        else:
            self.forward.index_add_(0, idx, n)


@attrs.define
class Outcome:
    """What an attack returns, per example: the verified image (exactly the one the model saw;
    the clean image on failure) and the accounting. :func:`attacks.result.build_result`
    carries every field named like a per-example field of the result into it."""

    adversarial: Tensor
    success: Tensor
    c: Tensor
    gradient_evals: Tensor
    forward_evals: Tensor
    refined: Tensor
    #: (B,) int32: the reasons of attacks.indicators (Evidence.verdict)
    flags: Optional[Tensor] = None


def verify(model, x0: Tensor, delta: Tensor, found: Tensor, tg,
           evals: Optional[Evaluations] = None):
    """Fresh forward pass on the final image ``clip(x0 + δ, 0, 1)``: returns the images that
    were checked (the clean image where the attack failed) and the success mask. The pass is
    one forward evaluation of every example, counted in ``evals``, which also flags the
    examples whose logits are not finite (a broken model, never a robust one)."""
    adv = (x0 + delta).clamp(0, 1)
    with torch.no_grad():
        logits = model(adv)
    if evals is not None:
        evals.add_forwards(None, 1)
        if evals.evidence is not None:
            evals.evidence.flag(NONFINITE, ~torch.isfinite(logits).all(dim=1))
    success = found & is_adversarial(logits, tg.labels, tg.targets, tg.targeted)
    return batch_where(success, adv, x0), success
