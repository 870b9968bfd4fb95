"""Attack specifications: a declarative description of problem (2) that builds admmkit problems.

    minimize_δ  c·margin(x0 + δ) + Σ_terms term(δ)   s.t.  x0 + δ ∈ [0, 1]^n,  ||δ||∞ ≤ ε

A spec names the loss, the terms (each a prox-able admmkit function, optionally on sliding
groups), the constraint, the solver settings, the outer search over ``c``, the refine stage and
the rule that ranks successful candidates. Every built-in attack is one of these
(:mod:`attacks.builtin`); new formulations need no Python: :meth:`AttackSpec.from_toml` reads one from a TOML file
(schema: :mod:`attacks.schema`; writer: :mod:`attacks.spec_toml`; term kinds:
:mod:`attacks.terms`).
"""

from __future__ import annotations

import math
import re
from typing import Dict, Optional, Tuple

import attrs
import torch
from torch import Tensor

from admmkit.groups import SlidingGroups
from admmkit.prox import Box, BoxLinf, ProxFunction
from admmkit.solver import ADMMSettings, ConstantSchedule, SqrtSchedule
from attacks.errors import UserError
from attacks.terms import TERM_KINDS

ROLES = ("distortion", "regularizer")
#: upper bounds of the search's counts (far above any useful setting; beyond, a run never ends)
MAX_STEPS = 1_000
MAX_ITERATIONS = 1_000_000
#: a spec's name names its output folders: a safe slug
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
DECISIONS = ("objective", "l0", "l1", "l2", "linf")


class SpecError(UserError):
    """A spec that cannot be built; the message names the key, what was expected and found."""


def _check(cond: bool, key: str, expected: str, found) -> None:
    if not cond:
        raise SpecError(f"{key}: expected {expected}, found {found!r}")


def _number(key: str, value, *, positive=False, non_negative=False, integer=False):
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    _check(ok_type and not isinstance(value, bool), key, "an integer" if integer else "a number",
           value)
    _check(math.isfinite(value), key, "a finite number", value)
    if positive:
        _check(value > 0, key, "a positive number", value)
    if non_negative:
        _check(value >= 0, key, "a number >= 0", value)
    return value


def _pos(instance, attribute, value):
    _number(attribute.name, value, positive=True)


def _pos_int(instance, attribute, value):
    _number(attribute.name, value, positive=True, integer=True)


def _nonneg_int(instance, attribute, value):
    _number(attribute.name, value, non_negative=True, integer=True)


def _nonneg(instance, attribute, value):
    _number(attribute.name, value, non_negative=True)


def _opt_pos(instance, attribute, value):
    if value is not None:
        _number(attribute.name, value, positive=True)


def _opt_pos_int(instance, attribute, value):
    if value is not None:
        _number(attribute.name, value, positive=True, integer=True)


@attrs.frozen
class GroupSpec:
    """Sliding ``size × size × C`` groups with ``stride`` (None: the dataset's default, see
    :func:`default_groups`). ``copies``: "local" (general-form consensus) or "full" (the
    paper's own eq. 16 splitting)."""

    size: Optional[int] = attrs.field(default=None, validator=_opt_pos_int)
    stride: Optional[int] = attrs.field(default=None, validator=_opt_pos_int)
    copies: str = attrs.field(default="local")
    overlapping: bool = False

    @copies.validator
    def _c(self, attribute, value):
        _check(value in ("local", "full"), "copies", '"local" or "full"', value)

    def resolve(self, shape) -> SlidingGroups:
        size, stride = default_groups(shape, self.overlapping)
        size = self.size or size
        stride = self.stride or (stride if self.size is None else size)
        try:
            return SlidingGroups(shape, size, stride)
        except ValueError as e:
            raise SpecError(f"groups: {e}") from None


@attrs.frozen
class TermSpec:
    """One term of the objective: ``kind`` from :data:`attacks.terms.TERM_KINDS` with its
    ``params``."""

    kind: str
    role: str = "regularizer"
    params: Dict[str, float] = attrs.field(factory=dict)
    groups: Optional[GroupSpec] = None
    name: str = ""

    def __attrs_post_init__(self):
        key = f"term {self.name or self.kind}"
        _check(self.kind in TERM_KINDS, f"{key}.kind", f"one of {sorted(TERM_KINDS)}", self.kind)
        _check(self.role in ROLES, f"{key}.role", f"one of {ROLES}", self.role)
        kind = TERM_KINDS[self.kind]
        for p, v in self.params.items():
            _check(p in kind.params, f"{key}.params", f"parameters among {sorted(kind.params)}",
                   p)
            _number(f"{key}.params.{p}", v, non_negative=True)
        _check(kind.grouped == (self.groups is not None), f"{key}.groups",
               "groups" if kind.grouped else "no groups (this kind acts on pixels)",
               self.groups)

    def function(self) -> ProxFunction:
        kind = TERM_KINDS[self.kind]
        try:
            return kind.operator(**{**kind.defaults, **self.params})
        except (ValueError, TypeError) as e:
            raise SpecError(f"term {self.name or self.kind}: {e}") from None


