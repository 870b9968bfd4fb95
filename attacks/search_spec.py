"""The search over ``c`` as spec values: ``[search]`` holds the keys every search shares and
``mode``, the search that runs; each search owns one section (``[search.lagrangian]``,
``[search.binary]``, ...), a frozen attrs record registered here by name.

    [search]
    mode = "lagrangian"          # which section's search runs
    iterations = 130             # ADMM iterations of the solve (binary: of each step)
    [search.lagrangian]
    mu = 0.3
    [search.binary]
    steps = 6

A spec carries the settings of every registered search (absent sections: their defaults), so
switching ``mode`` keeps what was set for the other. A new search is one section class here
(or anywhere: :func:`register_section`) and one strategy (:mod:`attacks.search.base`); the
value types never import the strategies.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Iterable, Mapping, Optional, Union

import attrs

from attacks.errors import lookup
from attacks.spec_values import (MAX_ITERATIONS, MAX_MARGIN, MAX_STEPS, SCALES, SpecError,
                                 expect, in_float32, non_negative_int, non_negative_number,
                                 number, positive_int, positive_number)

#: section name -> its attrs class (the settings of one search strategy), in registration order
SECTIONS: Dict[str, type] = {}


def register_section(cls: type) -> type:
    """Add the search section ``cls`` (an attrs class with a ``name`` class variable and a
    ``planned(search)`` method) under ``cls.name``; a name already taken is an error."""
    if cls.name in SECTIONS:
        raise ValueError(f"search section {cls.name!r} is already registered")
    SECTIONS[cls.name] = cls
    return cls


def setting(default: Any, doc: str, validator=None) -> Any:
    """A field of a search section: its default, the one-line doc the spec writer puts next to
    the key, and its validator."""
    return attrs.field(default=default, validator=validator, metadata={"doc": doc})


#: the largest budget: above what any search may plan (MAX_STEPS solves of MAX_ITERATIONS,
#: the rescue and the refine), so a larger one is no limit at all
MAX_BUDGET = 10 ** 10


def _budget(instance, attribute, value):
    if value is not None:
        number("search.budget", value, positive=True, integer=True)
        expect(value <= MAX_BUDGET, "search.budget", f"at most {MAX_BUDGET:,} (or no budget)",
               value)


def _sections(value: Union[Mapping[str, Any], Iterable[Any]]) -> Dict[str, Any]:
    """The sections given (a mapping name -> section, or section instances), checked against the
    registry and without those equal to their defaults (so equal specs compare equal)."""
    items = value.items() if isinstance(value, Mapping) else ((s.name, s) for s in value)
    out = {}
    for name, section in items:
        cls = lookup(SECTIONS, name, "search", where="search", error=SpecError)
        expect(isinstance(section, cls), f"search.{name}", f"a {cls.__name__}", section)
        if section != cls():
            out[name] = section
    return {name: out[name] for name in SECTIONS if name in out}


#: where a search may start (``search.start``)
STARTS = ("auto", "zero", "pgd")


@attrs.frozen
class SearchSpec:
    """How ``c`` is found per sample, and the hard per-example budget.

    mode         the search that runs: a registered section (:data:`SECTIONS`): "lagrangian"
                 (default, :class:`LagrangianSearch`) or "binary" (the paper's,
                 :class:`BinarySearch`)
    iterations   ADMM iterations of the search's solve (binary: of each step)
    track_every  test the current candidate for success every N iterations (a "check")
    rescue_iterations  examples with no success after the search get this many more
                 iterations (0: none), on top of the search's iterations (lagrangian: their
                 solve goes on; binary: one cold restart at c0·growth²)
    budget       the most gradient evaluations one example may cost, everything counted
                 (start, search, rescue, refine, grid repair); None: no limit. When the plan
                 (start + search + rescue + refine + 10 grid repair rounds) exceeds it, the
                 search (with its start) and refine shrink in proportion and each stage may
                 also spend what an earlier one left.
    start        where the search starts: "zero" (δ = 0, the paper's), "pgd" (ε-bounded specs
                 only) or "auto" (default: "pgd" where the spec has an ε, else "zero"). "pgd"
                 runs ``start_steps`` steps of ℓ∞ PGD on the cross-entropy from a random start
                 (step 2.5ε/start_steps, :func:`attacks.pgd.pgd`); its adversarial iterates
                 are offered to the best-so-far, so the attack succeeds wherever that PGD does,
                 and the search starts from PGD's δ (the structured solve sparsifies it)
    start_steps  "pgd" start: PGD steps at most (an example stops at its first success)
    scale        "none": the first c (``loss.c``, else the data set's value) and the
                 lagrangian's ``mu`` are in units of the logits; "boundary": in units of each
                 example's own multiplier scale c* = 2s/n (s, n: its distance to the boundary
                 and ||∇margin|| at x₀, :data:`attacks.spec_values.SCALES`): c₀ = ``loss.c``·c*
                 (absent: 0.5·c*) and μ = ``mu``·2/n², so that a scaling of the logits
                 (distillation's temperature, another model) changes nothing
    shrink_steps the last step: each success δ becomes the shortest αδ, α ∈ (0, 1], still
                 adversarial, found by this many bisection steps on α (one forward
                 evaluation each, :mod:`attacks.shrink`); 0: none
    sections     the settings of each search that differ from its defaults, by name
                 (:meth:`section` gives any search's settings)
    """

    mode: str = "lagrangian"
    iterations: int = attrs.field(default=130, validator=positive_int)
    track_every: int = attrs.field(default=3, validator=positive_int)
    rescue_iterations: int = attrs.field(default=200, validator=non_negative_int)
    budget: Optional[int] = attrs.field(default=None, validator=_budget)
    start: str = "auto"
    start_steps: int = attrs.field(default=100, validator=positive_int)
    scale: str = "none"
    shrink_steps: int = attrs.field(default=10, validator=non_negative_int)
    sections: Dict[str, Any] = attrs.field(factory=dict, converter=_sections)

    def __attrs_post_init__(self):
        expect(self.mode in SECTIONS, "search.mode", f"one of {tuple(SECTIONS)}", self.mode)
        expect(self.start in STARTS, "search.start", f"one of {STARTS}", self.start)
        expect(self.scale in SCALES, "search.scale", f"one of {', '.join(SCALES)}", self.scale)
        # huge counts are runs that never end
        for key, value in (("iterations", self.iterations), ("track_every", self.track_every),
                           ("rescue_iterations", self.rescue_iterations),
                           ("start_steps", self.start_steps),
                           ("shrink_steps", self.shrink_steps)):
            expect(value <= MAX_ITERATIONS, f"search.{key}", f"at most {MAX_ITERATIONS:,}", value)

    def starts_with_pgd(self, eps: Optional[float]) -> bool:
        """Whether the search starts from PGD's example for a spec with this ``eps``."""
        return self.start == "pgd" or (self.start == "auto" and eps is not None)

    def section(self, name: Optional[str] = None) -> Any:
        """The settings of search ``name`` (default: the one that runs, ``mode``)."""
        name = self.mode if name is None else name
        cls = lookup(SECTIONS, name, "search", where="search", error=SpecError)
        return self.sections.get(name) or cls()

    @property
    def planned(self) -> int:
        """Gradient evaluations per example the search plans at most (before any budget)."""
        return self.section().planned(self)


@register_section
@attrs.frozen
class LagrangianSearch:
    """``[search.lagrangian]``: one solve of the augmented Lagrangian of the constraint
    margin + κ ≤ 0 (:func:`attacks.losses.lagrangian_margin_loss`), ``c`` its per-sample
    multiplier, updated at every check by the method of multipliers
    c ← max(0, c + mu·(margin + κ)) — raised while the candidate is not adversarial, lowered in
    proportion to how far past the boundary it is.

    mu           the multiplier step μ (per unit of margin, in logits)
    mu_growth    in the rescue and the refine: μ ×= mu_growth for an example not yet
                 adversarial whose violation did not halve over the last 5 checks (the
                 augmented Lagrangian's penalty update: μ adapts to the model's scale of
                 logits); 1: μ fixed
    mu_growth_limit  μ grows to at most mu × this: a larger penalty makes the linearised steps
                 overshoot (on one held-out MNIST example μ grew 2^20-fold, the margin went
                 from oscillating near 0 to 6, and the example was lost)
    grace        an example first adversarial at iteration k goes on until k + grace (at least
                 ``search.iterations``), so that one found late, in the rescue, at a large c
                 has iterations to bring c and its distortion back down
    """

    name: ClassVar[str] = "lagrangian"
    doc: ClassVar[str] = "c the multiplier of margin + κ ≤ 0"

    mu: float = setting(0.3, "c += mu·(margin + κ) at every check", positive_number)
    mu_growth: float = setting(2.0, "mu ×= this where the margin stalls (rescue)",
                               positive_number)
    mu_growth_limit: float = setting(8.0, "mu grows to at most mu × this", positive_number)
    grace: int = setting(60, "after a late first success, go on this many iterations",
                         non_negative_int)

    def __attrs_post_init__(self):
        expect(self.grace <= MAX_ITERATIONS, "search.lagrangian.grace",
               f"at most {MAX_ITERATIONS:,}", self.grace)
        expect(self.mu_growth >= 1, "search.lagrangian.mu_growth", "a number >= 1",
               self.mu_growth)
        expect(self.mu_growth_limit >= 1, "search.lagrangian.mu_growth_limit", "a number >= 1",
               self.mu_growth_limit)
        in_float32("search.lagrangian.mu", self.mu, self.mu_growth_limit * MAX_MARGIN,
                   f"c's step μ·mu_growth_limit·margin (margins up to {MAX_MARGIN:g})",
                   squared=True)

    def planned(self, search: SearchSpec) -> int:
        """One solve, then the rescue."""
        return search.iterations + search.rescue_iterations


@register_section
@attrs.frozen
class BinarySearch:
    """``[search.binary]``: the paper's search — restart a solve for each ``c``, growing it by
    ``growth`` until a success bounds it, then bisecting (``steps`` solves of ``iterations``,
    then the rescue).

    steps        search steps (solves) at most
    growth       c ×= growth until a step succeeds (> 1: else c is never bounded)
    warm_start   start each step from the best success so far (else from 0)
    patience_tol a sample stops once a step succeeds without improving its best distortion by
                 more than this relative amount
    """

    name: ClassVar[str] = "binary"
    doc: ClassVar[str] = "the paper's binary search on c"

    steps: int = setting(6, "solves per example over the constant c", positive_int)
    growth: float = setting(10.0, "multiply c by this until a success bounds it",
                            positive_number)
    warm_start: bool = setting(True, "start each solve from the best success so far")
    patience_tol: float = setting(1e-3, "stop when a success improves by < this",
                                  non_negative_number)

    def __attrs_post_init__(self):
        expect(self.growth > 1, "search.binary.growth", "a number > 1 (c grows by it)",
               self.growth)
        expect(self.steps <= MAX_STEPS, "search.binary.steps", f"at most {MAX_STEPS:,}",
               self.steps)

    def planned(self, search: SearchSpec) -> int:
        """``steps`` solves, then the rescue."""
        return self.steps * search.iterations + search.rescue_iterations


#: The paper's search (Sec. 4 and appendix F): binary search on c, 6 steps of 200 iterations
#: with warm starts and a 400-iteration cold rescue.
PAPER_SEARCH = SearchSpec(mode="binary", iterations=200, track_every=5, rescue_iterations=400,
                          shrink_steps=0)

__all__ = ["SECTIONS", "BinarySearch", "LagrangianSearch", "PAPER_SEARCH", "SearchSpec",
           "register_section"]
