"""The registry of term kinds: every prox-able function a spec's ``[[terms]]`` may name.

One :class:`TermKind` per kind holds everything the rest of the project derives from it: the
admmkit operator, its parameters with defaults and a one-line doc each, whether it acts on
groups, and a line for the spec writer. Validation (:mod:`attacks.schema`), the commented TOML
of ``admm-attack specs show`` (:mod:`attacks.spec_toml`), ``--set`` and the docs all read it,
so a new term is one :func:`register` call next to its operator::

    register(TermKind("l1_squared", MyOperator, {"weight": Param(1.0, "λ")},
                      doc="λ·||δ||₁² (my operator)"))
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

import attrs

from admmkit.prox import L0, L1, ElasticNet, GroupL0, GroupL2, ProxFunction, SquaredL2


@attrs.frozen
class Param:
    """A numeric parameter of a term kind: its default and a one-line doc."""

    default: float
    doc: str


@attrs.frozen
class TermKind:
    """A term kind: ``operator(**params)`` is its admmkit :class:`ProxFunction`."""

    name: str
    operator: Callable[..., ProxFunction]
    params: Mapping[str, Param]
    doc: str
    grouped: bool = False   # True: acts on sliding groups and needs a [terms.groups] table
    #: d with f(aδ) = a^d f(δ) for a > 0 (None: not homogeneous); a term with ``scale =
    #: "boundary"`` is weighted by s^(2 − d) (:data:`attacks.spec_values.SCALES`)
    degree: Optional[int] = None

    @property
    def defaults(self) -> Dict[str, float]:
        return {k: p.default for k, p in self.params.items()}


TERM_KINDS: Dict[str, TermKind] = {}


def register(kind: TermKind) -> TermKind:
    """Add ``kind`` to :data:`TERM_KINDS` (a name already taken is an error)."""
    if kind.name in TERM_KINDS:
        raise ValueError(f"term kind {kind.name!r} is already registered")
    TERM_KINDS[kind.name] = kind
    return kind


register(TermKind("squared_l2", SquaredL2, {"weight": Param(1.0, "multiplier of the term")},
                  doc="weight·||δ||₂²", degree=2))
register(TermKind("l1", L1, {"weight": Param(1.0, "multiplier of the term")},
                  doc="weight·||δ||₁", degree=1))
register(TermKind("elastic_net", ElasticNet, {"l1": Param(1e-2, "β, weight of ||δ||₁"),
                                              "l2": Param(1.0, "weight of ||δ||₂²")},
                  doc="β·||δ||₁ + l2·||δ||₂²"))
register(TermKind("group_l2", GroupL2, {"weight": Param(1.0, "multiplier of the term")},
                  doc="weight·Σ_G ||δ_G||₂ over sliding groups", grouped=True, degree=1))
register(TermKind("l0", L0, {"weight": Param(1.0, "multiplier of the term")},
                  doc="weight·||δ||₀, the pixels changed (non-convex: hard threshold, "
                      "a heuristic under ADMM)", degree=0))
register(TermKind("group_l0", GroupL0, {"weight": Param(1.0, "multiplier of the term")},
                  doc="weight·#{G : δ_G ≠ 0}, the sliding groups touched (non-convex: block "
                      "hard threshold, a heuristic under ADMM)", grouped=True, degree=0))
