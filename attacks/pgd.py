"""ℓ∞ projected gradient descent (Madry et al. 2017) on a batch of examples: the PGD baseline
(:class:`attacks.baselines.PGD`) and the ε-bounded ADMM attacks' start (``search.start =
"pgd"``, :class:`attacks.engine.Engine`) both run this one iteration.

    δ_0 = Π(U(−ε, ε)^n),     δ_{k+1} = Π(δ_k + α · sign ∇_δ L(x0 + δ_k)),

Π the projection onto {δ : ||δ||∞ ≤ ε, x0 + δ ∈ [0, 1]} (one coordinate-wise clamp). L is
the cross-entropy of the label (untargeted, ascended) or of the target (targeted, descended),
``loss="ce"``, or minus the C&W margin (``"margin"``, :func:`attacks.losses.margin`). The
logits that give each step's gradient also tell, for free, whether ``x0 + δ_k`` is
adversarial: an example keeps its latest adversarial iterate and, with ``stop_on_success``,
stops spending there (the set of running examples is updated every :data:`SYNC` steps).
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

from admmkit import batch_where
from admmkit.smooth import gradient
from attacks.indicators import Evidence
from attacks.losses import is_adversarial, margin
from attacks.targets import Targets

PGD_LOSSES = ("ce", "margin")
SYNC = 10  # steps between updates of the running examples (one host sync each)


@attrs.define
class PGDRun:
    """Per example: the perturbation (the latest adversarial iterate where one was seen, else
    the last), whether an adversarial iterate was seen, and the gradient evaluations spent."""

    delta: Tensor
    found: Tensor
    gradient_evals: Tensor


def pgd_objective(logits: Tensor, tg: Targets, loss: str) -> Tensor:
    """The per-example objective PGD ascends, (B,): ±CE or −margin."""
    if loss == "margin":
        return -margin(logits, tg.labels, tg.targets, tg.targeted)
    cls = torch.where(tg.targeted, tg.targets, tg.labels)
    sign = torch.where(tg.targeted, -1.0, 1.0).to(logits.dtype)
    return sign * F.cross_entropy(logits, cls, reduction="none")


def random_start(x0: Tensor, eps: float, seed: int) -> Tensor:
    """δ_0 ~ U(−ε, ε)^n projected onto the valid set; drawn on the CPU from ``seed`` (the same
    numbers on every device)."""
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.rand(x0.shape, generator=g, dtype=x0.dtype).to(x0.device)
    return project(x0, (2 * noise - 1) * eps, eps)


def project(x0: Tensor, delta: Tensor, eps: float) -> Tensor:
    """Π: clamp δ to [−ε, ε] and x0 + δ to [0, 1] (a box around x0: exact projection)."""
    return torch.maximum(torch.minimum(delta, (1 - x0).clamp(max=eps)), (-x0).clamp(min=-eps))


def pgd(model: Callable[[Tensor], Tensor], x0: Tensor, tg: Targets, eps: float, steps: int,
        step_size: float, *, loss: str = "ce", start: Optional[Tensor] = None,
        stop_on_success: bool = True, evidence: Optional[Evidence] = None) -> PGDRun:
    """``steps`` PGD steps of ``step_size`` within ``eps`` from ``start`` (a δ, projected;
    None: zero). Returns a :class:`PGDRun`; every step's gradient goes to ``evidence`` (the
    indicators of failure, :mod:`attacks.indicators`; active where not yet adversarial)."""
    if loss not in PGD_LOSSES:
        raise ValueError(f"loss must be one of {PGD_LOSSES}; got {loss!r}")
    b = x0.shape[0]
    delta = project(x0, torch.zeros_like(x0) if start is None else start, eps)
    best = delta.clone()
    found = torch.zeros(b, dtype=torch.bool, device=x0.device)
    evals = torch.zeros(b, dtype=torch.long, device=x0.device)
    rows = torch.arange(b, device=x0.device)
    for k in range(steps):
        if stop_on_success and k and k % SYNC == 0:
            rows = (~found).nonzero().squeeze(1)
            if rows.numel() == 0:
                break
        x, t = x0.index_select(0, rows), tg.select(rows)
        with torch.enable_grad():
            d = delta.index_select(0, rows).requires_grad_(True)
            logits = model(x + d)
            objective = pgd_objective(logits, t, loss)
            grad = gradient(objective, d)
        ok = is_adversarial(logits.detach(), t.labels, t.targets, t.targeted)
        if evidence is not None:
            evidence.observe_gradient(grad, objective.detach(), ~ok, rows)
        best.index_copy_(0, rows, batch_where(ok, d.detach(), best.index_select(0, rows)))
        found.index_copy_(0, rows, found.index_select(0, rows) | ok)
        evals.index_add_(0, rows, torch.ones_like(rows))
        delta.index_copy_(0, rows, project(x, d.detach() + step_size * grad.sign(), eps))
    # the last step's iterate is checked by whoever verifies: it is the answer where none was
    return PGDRun(delta=batch_where(found, best, delta), found=found, gradient_evals=evals)