@attrs.frozen
class LossSpec:
    """The C&W margin loss (eq. 3): confidence ``kappa`` and initial constant ``c``
    (None: the dataset's default, :func:`default_c`). ``project``: evaluate the model at the
    valid image ``x0 + P(z)`` (P the projection onto the box and ε-ball; the same problem,
    and the model never sees an invalid image) instead of at ``x0 + z`` (the paper's eq. 14)."""

    kind: str = "margin"
    kappa: float = attrs.field(default=0.0, validator=_nonneg)
    c: Optional[float] = attrs.field(default=None, validator=_opt_pos)
    project: bool = True

    def __attrs_post_init__(self):
        _check(self.kind == "margin", "loss.kind", '"margin"', self.kind)


@attrs.frozen
class SolverSpec:
    """Linearized ADMM settings (paper appendix F: ρ = 1, η_k = 5·√k)."""

    rho: float = attrs.field(default=1.0, validator=_pos)
    eta: float = attrs.field(default=5.0, validator=_pos)
    eta_schedule: str = "sqrt"
    adaptive_rho: bool = False

    def __attrs_post_init__(self):
        _check(self.eta_schedule in ("sqrt", "constant"), "solver.eta_schedule",
               '"sqrt" or "constant"', self.eta_schedule)

    def settings(self, iterations: int) -> ADMMSettings:
        eta = SqrtSchedule(self.eta) if self.eta_schedule == "sqrt" else ConstantSchedule(self.eta)
        # attacks run a fixed budget and stop samples themselves: no residual stopping
        return ADMMSettings(rho=self.rho, eta=eta, max_iter=iterations, tol_abs=0.0, tol_rel=0.0,
                            adaptive_rho=self.adaptive_rho)


def _opt_budget(instance, attribute, value):
    if value is not None:
        _number("search.budget", value, positive=True, integer=True)


SEARCH_MODES = ("lagrangian", "binary")
SEARCH_STARTS = ("auto", "zero", "pgd")


