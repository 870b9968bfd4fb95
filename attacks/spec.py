"""Attack specifications: a declarative description of problem (2) that builds admmkit problems.

    minimize_δ  c·margin(x0 + δ) + Σ_terms term(δ)   s.t.  x0 + δ ∈ [0, 1]^n,  ||δ||∞ ≤ ε

A spec names the loss, the terms (each a prox-able admmkit function, optionally on sliding
groups), the constraint, the solver settings, the outer search over ``c``, the refine stage and
the rule that ranks successful candidates. Every built-in attack is one of these
(:mod:`attacks.builtin`); new formulations need no Python: :meth:`AttackSpec.from_toml` reads
one from a TOML file.

The layers, each importing only those below it:

* :mod:`attacks.spec_values` — the parts of a spec (terms, loss, solver, refine), validated
  once; :mod:`attacks.search_spec` — the search over ``c`` and one section per search;
* :mod:`attacks.schema` — the dict codec and ``KEY=VALUE`` overrides;
  :mod:`attacks.spec_toml` — the TOML reader and the commented writer (term kinds:
  :mod:`attacks.terms`);
* this module — :class:`AttackSpec`, the whole formulation, with the codec and TOML as methods
  (the codec is handed the class, it never imports it);
* :mod:`attacks.builtin` and :mod:`attacks.catalogue` — the built-ins, the shipped examples and
  finding a spec by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import attrs

from admmkit.groups import SlidingGroups
from attacks.schema import apply_overrides, spec_from_dict, spec_to_dict
from attacks.search_spec import (PAPER_SEARCH, BinarySearch, LagrangianSearch, SearchSpec,
                                 register_section)
from attacks.spec_toml import dumps_spec, read_spec
from attacks.spec_values import (DECISIONS, MAX_ITERATIONS, MAX_STEPS, PAPER_REFINE, ROLES,
                                 SAFE_NAME, DeprecatedSpecKey, GroupSpec, LossSpec, RefineSpec,
                                 SolverSpec, SpecError, TermSpec, default_c, default_groups,
                                 expect, optional_positive, valid_box)

__all__ = ["AttackSpec", "BinarySearch", "DECISIONS", "DeprecatedSpecKey", "GroupSpec",
           "LagrangianSearch", "LossSpec", "MAX_ITERATIONS", "MAX_STEPS", "PAPER_REFINE",
           "PAPER_SEARCH", "ROLES", "RefineSpec", "SAFE_NAME", "SearchSpec", "SolverSpec",
           "SpecError", "TermSpec", "default_c", "default_groups", "register_section",
           "valid_box"]


@attrs.frozen
class AttackSpec:
    """A complete attack formulation (see the module docstring)."""

    name: str
    terms: Tuple[TermSpec, ...] = attrs.field(converter=tuple)
    loss: LossSpec = attrs.field(factory=LossSpec)
    eps: Optional[float] = attrs.field(default=None, validator=optional_positive)
    solver: SolverSpec = attrs.field(factory=SolverSpec)
    search: SearchSpec = attrs.field(factory=SearchSpec)
    refine: Optional[RefineSpec] = None
    decision: str = "objective"
    description: str = ""

    def __attrs_post_init__(self):
        expect(isinstance(self.name, str) and bool(SAFE_NAME.fullmatch(self.name))
               and self.name not in (".", ".."), "name",
               "a short name of letters, digits and . _ + - (it names files and folders: no "
               "separators, not empty, '.' or '..'; at most 64 characters)", self.name)
        expect(self.decision in DECISIONS, "decision", f"one of {DECISIONS}", self.decision)
        names = [t.name for t in self.terms if t.name]
        expect(len(names) == len(set(names)), "terms", "unique names", names)
        expect(self.search.start != "pgd" or self.eps is not None, "search.start",
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
        return spec_from_dict(cls, data)

    def to_dict(self) -> Dict:
        """The nested dict of this spec's TOML document."""
        return spec_to_dict(self)

    @classmethod
    def from_toml(cls, source: Union[Path, str]) -> "AttackSpec":
        """A spec from a TOML file (a :class:`pathlib.Path`) or TOML text (a ``str``)."""
        return read_spec(cls, source)

    def to_toml(self) -> str:
        """This spec as a TOML document with a comment on every key."""
        return dumps_spec(self)

    def with_overrides(self, *items: str) -> "AttackSpec":
        """A copy with ``KEY=VALUE`` overrides applied (``"search.binary.steps=3"``,
        ``"refine=false"``, ``"terms.groups.params.weight=1"``), validated like a file."""
        return spec_from_dict(type(self), apply_overrides(spec_to_dict(self), items))
