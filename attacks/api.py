"""The Python API in the shape users know: ``StrAttack(model, **params)(images, labels, targets)``.

Images are [0, 1] tensors (B, C, H, W); everything runs on the model's device; results are
deterministic for a given seed (the seed only drives random targets).

Defaults (the same as the CLI's): ``targets=None`` is untargeted, as in torchattacks and
foolbox; ``grid=None`` puts the final examples on the 8-bit grid exactly when the input images
are 8-bit (multiples of 1/255), so a saved PNG is the verified example; ``threads=None`` runs
each call on one CPU thread (or ``OMP_NUM_THREADS``), torch's setting restored afterwards;
``verbose=None`` shows a progress bar where a person is watching (a terminal or a notebook);
``batch_size=None`` attacks :data:`DEFAULT_BATCH_SIZE` examples at a time. See
docs/adapters.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Tuple, Union

import attrs
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from attacks import builtin
from attacks.base import (DEFAULT_BATCH_SIZE, AttackBase, failed_nan, on_threads,
                          resolve_grid)
from attacks.classifier import in_eval_mode
from attacks.engine import Best, Engine
from attacks.progress import ProgressCallback, shows_progress
from attacks.result import AttackResult
from attacks.runs.job import python_job
from attacks.runs.runner import run_attack
from attacks.spec import AttackSpec, RefineSpec, default_c
from attacks.targets import TargetChoice, Targets
from attacks.verify import Evaluations, Outcome, verify

__all__ = ["Attack", "CWL2", "DEFAULT_BATCH_SIZE", "EAD", "LinfAttack", "Refine", "StrAttack",
           "gather", "resolve_grid"]

#: What :meth:`Attack.run` accepts: a DataLoader (or any iterable) of ``(images, labels)``
#: batches, or a Dataset of ``(image, label)`` pairs.
Data = Union[DataLoader, Dataset, Iterable[Tuple[Tensor, Tensor]]]


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


class Attack(AttackBase):
    """Run an :class:`AttackSpec` on a classifier. Subclasses only choose the spec builder.

    ``normalize=(mean, std)``: the model expects normalised inputs (applied inside it).
    ``batch_size``: examples per engine batch (the unit of progress; default
    :data:`DEFAULT_BATCH_SIZE`, or a DataLoader's own in :meth:`run`).
    ``grid``: None (default) on for 8-bit images, True/False to force it.
    ``threads``: torch's CPU threads during each call, restored afterwards (None: one, or
    ``OMP_NUM_THREADS`` when set, as the CLI; 0: torch's default, one per core; N: N).
    ``verbose``: a rich progress bar per batch on stderr (None, the default: where a person is
    watching, i.e. a terminal or a notebook; quiet in scripts and tests);
    ``progress(done, total, part)`` is called after each batch.
    """

    builder: Optional[Callable[..., AttackSpec]] = None

    def __init__(self, model: nn.Module, spec: Optional[AttackSpec] = None, *,
                 normalize: Optional[tuple] = None, seed: int = 0,
                 batch_size: Optional[int] = None, grid: Optional[bool] = None,
                 threads: Optional[int] = None, verbose: Optional[bool] = None,
                 progress: Optional[ProgressCallback] = None, **params):
        if spec is None:
            if self.builder is None:
                raise TypeError("Attack needs a spec (or use StrAttack, CWL2, EAD, LinfAttack)")
            spec = type(self).builder(**params)
        elif params:
            raise TypeError(f"give either a spec or parameters, not both: {sorted(params)}")
        super().__init__(model, normalize=normalize, seed=seed, grid=grid, batch_size=batch_size,
                         threads=threads, verbose=verbose, progress=progress)
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def identity(self):
        return {"spec": self.spec.to_dict()}

    def own_groups(self, shape):
        return self.spec.groups(tuple(shape))

    def files(self):
        return {"spec.toml": self.spec.to_toml()}

    @on_threads
    def run(self, data: Data, targets: TargetChoice = None, *, out=None,
            restart: bool = False) -> AttackResult:
        """Attack every example of a DataLoader or Dataset: the batches are gathered, targets
        drawn for the whole set (as the CLI does), and the examples attacked ``batch_size`` at
        a time (default: the loader's batch size, else :data:`DEFAULT_BATCH_SIZE`).
        ``source_index`` counts examples in iteration order.

        ``out``: a run directory, written and resumed exactly as ``admm-attack solve`` does
        (same files, same resume rules: run the same call again after an interruption and the
        finished batches are kept; ``restart=True`` discards them). Without it, in memory."""
        images, labels, loader_batch = gather(data, self.batch_size)
        batch_size = self.batch_size or loader_batch or DEFAULT_BATCH_SIZE
        examples = self.examples(images, labels, targets)
        if out is None:
            return self.attack_examples(examples, batch_size)
        job = python_job(self, examples.cpu(), targets, batch_size)
        quiet = not shows_progress(self.verbose)
        return run_attack(job, Path(out), restart=restart, quiet=quiet).result

    def solve_batch(self, x0: Tensor, index: Tensor, tg: Targets, grid: bool
                    ) -> AttackResult:
        engine = Engine(self.classifier, self.spec, tuple(x0.shape[1:]), grid=grid,
                        seed=self.seed)
        return self.result(x0, index, tg, engine.run(x0, tg), grid)


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


class Refine(AttackBase):
    """Refine any perturbation under its own support (Sec. 4.2; usable after any attack).

    ``Refine(model, spec)(images, labels, delta, targets)`` re-solves the spec's loss and
    distortion on the support of ``delta`` (minus its smallest ``quantile`` entries), starting
    from ``delta``; it keeps the refined answer where that succeeds, else ``delta`` where that is
    adversarial, else reports failure. ``c`` defaults to the spec's (or the dataset's) constant.
    ``grid`` snaps the final examples onto the 8-bit grid and re-verifies them (attacks.grid);
    None (default) does so for 8-bit images, as :class:`Attack` does. ``threads`` as
    :class:`Attack`'s (one solve per call: no batches, no progress bar).
    """

    def __init__(self, model: nn.Module, spec: Optional[AttackSpec] = None, *,
                 quantile: float = 0.03, iterations: int = 400, c: Optional[float] = None,
                 normalize: Optional[tuple] = None, seed: int = 0,
                 grid: Optional[bool] = None, threads: Optional[int] = None):
        super().__init__(model, normalize=normalize, seed=seed, grid=grid, threads=threads)
        spec = spec or builtin.cw_l2()
        self.spec = attrs.evolve(spec, refine=RefineSpec(quantile, iterations))
        self.c = c

    @property
    def name(self) -> str:
        return f"refined-{self.spec.name}"

    def own_groups(self, shape):
        return self.spec.groups(tuple(shape))

    @on_threads
    def __call__(self, images: Tensor, labels: Tensor, delta: Tensor,
                 targets: TargetChoice = None) -> AttackResult:
        if isinstance(targets, str) and targets == "all":
            raise ValueError('Refine needs one target per perturbation, not "all"')
        examples = self.examples(images, labels, targets)
        images = examples.images
        if not isinstance(delta, Tensor) or delta.shape != images.shape:
            raise ValueError(f"delta must be a tensor of the images' shape {tuple(images.shape)}")
        return self.refine(images, examples.index, examples.targets,
                           delta.to(images.device, images.dtype), examples.grid)

    @in_eval_mode
    def refine(self, images: Tensor, index: Tensor, tg: Targets, delta: Tensor, grid: bool
               ) -> AttackResult:
        shape = tuple(images.shape[1:])
        evals = Evaluations.zeros(images.shape[0], images.device, self.spec.search.budget)
        start, found = verify(self.classifier, images, delta,  # is the given δ adversarial?
                              torch.ones_like(tg.labels, dtype=torch.bool), tg, evals)
        best = Best.empty(images)
        best.delta, best.found = start - images, found
        best.c = torch.full_like(best.score, self.c or self.spec.loss.c or default_c(shape))
        engine = Engine(self.classifier, self.spec, shape, grid=grid,
                        seed=self.seed).for_batch(images, tg, evals)
        refined = engine.refine(images, tg, best, evals, from_search=False)
        final, success = engine.finish(images, tg, best, evals)
        outcome = Outcome(adversarial=final, success=success, c=failed_nan(best.c, success),
                          gradient_evals=evals.gradient, forward_evals=evals.forward,
                          refined=refined & success, flags=evals.evidence.verdict(success))
        return self.result(images, index, tg, outcome, grid)