@attrs.frozen
class SearchSpec:
    """How ``c`` is found per sample, and the hard per-example budget.

    mode         "lagrangian" (default): one solve of the augmented Lagrangian of the constraint
                 margin + κ ≤ 0 (:func:`attacks.losses.lagrangian_margin_loss`), ``c`` its
                 per-sample multiplier, updated at every check by the method of multipliers
                 c ← max(0, c + mu·(margin + κ)) — raised while the candidate is not
                 adversarial, lowered in proportion to how far past the boundary it is.
                 "binary": the paper's search — restart a solve for each ``c``, growing it by
                 ``growth`` until a success bounds it, then bisecting (``steps`` solves of
                 ``iterations``, then the rescue).
    iterations   lagrangian: ADMM iterations of the solve; binary: of each step
    track_every  test the current candidate for success every N iterations (a "check")
    rescue_iterations  examples with no success after the search get this many more
                 iterations (0: none): lagrangian: their solve goes on; binary: one cold
                 restart at c0·growth². On top of the search's iterations.
    mu           lagrangian: the multiplier step μ (per unit of margin, in logits)
    mu_growth    lagrangian, in the rescue and the refine: μ ×= mu_growth for an example not
                 yet adversarial whose violation did not halve over the last 5 checks (the
                 augmented Lagrangian's penalty update: μ adapts to the model's scale of
                 logits); 1: μ fixed
    mu_growth_limit  lagrangian: μ grows to at most mu × this: a larger penalty makes the
                 linearised steps overshoot (on one held-out MNIST example μ grew 2^20-fold, the
                 margin went from oscillating near 0 to 6, and the example was lost)
    steps        binary: search steps (solves) at most
    growth       binary: c ×= growth until a step succeeds
    warm_start   binary: start each step from the best success so far (else from 0)
    patience_tol binary: a sample stops once a step succeeds without improving its best
                 distortion by more than this relative amount
    budget       the most gradient evaluations one example may cost, everything counted
                 (start, search, rescue, refine, grid repair); None: no limit. When the plan
                 (start + search + rescue + refine + 10 grid repair rounds) exceeds it, the
                 search (with its start) and refine shrink in proportion and each stage may
                 also spend what an earlier one left.
    start        where the search starts: "zero" (δ = 0, the paper's), "pgd" (ε-bounded specs
                 only) or "auto" (default: "pgd" where the spec has an ε, else "zero"): "pgd"
                 runs ``start_steps`` steps of ℓ∞ PGD on the cross-entropy from a random
                 start (step 2.5ε/start_steps, :func:`attacks.pgd.pgd`); every adversarial
                 iterate is offered to the best-so-far, so the attack succeeds wherever that PGD
                 does, and the search starts from PGD's δ (the structured solve sparsifies it)
    start_steps  "pgd" start: PGD steps at most (an example stops at its first success)
    """

    mode: str = "lagrangian"
    iterations: int = attrs.field(default=250, validator=_pos_int)
    track_every: int = attrs.field(default=5, validator=_pos_int)
    rescue_iterations: int = attrs.field(default=500, validator=_nonneg_int)
    mu: float = attrs.field(default=0.3, validator=_pos)
    mu_growth: float = attrs.field(default=2.0, validator=_pos)
    mu_growth_limit: float = attrs.field(default=8.0, validator=_pos)
    steps: int = attrs.field(default=6, validator=_pos_int)
    growth: float = attrs.field(default=10.0, validator=_pos)
    warm_start: bool = True
    patience_tol: float = attrs.field(default=1e-3, validator=_nonneg)
    budget: Optional[int] = attrs.field(default=None, validator=_opt_budget)
    start: str = "auto"
    start_steps: int = attrs.field(default=100, validator=_pos_int)

    def __attrs_post_init__(self):
        _check(self.mode in SEARCH_MODES, "search.mode", f"one of {SEARCH_MODES}", self.mode)
        _check(self.start in SEARCH_STARTS, "search.start", f"one of {SEARCH_STARTS}",
               self.start)
        # growth <= 1 never bounds c from above; huge counts are runs that never end
        _check(self.growth > 1, "search.growth", "a number > 1 (c grows by it)", self.growth)
        _check(self.mu_growth >= 1, "search.mu_growth", "a number >= 1", self.mu_growth)
        _check(self.mu_growth_limit >= 1, "search.mu_growth_limit", "a number >= 1",
               self.mu_growth_limit)
        for key, value, most in (("steps", self.steps, MAX_STEPS),
                                 ("iterations", self.iterations, MAX_ITERATIONS),
                                 ("rescue_iterations", self.rescue_iterations, MAX_ITERATIONS),
                                 ("start_steps", self.start_steps, MAX_ITERATIONS)):
            _check(value <= most, f"search.{key}", f"at most {most:,}", value)

    def starts_with_pgd(self, eps: Optional[float]) -> bool:
        """Whether the search starts from PGD's example for a spec with this ``eps``."""
        return self.start == "pgd" or (self.start == "auto" and eps is not None)

    @property
    def planned(self) -> int:
        """Gradient evaluations per example the search plans at most (before any budget and
        without a PGD start)."""
        steps = 1 if self.mode == "lagrangian" else self.steps
        return steps * self.iterations + self.rescue_iterations


#: The paper's search (Sec. 4 and appendix F): binary search on c, 6 steps of 200 iterations
#: with warm starts and a 400-iteration cold rescue.
PAPER_SEARCH = SearchSpec(mode="binary", iterations=200, rescue_iterations=400)


@attrs.frozen
class RefineSpec:
    """Fixed-support re-solve (paper Sec. 4.2): zero every |δ*_i| ≤ σ, σ the ``quantile`` of
    the sample's non-zero |δ*|, then minimise loss + distortion on the remaining support
    (with the search's handling of ``c``; after the lagrangian search it starts at the
    search's multiplier rescaled to the refine problem, see ``Engine._refine_c``). The refined
    example replaces the search's when it is adversarial and its distortion is lower. The
    paper: ``quantile`` 0.03 (:data:`PAPER_REFINE`)."""

    quantile: float = attrs.field(default=0.15, validator=_nonneg)
    iterations: int = attrs.field(default=200, validator=_pos_int)

    def __attrs_post_init__(self):
        _check(self.quantile < 1, "refine.quantile", "a number in [0, 1)", self.quantile)
        _check(self.iterations <= MAX_ITERATIONS, "refine.iterations",
               f"at most {MAX_ITERATIONS:,}", self.iterations)


#: The paper's refine: σ at the 3% quantile, solved as long as the search's first steps.
PAPER_REFINE = RefineSpec(quantile=0.03, iterations=400)


