"""The Python API in the shape users know: ``StrAttack(model, **params)(images, labels, targets)``.

Images are [0, 1] tensors (B, C, H, W); everything runs on the model's device; results are
deterministic for a given seed (the seed only drives random targets).
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs
import torch
from torch import Tensor, nn

from attacks import builtin
from attacks.classifier import Classifier
from attacks.engine import Best, Engine
from attacks.result import AttackResult, build_result
from attacks.spec import AttackSpec, GroupSpec, RefineSpec, default_c
from attacks.targets import TargetChoice, expand_targets
from attacks.verify import Evaluations, Outcome, verify


class Attack:
    """Run an :class:`AttackSpec` on a classifier. Subclasses only choose the spec builder."""

    builder: Optional[Callable[..., AttackSpec]] = None

    def __init__(self, model: nn.Module, spec: Optional[AttackSpec] = None, *,
                 normalize: Optional[tuple] = None, seed: int = 0,
                 batch_size: Optional[int] = None, grid: bool = False, **params):
        if spec is None:
            if self.builder is None:
                raise TypeError("Attack needs a spec (or use StrAttack, CWL2, EAD, LinfAttack)")
            spec = type(self).builder(**params)
        elif params:
            raise TypeError(f"give either a spec or parameters, not both: {sorted(params)}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
        self.spec = spec
        self.classifier = Classifier(model, normalize)
        self.seed = seed
        self.batch_size = batch_size
        self.grid = grid  # final examples on the 8-bit grid, re-verified (attacks.grid)

    def __call__(self, images: Tensor, labels: Tensor, targets: TargetChoice = None
                 ) -> AttackResult:
        images, labels = self.classifier.check_inputs(images, labels)
        index, tg = expand_targets(labels, self.classifier.num_classes, targets, self.seed)
        shape = tuple(images.shape[1:])
        engine = Engine(self.classifier, self.spec, shape, grid=self.grid)
        n = index.shape[0]
        step = self.batch_size or n
        parts = []
        for i in range(0, n, step):
            sl = slice(i, min(n, i + step))
            idx = index[sl]
            x0 = images.index_select(0, idx)
            part_tg = tg.select(torch.arange(sl.start, sl.stop, device=idx.device))
            outcome = engine.run(x0, part_tg)
            parts.append(self._result(x0, idx, part_tg, outcome, shape))
        return AttackResult.concat(parts)

    def _result(self, x0, idx, tg, o, shape) -> AttackResult:
        groups = self.spec.groups(shape) or GroupSpec().resolve(shape)
        return build_result(self.spec.name, x0, idx, tg, o, groups, grid=self.grid)


class StrAttack(Attack):
    """Structured attack (non-overlapping groups; ``overlapping=True`` for eqs. 16-18)."""
    builder = staticmethod(builtin.strattack)


class CWL2(Attack):
    """The C&W-ℓ2 objective solved by ADMM."""
    builder = staticmethod(builtin.cw_l2)


class EAD(Attack):
    """Elastic-net attack; ``decision="l1"`` for the L1 rule (default: EN rule)."""
    builder = staticmethod(builtin.ead)


class LinfAttack(Attack):
    """ℓ∞-constrained structured attack (Table 2), refined under fixed support."""
    builder = staticmethod(builtin.linf)


class Refine:
    """Refine any perturbation under its own support (Sec. 4.2; usable after any attack).

    ``Refine(model, spec)(images, labels, delta, targets)`` re-solves the spec's loss and
    distortion on the support of ``delta`` (minus its smallest ``quantile`` entries), starting
    from ``delta``; it keeps the refined answer where that succeeds, else ``delta`` where that is
    adversarial, else reports failure. ``c`` defaults to the spec's (or the dataset's) constant.
    ``grid=True`` snaps the final examples onto the 8-bit grid and re-verifies them (attacks.grid).
    """

    def __init__(self, model: nn.Module, spec: Optional[AttackSpec] = None, *,
                 quantile: float = 0.03, iterations: int = 400, c: Optional[float] = None,
                 normalize: Optional[tuple] = None, seed: int = 0, grid: bool = False):
        spec = spec or builtin.cw_l2()
        self.spec = attrs.evolve(spec, refine=RefineSpec(quantile, iterations))
        self.c = c
        self.classifier = Classifier(model, normalize)
        self.seed = seed
        self.grid = grid

    def __call__(self, images: Tensor, labels: Tensor, delta: Tensor,
                 targets: TargetChoice = None) -> AttackResult:
        images, labels = self.classifier.check_inputs(images, labels)
        if not isinstance(delta, Tensor) or delta.shape != images.shape:
            raise ValueError(f"delta must be a tensor of the images' shape {tuple(images.shape)}")
        if isinstance(targets, str) and targets == "all":
            raise ValueError('Refine needs one target per perturbation, not "all"')
        delta = delta.to(images.device, images.dtype)
        index, tg = expand_targets(labels, self.classifier.num_classes, targets, self.seed)
        shape = tuple(images.shape[1:])
        evals = Evaluations.zeros(images.shape[0], images.device, self.spec.search.budget)
        start, found = verify(self.classifier, images, delta,  # is the given δ adversarial?
                              torch.ones_like(labels, dtype=torch.bool), tg, evals)
        best = Best.empty(images)
        best.delta, best.found = start - images, found
        best.c = torch.full_like(best.score, self.c or self.spec.loss.c or default_c(shape))
        engine = Engine(self.classifier, self.spec, shape, grid=self.grid)
        refined = engine.refine(images, tg, best, evals)
        final, success = engine.finish(images, tg, best, evals)
        outcome = Outcome(adversarial=final, success=success, c=best.c,
                          gradient_evals=evals.gradient, forward_evals=evals.forward,
                          refined=refined & success)
        return build_result(f"refined-{self.spec.name}", images, index, tg, outcome,
                            self.spec.groups(shape) or GroupSpec().resolve(shape), grid=self.grid)
