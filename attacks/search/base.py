"""What every search over ``c`` shares: the best-so-far record, the strategy base, its registry
and the plain constant ``c``.

A search is a :class:`Strategy` registered under the name of its spec section
(:data:`attacks.search_spec.SECTIONS`): it runs solves through the engine
(:class:`Solves`), decides the ``c`` of each, and says where the refine starts. A new search is
one section (spec side) plus one strategy (here), registered by the same name; the engine
and the other searches stay as they are."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Dict, Optional, Protocol, Tuple, Type

import attrs
import torch
from torch import Tensor

from admmkit import batch_where
from admmkit.solver import ADMMResult
from attacks.search_spec import SearchSpec
from attacks.targets import Targets
from attacks.verify import Evaluations


@attrs.define
class Best:
    """Best-so-far per sample: candidate, its score (lower is better), success and its ``c``."""

    delta: Tensor
    score: Tensor
    found: Tensor
    c: Tensor

    @classmethod
    def empty(cls, like: Tensor) -> "Best":
        b = like.shape[0]
        return cls(delta=torch.zeros_like(like),
                   score=torch.full((b,), math.inf, dtype=like.dtype, device=like.device),
                   found=torch.zeros(b, dtype=torch.bool, device=like.device),
                   c=torch.zeros(b, dtype=like.dtype, device=like.device))

    def offer(self, delta: Tensor, success: Tensor, score: Tensor, c: Tensor) -> None:
        better = success & (score < self.score)
        self.delta = batch_where(better, delta, self.delta)
        self.score = torch.where(better, score, self.score)
        self.found = self.found | better
        self.c = torch.where(better, c, self.c)

    def select(self, idx: Tensor) -> "Best":
        return Best(*(t.index_select(0, idx) for t in attrs.astuple(self, recurse=False)))

    def put(self, idx: Tensor, part: "Best") -> None:
        for f in attrs.fields(Best):
            getattr(self, f.name).index_copy_(0, idx, getattr(part, f.name))


@attrs.frozen
class Start:
    """Where a search starts: the best-so-far (successes found before it, e.g. by PGD) and the
    δ its first solve starts from, (B, ...)."""

    best: Best
    z0: Tensor

    @classmethod
    def zero(cls, x0: Tensor) -> "Start":
        """Nothing found yet, δ = 0 (the paper's start)."""
        return cls(Best.empty(x0), torch.zeros_like(x0))


class FixedC:
    """``c`` held constant during a solve: the smooth term is the paper's loss ``c·max(m, −κ)``
    (eq. 3, :func:`attacks.losses.margin_loss`; ``mu`` None: no augmented Lagrangian)."""

    mu: Optional[Tensor] = None
    #: a sample that first succeeds at iteration k stops no earlier than k + grace
    #: (:class:`attacks.search.tracker.Tracker`, in solves that stop samples after success)
    grace: int = 0

    def __init__(self, c: Tensor):
        self.c = c

    def update(self, excess: Tensor, hit: Tensor, checks: Tensor, iterations: Tensor) -> None:
        """After a check (``excess`` = margin + κ per sample): nothing changes."""


class Solves(Protocol):
    """What a strategy asks of the engine (:class:`attacks.engine.Engine`)."""

    def c0(self, x0: Tensor) -> Tensor:
        """The first ``c`` of each sample, (B,)."""

    def solve(self, idx: Tensor, x0: Tensor, tg: Targets, c: Tensor, best: Best, z0: Tensor,
              cap: Tensor, evals: Evaluations,
              stop_after: Optional[int] = None) -> Tuple[ADMMResult, Tensor]:
        """One tracked ADMM solve of the samples ``idx``: (the solver's result, hit)."""


class Strategy:
    """A search over ``c`` for one spec: ``settings`` its own section of ``spec.search``."""

    name: ClassVar[str] = ""

    def __init__(self, search: SearchSpec):
        self.search = search
        self.settings: Any = search.section(self.name)

    def rule(self, c: Tensor, stop_after: Optional[int],
             mu_unit: Optional[Tensor] = None) -> FixedC:
        """How ``c`` (B,) behaves inside one solve (search, rescue after ``stop_after``, or
        refine): the smooth loss it weighs and its update at every check (``mu_unit``: each
        sample's unit of the multiplier's step, ``search.scale``). Default: fixed."""
        return FixedC(c)

    def run(self, engine: Solves, x0: Tensor, tg: Targets, evals: Evaluations,
            limit: int, start: Start) -> Best:
        """The search from ``start``: every sample's best success, spending at most ``limit``
        gradient evaluations per example in all (``evals`` counts them)."""
        raise NotImplementedError

    def refine_c(self, part: Best, support: Tensor, refined: list, dropped: list) -> Tensor:
        """The refine's starting ``c`` for the successes ``part`` on ``support``, given the
        blocks the refine keeps (``refined``) and drops (``dropped``). Default: the c of the
        success, unchanged."""
        return part.c.clone()


#: section name -> its strategy class
STRATEGIES: Dict[str, Type[Strategy]] = {}


def register_strategy(cls: Type[Strategy]) -> Type[Strategy]:
    """Add ``cls`` under ``cls.name`` (the name of its spec section); a name already taken is
    an error."""
    if cls.name in STRATEGIES:
        raise ValueError(f"search strategy {cls.name!r} is already registered")
    STRATEGIES[cls.name] = cls
    return cls


def strategy_for(search: SearchSpec) -> Strategy:
    """The strategy that runs ``search`` (by its ``mode``)."""
    if search.mode not in STRATEGIES:
        raise ValueError(f"search {search.mode!r} has a spec section but no strategy; "
                         f"strategies: {', '.join(STRATEGIES)}")
    return STRATEGIES[search.mode](search)


__all__ = ["Best", "FixedC", "STRATEGIES", "Solves", "Start", "Strategy", "register_strategy",
           "strategy_for"]
