"""Solver settings: a frozen, validated record (errors name the field)."""

from __future__ import annotations

import math
from typing import Callable

import attrs

from admmkit.solver.schedules import SqrtSchedule


def _positive(instance, attribute, value):
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise ValueError(f"ADMMSettings.{attribute.name} must be finite and positive; got {value!r}")


def _non_negative(instance, attribute, value):
    if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
        raise ValueError(f"ADMMSettings.{attribute.name} must be finite and >= 0; got {value!r}")


def _positive_int(instance, attribute, value):
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"ADMMSettings.{attribute.name} must be a positive integer; got {value!r}")


def _greater_than_one(instance, attribute, value):
    if not (isinstance(value, (int, float)) and value > 1 and math.isfinite(value)):
        raise ValueError(f"ADMMSettings.{attribute.name} must be > 1; got {value!r}")


def _fraction(instance, attribute, value):
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
        raise ValueError(f"ADMMSettings.{attribute.name} must be a fraction in [0, 1]; "
                         f"got {value!r}")


def _callable(instance, attribute, value):
    if not callable(value):
        raise ValueError(f"ADMMSettings.{attribute.name} must be callable k -> float; got {value!r}")


@attrs.frozen
class ADMMSettings:
    """Hyper-parameters of the linearized ADMM loop.

    rho            penalty ρ (per-sample values are kept in the state and may adapt)
    eta            schedule k -> η_k of the linearization weight (eq. 14); default 5·√k
    max_iter       iteration budget per solve
    tol_abs/rel    stopping tolerances on primal/dual residuals (0 and 0 disable stopping)
    check_every    residuals, stopping and ρ adaptation are evaluated every N iterations
    adaptive_rho   residual balancing: ρ ×= rho_factor when r > mu·s, ÷= when s > mu·r
    compact_below  when, at a check, fewer than this fraction of the rows are still active, the
                   solve goes on with those rows only (0: never); the problem must then support
                   :meth:`admmkit.problem.Problem.select` (a smooth term built with
                   ``Smooth(fn, indexed=True)``). Results are those without compaction.
    """

    rho: float = attrs.field(default=1.0, validator=_positive)
    eta: Callable[[int], float] = attrs.field(factory=SqrtSchedule, validator=_callable)
    max_iter: int = attrs.field(default=500, validator=_positive_int)
    tol_abs: float = attrs.field(default=1e-4, validator=_non_negative)
    tol_rel: float = attrs.field(default=1e-3, validator=_non_negative)
    check_every: int = attrs.field(default=10, validator=_positive_int)
    adaptive_rho: bool = False
    mu: float = attrs.field(default=10.0, validator=_greater_than_one)
    rho_factor: float = attrs.field(default=2.0, validator=_greater_than_one)
    compact_below: float = attrs.field(default=0.0, validator=_fraction)

    @property
    def stops_early(self) -> bool:
        return self.tol_abs > 0 or self.tol_rel > 0
