"""Schedules for the linearization weight ``η_k`` of the z-step (paper eq. 14)."""

from __future__ import annotations

import math

import attrs


def _positive(instance, attribute, value):
    if not (float(value) > 0 and math.isfinite(float(value))):
        raise ValueError(f"{attribute.name} must be finite and positive; got {value!r}")


@attrs.frozen
class SqrtSchedule:
    """``η_k = alpha · √k`` (the paper: ``η_1 = alpha = 5``)."""

    alpha: float = attrs.field(default=5.0, validator=_positive)

    def __call__(self, k: int) -> float:
        return self.alpha * math.sqrt(k)


@attrs.frozen
class ConstantSchedule:
    """``η_k = eta`` for every k."""

    eta: float = attrs.field(default=1.0, validator=_positive)

    def __call__(self, k: int) -> float:
        return self.eta
