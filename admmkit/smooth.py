"""Smooth terms of a consensus problem, handled by linearization (paper eq. 14).

A smooth term is any differentiable callable ``fn(z) -> (B,)`` of the consensus variable. The
solver only needs its value and gradient at the current iterate ``z^k``; the gradient comes
from autograd. ``fn`` may also return ``(values, aux)``: ``aux`` (e.g. the classifier's
logits at ``x0 + z^k``) is handed to callbacks so they can use it without another forward pass.

Samples must be independent (``f(z)_b`` depends only on ``z_b``), so the gradient of the sum
is the stack of per-sample gradients; a model with batch-norm must be in ``eval()`` mode.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import torch
from torch import Tensor


class Smooth:
    """Wrap ``fn: (B, ...) -> (B,)`` (or ``-> ((B,), aux)``) for linearized ADMM."""

    def __init__(self, fn: Callable[[Tensor], Any], name: str = "f"):
        if not callable(fn):
            raise TypeError(f"fn must be callable; got {type(fn).__name__}")
        self.fn = fn
        self.name = name

    def _call(self, z: Tensor) -> Tuple[Tensor, Optional[Any]]:
        out = self.fn(z)
        value, aux = out if isinstance(out, tuple) else (out, None)
        if not isinstance(value, Tensor) or value.shape != (z.shape[0],):
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"smooth term {self.name!r} must return per-sample values of shape "
                             f"({z.shape[0]},); got {got}")
        return value, aux

    def __call__(self, z: Tensor) -> Tensor:
        with torch.no_grad():
            return self._call(z)[0]

    def value_and_grad(self, z: Tensor) -> Tuple[Tensor, Tensor, Optional[Any]]:
        """``f(z)`` (B,), ``∇f(z)`` shaped like ``z``, and the optional ``aux``."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            value, aux = self._call(z)
            (grad,) = torch.autograd.grad(value.sum(), z)
        return value.detach(), grad, aux


def quadratic(target: Tensor, weight: float = 0.5) -> Smooth:
    """``weight · ||z - target||²`` per sample — a handy smooth term for tests and examples."""
    return Smooth(lambda z: weight * (z - target).pow(2).flatten(1).sum(1), name="quadratic")