@attrs.frozen
class AttackSpec:
    """A complete attack formulation (see the module docstring)."""

    name: str
    terms: Tuple[TermSpec, ...] = attrs.field(converter=tuple)
    loss: LossSpec = attrs.field(factory=LossSpec)
    eps: Optional[float] = attrs.field(default=None, validator=_opt_pos)
    solver: SolverSpec = attrs.field(factory=SolverSpec)
    search: SearchSpec = attrs.field(factory=SearchSpec)
    refine: Optional[RefineSpec] = None
    decision: str = "objective"
    description: str = ""

    def __attrs_post_init__(self):
        _check(isinstance(self.name, str) and bool(SAFE_NAME.fullmatch(self.name))
               and self.name not in (".", ".."), "name",
               "a short name of letters, digits and . _ + - (it names files and folders: no "
               "separators, not empty, '.' or '..'; at most 64 characters)", self.name)
        _check(self.decision in DECISIONS, "decision", f"one of {DECISIONS}", self.decision)
        names = [t.name for t in self.terms if t.name]
        _check(len(names) == len(set(names)), "terms", "unique names", names)
        _check(self.search.start != "pgd" or self.eps is not None, "search.start",
               '"auto" or "zero" without eps (a "pgd" start needs the ℓ∞ bound eps)',
               self.search.start)

    @property
    def output_term(self) -> Optional[int]:
        """The term whose variable is the attack's candidate: the first regularizer (it carries
        the sparsity pattern), else the first distortion term, else none (use z)."""
        for role in ROLES[::-1]:
            for i, t in enumerate(self.terms):
                if t.role == role:
                    return i
        return None

    def groups(self, shape) -> Optional[SlidingGroups]:
        """The spec's first group structure on images of ``shape``, if any."""
        for t in self.terms:
            if t.groups is not None:
                return t.groups.resolve(shape)
        return None

    def check_fits(self, shape) -> None:
        """Build every term and its groups once for images of ``shape`` (C, H, W): a group
        larger than the image, say, is a :class:`SpecError` naming the term."""
        for i, t in enumerate(self.terms):
            key = f"terms.{t.name or i}"
            try:
                t.function()
            except SpecError as e:
                raise SpecError(f"{key}: {e}") from None
            if t.groups is not None:
                try:
                    t.groups.resolve(shape)
                except SpecError as e:
                    raise SpecError(f"{key}.groups: {str(e).removeprefix('groups: ')}") \
                        from None

    # -- as data and as TOML (attacks.schema, attacks.spec_toml) ----------------------------
    @classmethod
    def from_dict(cls, data: Dict) -> "AttackSpec":
        """Validate the nested dict of a TOML spec and build it (errors name the key)."""
        from attacks.schema import spec_from_dict
        return spec_from_dict(data)

    def to_dict(self) -> Dict:
        """The nested dict of this spec's TOML document."""
        from attacks.schema import spec_to_dict
        return spec_to_dict(self)

    @classmethod
    def from_toml(cls, source) -> "AttackSpec":
        """A spec from a TOML file (a :class:`pathlib.Path`) or TOML text (a ``str``)."""
        from attacks.spec_toml import read_spec
        return read_spec(source)

    def to_toml(self) -> str:
        """This spec as a TOML document with a comment on every key."""
        from attacks.spec_toml import dumps_spec
        return dumps_spec(self)

    def with_overrides(self, *items: str) -> "AttackSpec":
        """A copy with ``KEY=VALUE`` overrides applied (``"search.steps=3"``, ``"refine=false"``,
        ``"terms.groups.params.weight=1"``), validated like a file."""
        from attacks.schema import apply_overrides, spec_from_dict, spec_to_dict
        return spec_from_dict(apply_overrides(spec_to_dict(self), items))


def default_c(shape) -> float:
    """Appendix F: c = 0.5 on 28×28×1, 0.25 on 32×32×3, 2.5 on larger images."""
    c, h, w = shape
    if max(h, w) <= 28:
        return 0.5
    if max(h, w) <= 32:
        return 0.25
    return 2.5


def default_groups(shape, overlapping: bool = False) -> Tuple[int, int]:
    """Appendix F: 2×2 stride 2 (3×3 stride 2 if overlapping) up to 32 px; 13×13 stride 13
    on larger (ImageNet-sized) images (stride 6 when overlapping)."""
    _, h, w = shape
    if max(h, w) <= 64:
        return (3, 2) if overlapping else (2, 2)
    return (13, 6) if overlapping else (13, 13)


def valid_box(x0: Tensor, eps: Optional[float]) -> ProxFunction:
    """``x0 + δ ∈ [0, 1]`` and ``||δ||∞ ≤ ε`` as one coordinate-wise box on δ (eq. 5, 11)."""
    if eps is None:
        return Box(lower=-x0, upper=1 - x0)
    return BoxLinf(lower=-x0, upper=1 - x0, radius=eps)
