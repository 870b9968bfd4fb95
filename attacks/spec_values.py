"""The value types of an attack spec: frozen attrs records that validate themselves once, with
errors that name the key (``solver.rho: expected a positive number, found -1.0``).

    minimize_δ  c·margin(x0 + δ) + Σ_terms term(δ)   s.t.  x0 + δ ∈ [0, 1]^n,  ||δ||∞ ≤ ε

The terms (each a prox-able admmkit function, optionally on sliding groups), the loss, the
solver settings and the refine stage live here; the search over ``c`` in
:mod:`attacks.search_spec`; the whole spec (:class:`attacks.spec.AttackSpec`) on top of both.
This module imports nothing above it: the dict codec (:mod:`attacks.schema`), the TOML files
(:mod:`attacks.spec_toml`) and the catalogue (:mod:`attacks.catalogue`) build on it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import attrs
from torch import Tensor

from admmkit.groups import SlidingGroups
from admmkit.prox import Box, BoxLinf, ProxFunction
from admmkit.solver import ADMMSettings, ConstantSchedule, SqrtSchedule
from attacks.errors import UserError, lookup, suggest
from attacks.terms import TERM_KINDS

ROLES = ("distortion", "regularizer")

#: How a term's weight w applies to an example: "none", as written; "boundary", w·s^(2 − d)
#: per example, with d the kind's degree (:attr:`attacks.terms.TermKind.degree`) and
#: s = (margin(x₀) + κ)₊ / ||∇ₓ margin(x₀)||₂ the example's distance to the decision boundary
#: linearised at x₀ (one gradient evaluation). Against the ℓ2² distortion (degree 2) the
#: balance then no longer depends on the scale of the model's perturbations: a model whose
#: adversarial distances are k× smaller (CIFAR-10 against MNIST) meets a k× smaller τ.
SCALES = ("none", "boundary")

#: upper bounds of the search's counts (far above any useful setting; beyond, a run never ends)
MAX_STEPS = 1_000
MAX_ITERATIONS = 1_000_000
#: a spec's name names its output folders: a safe slug
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
DECISIONS = ("objective", "l0", "l1", "l2", "linf")
#: the widest group side (and stride): the widest image any loader reads (8192² pixels)
MAX_GROUP_SIDE = 8192
#: float32's largest value: an attack computes in the model's floating type (float32 for every
#: model shipped), so every number a run derives from a spec value must stay below it
FLOAT32_MAX = 3.4028234663852886e38
#: the largest margin (in logits) a model is assumed to give: c·∇margin, μ·margin and κ must
#: stay finite in float32 up to it (c·∇margin squared: the search's step ratio and the failure
#: indicators take squared gradient norms; measured on mnist-cw, c = 1e20 and μ = 1e16 made
#: them non-finite, c = 1e16 and μ = 1e12 did not)
MAX_MARGIN = 1e6
#: the longest solve (search iterations + rescue iterations): η_k = η·√k up to k = this
LONGEST_SOLVE = 2 * MAX_ITERATIONS


class SpecError(UserError):
    """A spec that cannot be built; the message names the key, what was expected and found."""


class DeprecatedSpecKey(FutureWarning):
    """A spec key in an older layout that is still read (the message names the new key).

    A :class:`FutureWarning` (shown by default): spec files and ``--set`` are written by end
    users, not by library code."""


def expect(cond: bool, key: str, expected: str, found) -> None:
    if not cond:
        raise SpecError(f"{key}: expected {expected}, found {describe(found)}")


def finite(value) -> bool:
    """Whether the number ``value`` is finite (an integer of any size is)."""
    return isinstance(value, int) or math.isfinite(value)


def in_float32(key: str, value, factor: float = 1.0, reason: str = "",
               squared: bool = False) -> None:
    """Refuse ``value`` when ``value × factor`` — the largest number a run derives from it
    (``reason``) — is not finite in float32 (:data:`FLOAT32_MAX`), or with ``squared`` its
    square is not (a gradient scaled by it enters squared norms)."""
    bound = (math.sqrt(FLOAT32_MAX) if squared else FLOAT32_MAX) / factor
    why = (f"{reason} must stay finite in float32{', squared' if squared else ''}" if reason
           else "float32's largest value")
    expect(abs(value) <= bound, key, f"at most {bound:.3g} ({why})", value)


def number(key: str, value, *, positive=False, non_negative=False, integer=False):
    """``value`` checked as a number of ``key`` (an integer with ``integer``, else a number
    that float32 holds)."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    expect(ok_type and not isinstance(value, bool), key, "an integer" if integer else "a number",
           value)
    expect(finite(value), key, "a finite number", value)
    if not integer:
        in_float32(key, value)
    if positive:
        expect(value > 0, key, "a positive number", value)
    if non_negative:
        expect(value >= 0, key, "a number >= 0", value)
    return value


