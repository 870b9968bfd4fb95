"""The attack contract: what every attack of this project shares, from its inputs to its result.

An attack holds a :class:`Classifier` (the model and its normalisation), a seed (for random
targets) and a grid switch. It is used in two steps:

1. set-up, once per call or run (:meth:`AttackBase.examples`): the model/input check,
   the targets expanded into per-example :class:`Targets`, the 8-bit grid decided;
2. :meth:`AttackBase.attack_batch` on each batch of those examples (a subclass writes its
   :meth:`AttackBase.solve_batch`). Every attack finishes a batch the same way:
   :func:`settle` (a fresh forward pass decides success, then the examples are snapped to the
   8-bit grid with the evaluations that costs counted) and :meth:`AttackBase.result` (the
   :class:`AttackResult`, distortions measured on the attack's groups).

``attack(images, labels, targets)`` does both, :data:`DEFAULT_BATCH_SIZE` examples at a time
(``batch_size=``), with a progress bar where a person is watching (``verbose=``,
attacks.progress) and torch on the command line's thread policy for the call's duration
(``threads=``, attacks.runtime); the run layer (attacks.runs) does step 1 once for a whole
run and step 2 batch by batch.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Dict, List, Optional, Tuple

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from attacks.classifier import Classifier, in_eval_mode
from attacks.grid import on_grid, snap_to_grid
from attacks.indicators import SILENT_SUCCESS, UNSTABLE, unstable
from attacks.progress import BatchProgress, ProgressCallback, check_verbose
from attacks.result import AttackResult, build_result
from attacks.runtime import resolve_threads, using_threads
from attacks.shrink import shrink_to_boundary
from attacks.spec import GroupSpec
from attacks.targets import TargetChoice, Targets, expand_targets
from attacks.verify import Evaluations, Outcome, verify

#: repair rounds of :func:`attacks.grid.snap_to_grid` (one gradient evaluation each)
GRID_ROUNDS = 10
#: examples per batch when the caller gives no ``batch_size``: the unit of progress (the
#: command line's ``solve`` default)
DEFAULT_BATCH_SIZE = 16


def resolve_grid(grid: Optional[bool], images: Tensor) -> bool:
    """``grid`` as given, or with ``None`` whether ``images`` are 8-bit (the default)."""
    if grid is not None and not isinstance(grid, bool):
        raise ValueError(f"grid must be True, False or None (on for 8-bit images); got {grid!r}")
    return on_grid(images) if grid is None else grid


@attrs.frozen
class Examples:
    """The checked inputs of one call or run: the images (N, C, H, W) and labels (N,), the
    examples to attack (``index`` (B,) into the images, with their :class:`Targets`) and
    whether the final examples go on the 8-bit grid."""

    images: Tensor
    labels: Tensor
    index: Tensor
    targets: Targets
    grid: bool

    @property
    def size(self) -> int:
        return int(self.index.shape[0])

    @property
    def originals(self) -> np.ndarray:
        """The clean image of every example, (B, C, H, W)."""
        return self.images.index_select(0, self.index.to(self.images.device)).cpu().numpy()

    def slices(self, batch_size: Optional[int] = None) -> List[slice]:
        n = self.size
        b = batch_size or n
        return [slice(i, min(n, i + b)) for i in range(0, n, b)]

    def batch(self, sl: slice) -> Tuple[Tensor, Tensor, Targets]:
        """``(x0, index, targets)`` of the examples ``sl``."""
        idx = self.index[sl]
        rows = torch.arange(sl.start or 0, (sl.start or 0) + idx.shape[0], device=idx.device)
        return self.images.index_select(0, idx), idx, self.targets.select(rows)

    def cpu(self) -> "Examples":
        return Examples(self.images.cpu(), self.labels.cpu(), self.index.cpu(),
                        self.targets.to("cpu"), self.grid)


def settle(model, x0: Tensor, tg: Targets, delta: Tensor, found: Tensor, evals: Evaluations,
           *, grid: bool, eps: Optional[float] = None, claimed: Optional[Tensor] = None,
           shrink_steps: int = 0, kappa: float = 0.0) -> Tuple[Tensor, Tensor]:
    """How every attack ends: verify ``x0 + δ`` by a fresh forward pass and, with ``grid``,
    round, re-verify and repair the examples on the 8-bit grid (at most :data:`GRID_ROUNDS`
    rounds, within what is left of ``evals.budget``); with ``shrink_steps``, move each success
    to the boundary (margin + ``kappa`` ≤ 0) along its δ (:func:`attacks.shrink.
    shrink_to_boundary`, on the grid with ``grid``); returns ``(adversarial, success)`` with
    every evaluation counted in ``evals``.

    The indicators of failure it adds to ``evals.evidence`` (:mod:`attacks.indicators`):
    ``silent_success`` where the search ``claimed`` an adversarial example (default: ``found``)
    that the verification rejects, ``unstable`` where two more evaluations of the final or the
    clean image disagree (not counted in ``evals``: the evaluation's audit)."""
    adv, success = verify(model, x0, delta, found, tg, evals)
    evidence = evals.evidence
    if evidence is not None:
        evidence.flag(SILENT_SUCCESS, (found if claimed is None else claimed) & ~success)
    if grid:
        left = evals.left() if evals.budget is not None else None
        snap = snap_to_grid(model, x0, adv - x0, success, tg, eps, rounds=GRID_ROUNDS,
                            max_repairs=left)
        adv, success = snap.adversarial, snap.success
        evals.gradient += snap.gradient_evals
        evals.forward += snap.forward_evals
    if shrink_steps:
        adv, spent = shrink_to_boundary(model, x0, adv, success, tg, shrink_steps, kappa=kappa,
                                        grid=grid, eps=eps)
        evals.forward += spent
    if evidence is not None:
        evidence.flag(UNSTABLE, unstable(model, adv, x0))
    return adv, success


def check_batch_size(batch_size) -> None:
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool)
                                   or batch_size <= 0):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")


