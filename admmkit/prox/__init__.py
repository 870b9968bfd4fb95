"""Proximal operators: ``prox(v, tau) = argmin_x f(x) + ||x - v||² / (2 tau)``, batched over dim 0.

Families: norms (:class:`L1`, :class:`SquaredL2`, :class:`ElasticNet`, :class:`GroupL2`,
:class:`Zero`; the non-convex counts :class:`L0`, :class:`GroupL0`), indicators (:class:`Box`, :class:`LinfBall`, :class:`BoxLinf`,
:class:`FixedSupport`) and exact compositions (:class:`Scaled`, :class:`Constrained`,
:class:`SeparableSum`). Check your own operator with :mod:`admmkit.testing`.
"""

from admmkit.prox.base import ProxFunction, batch_view
from admmkit.prox.compose import Constrained, Scaled, SeparableSum
from admmkit.prox.indicators import Box, BoxLinf, FixedSupport, LinfBall
from admmkit.prox.norms import (L0, L1, ElasticNet, GroupL0, GroupL2, SquaredL2, Zero,
                                hard_threshold, soft_threshold)

__all__ = [
    "ProxFunction", "batch_view",
    "L1", "SquaredL2", "ElasticNet", "GroupL2", "Zero", "soft_threshold",
    "L0", "GroupL0", "hard_threshold",
    "Box", "LinfBall", "BoxLinf", "FixedSupport",
    "Scaled", "Constrained", "SeparableSum",
]