def describe(value: Any) -> str:
    """A found value for an error message: ``'abc' (a string)``, ``a table``, ``2.5``."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 64:  # repr fails beyond 4,300 digits
        return f"an integer of about {math.ceil(value.bit_length() * math.log10(2))} digits"
    return repr(value)


def positive_number(instance, attribute, value):
    number(attribute.name, value, positive=True)


def positive_int(instance, attribute, value):
    number(attribute.name, value, positive=True, integer=True)


def non_negative_int(instance, attribute, value):
    number(attribute.name, value, non_negative=True, integer=True)


def non_negative_number(instance, attribute, value):
    number(attribute.name, value, non_negative=True)


def optional_positive(instance, attribute, value):
    if value is not None:
        number(attribute.name, value, positive=True)


def optional_positive_int(instance, attribute, value):
    if value is not None:
        number(attribute.name, value, positive=True, integer=True)


@attrs.frozen
class GroupSpec:
    """Sliding ``size × size × C`` groups with ``stride`` (None: the dataset's default, see
    :func:`default_groups`). ``copies``: "local" (general-form consensus) or "full" (the
    paper's own eq. 16 splitting)."""

    size: Optional[int] = attrs.field(default=None, validator=optional_positive_int)
    stride: Optional[int] = attrs.field(default=None, validator=optional_positive_int)
    copies: str = attrs.field(default="local")
    overlapping: bool = False

    def __attrs_post_init__(self):
        for key in ("size", "stride"):
            value = getattr(self, key)
            expect(value is None or value <= MAX_GROUP_SIDE, key,
                   f"at most {MAX_GROUP_SIDE:,} (pixels: no image is wider)", value)

    @copies.validator
    def _c(self, attribute, value):
        expect(value in ("local", "full"), "copies", '"local" or "full"', value)

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
    ``params``; ``groups`` exactly when the kind acts on sliding groups. Its rules are checked
    here and nowhere else (:func:`check_term`)."""

    kind: str
    role: str = "regularizer"
    params: Dict[str, float] = attrs.field(factory=dict)
    groups: Optional[GroupSpec] = None
    name: str = ""
    scale: str = "none"

    @staticmethod
    def label_of(name: str, kind: str) -> str:
        """How errors address a term: ``terms.<name>``, else ``terms.<kind>``."""
        return f"terms.{name or kind}"

    def __attrs_post_init__(self):
        check_term(self.label_of(self.name, self.kind), self.kind, self.role, self.params,
                   self.groups, self.scale)

    def weight_factor(self, s: Tensor) -> Tensor:
        """The per-example factor of the term's weight for distances ``s`` (B,) to the
        boundary: s^(2 − degree) with ``scale = "boundary"`` (:data:`SCALES`)."""
        return s ** (2 - TERM_KINDS[self.kind].degree)

    def function(self) -> ProxFunction:
        kind = TERM_KINDS[self.kind]
        try:
            return kind.operator(**{**kind.defaults, **self.params})
        except (ValueError, TypeError) as e:
            raise SpecError(f"term {self.name or self.kind}: {e}") from None


def check_term(label: str, kind: Any, role: Any, params: Mapping, groups: Any,
               scale: Any = "none") -> None:
    """The rules of a term, every error under ``label`` (``terms.groups.params.weight: ...``):
    a registered kind, a known role, the kind's own parameters (finite, >= 0), a groups
    table exactly for the kinds that act on groups, and a ``scale`` that changes something
    (:data:`SCALES`: "boundary" needs a homogeneous kind of degree other than 2)."""
    kinds = sorted(TERM_KINDS)
    lookup(TERM_KINDS, kind, "kind", where=f"{label}.kind", error=SpecError)
    if role not in ROLES:
        raise SpecError(f"{label}.role: expected one of {', '.join(ROLES)}, found {role!r}")
    declared = TERM_KINDS[kind].params
    for p, v in params.items():
        if p not in declared:
            raise SpecError(f"{label}.params: unknown parameter {p!r}{suggest(p, declared)} "
                            f"for kind {kind}; expected among {', '.join(sorted(declared))}")
        expect(isinstance(v, (int, float)) and not isinstance(v, bool), f"{label}.params.{p}",
               "a number", v)
        expect(finite(v) and v >= 0, f"{label}.params.{p}", "a finite number >= 0", v)
        in_float32(f"{label}.params.{p}", v)
    if TERM_KINDS[kind].grouped and groups is None:
        raise SpecError(f"{label}.groups: missing; kind {kind} needs a groups table "
                        "([terms.groups], may be empty for the dataset defaults)")
    expect(scale in SCALES, f"{label}.scale", f"one of {', '.join(SCALES)}", scale)
    degree = TERM_KINDS[kind].degree
    if scale == "boundary" and degree in (None, 2):
        raise SpecError(f"{label}.scale: kind {kind} " + (
            "is not homogeneous in δ, so no power of the distance scales it; use \"none\""
            if degree is None else "has the ℓ2² distortion's degree 2: its balance does not "
            "depend on the scale; use \"none\""))
    if not TERM_KINDS[kind].grouped and groups is not None:
        raise SpecError(f"{label}.groups: kind {kind} acts on single pixels and takes no "
                        "groups table; remove it (group kinds: "
                        f"{', '.join(k for k in kinds if TERM_KINDS[k].grouped)})")


@attrs.frozen
class LossSpec:
    """The C&W margin loss (eq. 3): confidence ``kappa`` and initial constant ``c``
    (None: the dataset's default, :func:`default_c`). ``project``: evaluate the model at the
    valid image ``x0 + P(z)`` (P the projection onto the box and ε-ball; the same problem,
    and the model never sees an invalid image) instead of at ``x0 + z`` (the paper's eq. 14)."""

    kind: str = "margin"
    kappa: float = attrs.field(default=0.0, validator=non_negative_number)
    c: Optional[float] = attrs.field(default=None, validator=optional_positive)
    project: bool = True

    def __attrs_post_init__(self):
        expect(self.kind == "margin", "loss.kind", '"margin"', self.kind)
        expect(self.kappa <= MAX_MARGIN, "loss.kappa", f"at most {MAX_MARGIN:g} (a margin in "
               "logits)", self.kappa)
        if self.c is not None:
            in_float32("loss.c", self.c, MAX_MARGIN, f"c·∇margin (margins up to "
                       f"{MAX_MARGIN:g})", squared=True)


@attrs.frozen
class SolverSpec:
    """Linearized ADMM settings (paper appendix F: ρ = 1, η_k = 5·√k). ``compact_below``: at
    a check of the solver where fewer than this fraction of a solve's rows are still running,
    the model and the solver go on with those rows alone (0: never;
    ``ADMMSettings.compact_below``); the results are the same."""

    rho: float = attrs.field(default=1.0, validator=positive_number)
    eta: float = attrs.field(default=5.0, validator=positive_number)
    eta_schedule: str = "sqrt"
    adaptive_rho: bool = False
    compact_below: float = attrs.field(default=1.0, validator=non_negative_number)

    def __attrs_post_init__(self):
        expect(self.eta_schedule in ("sqrt", "constant"), "solver.eta_schedule",
               '"sqrt" or "constant"', self.eta_schedule)
        in_float32("solver.rho", self.rho, ADMMSettings().rho_factor, "ρ·rho_factor "
                   "(adaptive ρ)")
        in_float32("solver.eta", self.eta, math.sqrt(LONGEST_SOLVE), "η·√k over the longest "
                   "solve")
        expect(self.compact_below <= 1, "solver.compact_below", "a fraction in [0, 1]",
               self.compact_below)

    def settings(self, iterations: int) -> ADMMSettings:
        eta = SqrtSchedule(self.eta) if self.eta_schedule == "sqrt" else ConstantSchedule(self.eta)
        # attacks run a fixed budget and stop samples themselves: no residual stopping
        return ADMMSettings(rho=self.rho, eta=eta, max_iter=iterations, tol_abs=0.0, tol_rel=0.0,
                            adaptive_rho=self.adaptive_rho, compact_below=self.compact_below)


@attrs.frozen
class RefineSpec:
    """Fixed-support re-solve (paper Sec. 4.2): zero every |δ*_i| ≤ σ, σ the ``quantile`` of
    the sample's non-zero |δ*|, then minimise loss + distortion on the remaining support
    (with the search's handling of ``c``, starting where the search strategy says:
    :meth:`attacks.search.base.Strategy.refine_c`; after the lagrangian search, its multiplier
    rescaled to the refine problem). The refined example replaces the search's when it is
    adversarial and its distortion is lower. The paper: ``quantile`` 0.03
    (:data:`PAPER_REFINE`)."""

    quantile: float = attrs.field(default=0.15, validator=non_negative_number)
    iterations: int = attrs.field(default=110, validator=positive_int)

    def __attrs_post_init__(self):
        expect(self.quantile < 1, "refine.quantile", "a number in [0, 1)", self.quantile)
        expect(self.iterations <= MAX_ITERATIONS, "refine.iterations",
               f"at most {MAX_ITERATIONS:,}", self.iterations)


#: The paper's refine: σ at the 3% quantile, solved as long as the search's first steps.
PAPER_REFINE = RefineSpec(quantile=0.03, iterations=400)


def default_c(shape, scale: str = "none") -> float:
    """Appendix F: c = 0.5 on 28×28×1, 0.25 on 32×32×3, 2.5 on larger images. With
    ``search.scale = "boundary"`` c is in units of each example's own c* (:data:`SCALES`) and
    0.5 on every data set: appendix F's MNIST value, where mnist-cw's digits have c* ≈ 1."""
    if scale == "boundary":
        return 0.5
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
