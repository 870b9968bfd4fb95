"""FGM and IFGSM (Goodfellow et al. 2015; Kurakin et al. 2017), ℓ∞ and ℓ2, as the paper's
reference points: each with the smallest successful ε found per sample by bisection; and ℓ∞
PGD at a fixed ε (Madry et al. 2017), the reference of the ε-bounded attacks.

Targeted steps descend the cross-entropy of the target, untargeted ones ascend that of the
label. IFGSM takes ``iterations`` steps of ε/iterations (the paper: 10), projecting onto the
ε-ball and [0, 1] after each.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from admmkit import batch_where
from admmkit.smooth import gradient
from attacks.base import AttackBase, failed_nan, settle
from attacks.errors import lookup
from attacks.indicators import Evidence
from attacks.losses import fooled, is_adversarial
from attacks.pgd import PGD_LOSSES, pgd, random_start
from attacks.result import AttackResult
from attacks.targets import Targets
from attacks.verify import Evaluations, Outcome

NORMS = ("inf", "2")
#: the baselines by name: (iterations, norm); their ε is bisected per sample
BASELINES = {"fgm": (1, "inf"), "fgm-l2": (1, "2"), "ifgsm": (10, "inf"), "ifgsm-l2": (10, "2")}


def _view(t: Tensor, like: Tensor) -> Tensor:
    return t.view(-1, *([1] * (like.dim() - 1)))


class GradientAttack(AttackBase):
    """``iterations`` signed (ℓ∞) or normalised (ℓ2) gradient steps of size ε/iterations.
    ``options``: ``batch_size``, ``threads``, ``verbose``, ``progress``, as every attack's
    (:class:`attacks.base.AttackBase`)."""

    def __init__(self, model: nn.Module, *, norm: str = "inf", iterations: int = 10,
                 search_steps: int = 12, eps_max: Optional[float] = None,
                 normalize: Optional[tuple] = None, seed: int = 0, grid: bool = False,
                 **options):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
        for key, v in (("iterations", iterations), ("search_steps", search_steps)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{key} must be a positive integer; got {v!r}")
        if eps_max is not None and not eps_max > 0:
            raise ValueError(f"eps_max must be positive; got {eps_max!r}")
        self.norm, self.iterations, self.search_steps = norm, iterations, search_steps
        self.eps_max = eps_max
        super().__init__(model, normalize=normalize, seed=seed, grid=grid, **options)
        kind = "fgm" if iterations == 1 else "ifgsm"
        self.name = f"{kind}-l{norm}"
        self.short_name = kind + ("-l2" if norm == "2" else "")  # as in BASELINES

    def identity(self) -> Dict[str, Any]:
        return {"baseline": self.short_name, "iterations": self.iterations, "norm": self.norm,
                "search_steps": self.search_steps}

    def _direction(self, x: Tensor, tg: Targets, evidence: Optional[Evidence] = None
                   ) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            logits = self.classifier(x)
            cls = torch.where(tg.targeted, tg.targets, tg.labels)
            sign = torch.where(tg.targeted, -1.0, 1.0).to(x.dtype)
            loss = sign * F.cross_entropy(logits, cls, reduction="none")
            g = gradient(loss, x)
        if evidence is not None:  # the indicators of failure: active where not adversarial yet
            ok = is_adversarial(logits.detach(), tg.labels, tg.targets, tg.targeted)
            evidence.observe_gradient(g, loss.detach(), ~ok)
        if self.norm == "inf":
            return g.sign()
        return g / _view(g.flatten(1).norm(dim=1).clamp_min(1e-12), g)

    def perturb(self, x0: Tensor, tg: Targets, eps: Tensor,
                evidence: Optional[Evidence] = None) -> Tensor:
        """The adversarial image for per-sample ``eps`` (B,); every step's gradient goes to
        ``evidence`` (:mod:`attacks.indicators`)."""
        e = _view(eps, x0)
        x = x0
        for _ in range(self.iterations):
            x = x + (e / self.iterations) * self._direction(x, tg, evidence)
            d = x - x0
            if self.norm == "inf":
                d = torch.maximum(torch.minimum(d, e), -e)
            else:
                d = d * torch.clamp(e / _view(d.flatten(1).norm(dim=1).clamp_min(1e-12), d), max=1)
            x = (x0 + d).clamp(0, 1)
        return x

    def solve_batch(self, x0: Tensor, index: Tensor, tg: Targets, grid: bool
                    ) -> AttackResult:
        b = x0.shape[0]
        top = self.eps_max or (1.0 if self.norm == "inf" else math.sqrt(x0[0].numel()))
        lo = torch.zeros(b, dtype=x0.dtype, device=x0.device)
        hi = torch.full_like(lo, top)
        best = torch.zeros_like(x0)
        found = torch.zeros(b, dtype=torch.bool, device=x0.device)
        eps = hi.clone()
        evals = Evaluations.zeros(b, x0.device)
        for _ in range(self.search_steps + 1):  # ε_max first, then bisection
            adv = self.perturb(x0, tg, eps, evals.evidence)
            ok = fooled(self.classifier, adv, tg)
            best = batch_where(ok, adv - x0, best)
            found = found | ok
            hi = torch.where(ok, eps, hi)
            lo = torch.where(ok, lo, eps)
            eps = (lo + hi) / 2
        # one gradient per IFGSM step of each ε tried, one check per ε, then the verification
        evals.gradient += (self.search_steps + 1) * self.iterations
        evals.forward += self.search_steps + 1
        adv, success = settle(self.classifier, x0, tg, best, found, evals, grid=grid)
        outcome = Outcome(adversarial=adv, success=success, c=failed_nan(hi, success),
                          gradient_evals=evals.gradient, forward_evals=evals.forward,
                          refined=torch.zeros_like(success),
                          flags=evals.evidence.verdict(success))
        return self.result(x0, index, tg, outcome, grid)


class PGD(AttackBase):
    """ℓ∞ PGD at a fixed ε (Madry et al. 2017; the iteration: :func:`attacks.pgd.pgd`): a
    random start in the ε-ball (``random_start``, drawn from ``seed``), then ``steps``
    signed-gradient steps of ``step_size`` (default 2.5·ε/steps, Madry et al.'s rule) on the
    cross-entropy (``loss="ce"``) or the C&W margin (``"margin"``), each projected onto the
    ε-ball ∩ [0, 1]. An example stops at its first adversarial iterate; the answer is verified
    by a fresh forward pass like every other attack's (``grid`` off by default: the ε bound is
    exact). ``c`` of the result is ε."""

    name = "pgd"

    def __init__(self, model: nn.Module, *, eps: float, steps: int = 100,
                 step_size: Optional[float] = None, loss: str = "ce", random_start: bool = True,
                 normalize: Optional[tuple] = None, seed: int = 0, grid: bool = False):
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
            raise ValueError(f"eps must be a positive finite number; got {eps!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
            raise ValueError(f"steps must be a positive integer; got {steps!r}")
        if step_size is not None and not 0 < step_size < math.inf:
            raise ValueError(f"step_size must be a positive finite number; got {step_size!r}")
        if loss not in PGD_LOSSES:
            raise ValueError(f"loss must be one of {PGD_LOSSES}; got {loss!r}")
        super().__init__(model, normalize=normalize, seed=seed, grid=grid)
        self.eps, self.steps, self.loss = float(eps), steps, loss
        self.step_size = 2.5 * self.eps / steps if step_size is None else float(step_size)
        self.random_start = random_start

    def identity(self) -> Dict[str, Any]:
        return {"baseline": self.name, "eps": self.eps, "steps": self.steps,
                "step_size": self.step_size, "loss": self.loss,
                "random_start": self.random_start}

    def solve_batch(self, x0: Tensor, index: Tensor, tg: Targets, grid: bool
                    ) -> AttackResult:
        start = random_start(x0, self.eps, self.seed) if self.random_start else None
        evals = Evaluations.zeros(x0.shape[0], x0.device)
        run = pgd(self.classifier, x0, tg, self.eps, self.steps, self.step_size,
                  loss=self.loss, start=start, evidence=evals.evidence)
        evals.gradient += run.gradient_evals
        adv, success = settle(self.classifier, x0, tg, run.delta, torch.ones_like(run.found),
                              evals, grid=grid, eps=self.eps, claimed=run.found)
        eps = torch.full_like(success, self.eps, dtype=x0.dtype)
        outcome = Outcome(adversarial=adv, success=success, c=failed_nan(eps, success),
                          gradient_evals=evals.gradient, forward_evals=evals.forward,
                          refined=torch.zeros_like(success),
                          flags=evals.evidence.verdict(success))
        return self.result(x0, index, tg, outcome, grid)


def baseline(name: str, model: nn.Module, **kw) -> GradientAttack:
    """The baseline ``name`` of :data:`BASELINES` on ``model`` (``kw``: seed, grid...)."""
    iterations, norm = lookup(BASELINES, name, "baseline")
    return GradientAttack(model, norm=norm, iterations=iterations, **kw)


def FGM(model: nn.Module, *, norm: str = "inf", **kw) -> GradientAttack:
    """Fast gradient method: one step of size ε."""
    return GradientAttack(model, norm=norm, iterations=1, **kw)


def IFGSM(model: nn.Module, *, norm: str = "inf", iterations: int = 10, **kw) -> GradientAttack:
    """Iterative FGSM: ``iterations`` steps of ε/iterations (paper: 10)."""
    return GradientAttack(model, norm=norm, iterations=iterations, **kw)