def on_threads(method):
    """Decorator of an attack's public call: torch runs on the attack's thread count
    (:meth:`AttackBase.using_threads`) for the call's duration and gets its own back after."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.using_threads():
            return method(self, *args, **kwargs)

    return wrapper


def failed_nan(value: Tensor, success: Tensor) -> Tensor:
    """``value`` where the example succeeded, NaN where it failed."""
    return torch.where(success, value, torch.full_like(value, math.nan))


class AttackBase:
    """An attack of this project (see the module doc). Subclasses set :attr:`name` (or a
    property), may override :meth:`identity`, :meth:`own_groups` and :meth:`files`, and write
    :meth:`solve_batch`.

    How a call runs: ``batch_size`` examples per batch (default :data:`DEFAULT_BATCH_SIZE`);
    ``threads`` torch's CPU threads during the call (None: the command line's policy, one
    thread or ``OMP_NUM_THREADS``; 0: torch's default, one per core; N: N), the caller's
    setting restored afterwards; ``verbose`` a progress bar per batch on stderr (None: where a
    person is watching, a terminal or a notebook); ``progress(done, total, part)`` is called
    after each batch.
    """

    name: str = "attack"

    def __init__(self, model: nn.Module, *, normalize: Optional[tuple] = None, seed: int = 0,
                 grid: Optional[bool] = None, batch_size: Optional[int] = None,
                 threads: Optional[int] = None, verbose: Optional[bool] = None,
                 progress: Optional[ProgressCallback] = None):
        check_batch_size(batch_size)
        resolve_threads(threads)  # checked now, applied on each call
        check_verbose(verbose)
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be a callable (done, total, part); got "
                            f"{type(progress).__name__}")
        self.classifier = Classifier(model, normalize)
        self.seed = seed
        self.grid = grid  # final examples on the 8-bit grid, re-verified (attacks.grid)
        self.batch_size, self.threads = batch_size, threads
        self.verbose, self.progress = verbose, progress

    def using_threads(self):
        """``with attack.using_threads():`` torch on this attack's ``threads`` (see above)."""
        return using_threads(self.threads)

    # -- set-up -----------------------------------------------------------------------------
    def examples(self, images: Tensor, labels: Tensor, targets: TargetChoice = None,
                 on_warning=None) -> Examples:
        """The one model/input check (images moved to the model's device), the targets
        expanded once, the grid decided once. ``on_warning(text)`` hears what the check warns
        about (default: :func:`warnings.warn`)."""
        images, labels = self.classifier.check_inputs(images, labels, on_warning=on_warning)
        index, tg = expand_targets(labels, self.classifier.num_classes, targets, self.seed)
        return Examples(images, labels, index, tg, resolve_grid(self.grid, images))

    def identity(self) -> Dict[str, Any]:
        """What identifies this attack in a run's resume key."""
        return {"attack": self.name}

    def own_groups(self, shape) -> Any:
        """The groups the attack itself works on (its spec's group terms), or None."""
        return None

    def groups(self, shape) -> Any:
        """The groups the distortions are measured on: the attack's own, else 2×2 windows."""
        return self.own_groups(shape) or GroupSpec().resolve(tuple(shape))

    def files(self) -> Dict[str, str]:
        """The files (name -> text) a run of this attack writes when it starts."""
        return {}

    # -- attacking --------------------------------------------------------------------------
    @on_threads
    @in_eval_mode
    def __call__(self, images: Tensor, labels: Tensor, targets: TargetChoice = None
                 ) -> AttackResult:
        return self.attack_examples(self.examples(images, labels, targets))

    @on_threads
    @in_eval_mode
    def attack_examples(self, examples: Examples, batch_size: Optional[int] = None
                        ) -> AttackResult:
        """Every example, ``batch_size`` at a time (default: the attack's ``batch_size``, else
        :data:`DEFAULT_BATCH_SIZE`)."""
        slices = examples.slices(batch_size or self.batch_size or DEFAULT_BATCH_SIZE)
        parts = []
        with BatchProgress(self.name, len(slices), self.verbose, self.progress) as bar:
            for sl in slices:
                parts.append(self.attack_batch(*examples.batch(sl), examples.grid))
                bar.advance(parts[-1])
        return parts[0] if len(parts) == 1 else AttackResult.concat(parts)

    @in_eval_mode
    def attack_batch(self, x0: Tensor, index: Tensor, tg: Targets, grid: bool
                     ) -> AttackResult:
        """Attack checked clean images ``x0`` (B, C, H, W) towards ``tg`` (moved to the
        model's device first); ``index`` (B,) is their ``source_index``."""
        c = self.classifier
        x0 = x0.to(c.device, c.dtype)
        return self.solve_batch(x0, index.to(c.device), tg.to(c.device), grid)

    def solve_batch(self, x0: Tensor, index: Tensor, tg: Targets, grid: bool
                    ) -> AttackResult:
        """What a subclass writes: :meth:`attack_batch` with everything on the model's
        device."""
        raise NotImplementedError

    # -- finish -----------------------------------------------------------------------------
    def result(self, x0: Tensor, index: Tensor, tg: Targets, outcome: Outcome, grid: bool,
               name: Optional[str] = None) -> AttackResult:
        """The :class:`AttackResult` of a batch's :class:`Outcome`."""
        return build_result(name or self.name, x0, index, tg, outcome,
                            self.groups(tuple(x0.shape[1:])), grid=grid)
