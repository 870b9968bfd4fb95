"""The Python API in the shape users know: ``StrAttack(model, **params)(images, labels, targets)``.

Images are [0, 1] tensors (B, C, H, W); everything runs on the model's device; results are
deterministic for a given seed (the seed only drives random targets).

Defaults (the same as the CLI's): ``targets=None`` is untargeted, as in torchattacks and
foolbox; ``grid=None`` puts the final examples on the 8-bit grid exactly when the input images
are 8-bit (multiples of 1/255), so a saved PNG is the verified example. See docs/adapters.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Tuple, Union

import attrs
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from attacks import builtin
from attacks.classifier import Classifier, in_eval_mode
from attacks.engine import Best, Engine
from attacks.grid import on_grid
from attacks.progress import BatchProgress, ProgressCallback
from attacks.result import AttackResult, build_result
from attacks.runs import Inputs, Plan, run_attack
from attacks.runs.provenance import (environment, fingerprint, git_revision, model_fingerprint,
                                     now)
from attacks.spec import AttackSpec, GroupSpec, RefineSpec, default_c
from attacks.targets import TargetChoice, Targets, expand_targets
from attacks.verify import Evaluations, Outcome, verify

#: What :meth:`Attack.run` accepts: a DataLoader (or any iterable) of ``(images, labels)``
#: batches, or a Dataset of ``(image, label)`` pairs.
Data = Union[DataLoader, Dataset, Iterable[Tuple[Tensor, Tensor]]]


def resolve_grid(grid: Optional[bool], images: Tensor) -> bool:
    """``grid`` as given, or with ``None`` whether ``images`` are 8-bit (the default)."""
    if grid is not None and not isinstance(grid, bool):
        raise ValueError(f"grid must be True, False or None (on for 8-bit images); got {grid!r}")
    return on_grid(images) if grid is None else grid


def gather(data: Data, batch_size: Optional[int] = None) -> Tuple[Tensor, Tensor, Optional[int]]:
    """All images and labels of ``data`` concatenated in iteration order, and the loader's
    batch size (``None`` when unknown). A Dataset is batched by ``batch_size`` (default 256)."""
    if isinstance(data, Tensor):
        raise TypeError("data must be a DataLoader, a Dataset or an iterable of (images, labels) "
                        "batches; for tensors call the attack: attack(images, labels)")
    if isinstance(data, Dataset) and not isinstance(data, DataLoader):
        data = DataLoader(data, batch_size=batch_size or 256)
    images, labels = [], []
    for i, batch in enumerate(data):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(f"data: batch {i} must be an (images, labels) pair; got "
                             f"{type(batch).__name__}"
                             + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else ""))
        images.append(torch.as_tensor(batch[0]))
        labels.append(torch.as_tensor(batch[1]).reshape(-1))
    if not images:
        raise ValueError("data holds no batches")
    return torch.cat(images), torch.cat(labels), getattr(data, "batch_size", None)


class Attack:
    """Run an :class:`AttackSpec` on a classifier. Subclasses only choose the spec builder.

    ``normalize=(mean, std)``: the model expects normalised inputs (applied inside it).
    ``batch_size``: examples per engine batch (the unit of progress; default all at once).
    ``grid``: None (default) on for 8-bit images, True/False to force it.
    ``verbose=True`` shows a rich progress bar per batch; ``progress(done, total, part)`` is
    called after each batch.
    """

    builder: Optional[Callable[..., AttackSpec]] = None

    def __init__(self, model: nn.Module, spec: Optional[AttackSpec] = None, *,
                 normalize: Optional[tuple] = None, seed: int = 0,
                 batch_size: Optional[int] = None, grid: Optional[bool] = None,
                 verbose: bool = False, progress: Optional[ProgressCallback] = None,
                 **params):
        if spec is None:
            if self.builder is None:
                raise TypeError("Attack needs a spec (or use StrAttack, CWL2, EAD, LinfAttack)")
            spec = type(self).builder(**params)
        elif params:
            raise TypeError(f"give either a spec or parameters, not both: {sorted(params)}")
        check_batch_size(batch_size)
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be a callable (done, total, part); got "
                            f"{type(progress).__name__}")
        self.spec = spec
        self.classifier = Classifier(model, normalize)
        self.seed = seed
        self.batch_size = batch_size
        self.grid = grid  # final examples on the 8-bit grid, re-verified (attacks.grid)
        self.verbose = verbose
        self.progress = progress

    def __call__(self, images: Tensor, labels: Tensor, targets: TargetChoice = None
                 ) -> AttackResult:
        return self._attack(images, labels, targets, self.batch_size)

    def run(self, data: Data, targets: TargetChoice = None, *, out=None,
            restart: bool = False) -> AttackResult:
        """Attack every example of a DataLoader or Dataset: the batches are gathered, targets
        drawn for the whole set (as the CLI does), and the examples attacked ``batch_size`` at
        a time (default: the loader's batch size). ``source_index`` counts examples in
        iteration order.

        ``out``: a run directory, written and resumed exactly as ``admm-attack solve`` does
        (same files, same resume rules: run the same call again after an interruption and the
        finished batches are kept; ``restart=True`` discards them). Without it, in memory."""
        images, labels, loader_batch = gather(data, self.batch_size)
        batch_size = self.batch_size or loader_batch
        if out is None:
            return self._attack(images, labels, targets, batch_size)
        return self._run_into(out, images, labels, targets, batch_size, restart)

    @in_eval_mode
    def _run_into(self, out, images, labels, targets, batch_size, restart) -> AttackResult:
        """:meth:`run` into the run directory ``out`` through the run layer (attacks.runs)."""
        images, labels = self.classifier.check_inputs(images, labels)
        index, tg = expand_targets(labels, self.classifier.num_classes, targets, self.seed)
        grid = resolve_grid(self.grid, images)
        tg = Targets(*(t.cpu() for t in attrs.astuple(tg, recurse=False)))
        plan = Plan(images.cpu(), labels.cpu(), index.cpu(), tg, batch_size or int(index.shape[0]))
        choice = targets if targets is None or isinstance(targets, str) else \
            [int(t) for t in torch.as_tensor(targets).reshape(-1)]
        key = {"spec": self.spec.to_dict(), "model_sha256_16":
               model_fingerprint(self.classifier.net), "normalize": repr(self.classifier.normalize),
               "data_sha256_16": fingerprint(plan.images, plan.labels), "targets": choice,
               "seed": self.seed, "batch_size": plan.batch_size, "grid": grid}
        record = {"tool": "attacks.Attack.run", "examples": plan.size,
                  "images": int(images.shape[0]), **environment()}
        inputs = Inputs(self.classifier.net, self.classifier.device, plan, grid,
                        entry={"started": now(), "git": git_revision()})
        # every batch on the grid decided for the whole set
        attack = lambda x, y, t: self._attack(x, y, t, None, grid=grid)
        done = run_attack(Path(out), inputs, attack, name=self.spec.name, key=key,
                          record=record, files={"spec.toml": self.spec.to_toml()},
                          restart=restart, quiet=not self.verbose,
                          groups=self.spec.groups(tuple(images.shape[1:])))
        return done.result

    @in_eval_mode
    def _attack(self, images, labels, targets, batch_size, grid=None) -> AttackResult:
        images, labels = self.classifier.check_inputs(images, labels)
        index, tg = expand_targets(labels, self.classifier.num_classes, targets, self.seed)
        shape = tuple(images.shape[1:])
        grid = resolve_grid(self.grid, images) if grid is None else grid
        engine = Engine(self.classifier, self.spec, shape, grid=grid, seed=self.seed)
        n = index.shape[0]
        step = batch_size or n
        starts = range(0, n, step)
        parts = []
        with BatchProgress(self.spec.name, len(starts), self.verbose, self.progress) as bar:
            for i in starts:
                sl = slice(i, min(n, i + step))
                idx = index[sl]
                x0 = images.index_select(0, idx)
                part_tg = tg.select(torch.arange(sl.start, sl.stop, device=idx.device))
                outcome = engine.run(x0, part_tg)
                parts.append(self._result(x0, idx, part_tg, outcome, shape, grid))
                bar.advance(parts[-1])
        return AttackResult.concat(parts)

    def _result(self, x0, idx, tg, o, shape, grid) -> AttackResult:
        groups = self.spec.groups(shape) or GroupSpec().resolve(shape)
        return build_result(self.spec.name, x0, idx, tg, o, groups, grid=grid)


def check_batch_size(batch_size) -> None:
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool)
                                   or batch_size <= 0):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")


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
    ``grid`` snaps the final examples onto the 8-bit grid and re-verifies them (attacks.grid);
    None (default) does so for 8-bit images, as :class:`Attack` does.
    """

    def __init__(self, model: nn.Module, spec: Optional[AttackSpec] = None, *,
                 quantile: float = 0.03, iterations: int = 400, c: Optional[float] = None,
                 normalize: Optional[tuple] = None, seed: int = 0,
                 grid: Optional[bool] = None):
        spec = spec or builtin.cw_l2()
        self.spec = attrs.evolve(spec, refine=RefineSpec(quantile, iterations))
        self.c = c
        self.classifier = Classifier(model, normalize)
        self.seed = seed
        self.grid = grid

    @in_eval_mode
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
        grid = resolve_grid(self.grid, images)
        evals = Evaluations.zeros(images.shape[0], images.device, self.spec.search.budget)
        start, found = verify(self.classifier, images, delta,  # is the given δ adversarial?
                              torch.ones_like(labels, dtype=torch.bool), tg, evals)
        best = Best.empty(images)
        best.delta, best.found = start - images, found
        best.c = torch.full_like(best.score, self.c or self.spec.loss.c or default_c(shape))
        engine = Engine(self.classifier, self.spec, shape, grid=grid, seed=self.seed)
        refined = engine.refine(images, tg, best, evals, from_search=False)
        final, success = engine.finish(images, tg, best, evals)
        outcome = Outcome(adversarial=final, success=success, c=best.c,
                          gradient_evals=evals.gradient, forward_evals=evals.forward,
                          refined=refined & success, nonfinite=evals.nonfinite)
        return build_result(f"refined-{self.spec.name}", images, index, tg, outcome,
                            self.spec.groups(shape) or GroupSpec().resolve(shape), grid=grid)
