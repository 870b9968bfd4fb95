"""Smooth terms of a consensus problem, handled by linearization (paper eq. 14).

A smooth term is any differentiable callable ``fn(z) -> (B,)`` of the consensus variable. The
solver only needs its value and gradient at the current iterate ``z^k``; the gradient comes
from autograd. ``fn`` may also return ``(values, aux)``: ``aux`` (e.g. the classifier's
logits at ``x0 + z^k``) is handed to callbacks so they can use it without another forward pass.

A term that does not depend on ``z`` where autograd can see it (a model that detaches its
input, or quantises it: no graph, or an unused input) has gradient zero, never an error
(:func:`gradient`).

Samples must be independent (``f(z)_b`` depends only on ``z_b``), so the gradient of the sum
is the stack of per-sample gradients; a model with batch-norm must be in ``eval()`` mode.

A term with per-sample data (targets, images, constants) that should also run on a sub-batch
is built with ``indexed=True``: ``fn(z, rows)`` then receives which rows of the batch it was
built for ``z`` holds — ``None`` for all of them, else a long tensor ``(b,)`` — and picks its
data with it. :meth:`Smooth.select` gives such a term for a subset of rows; the solver uses it
when it compacts the batch (``ADMMSettings.compact_below``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import torch
from torch import Tensor


class Smooth:
    """Wrap ``fn: (B, ...) -> (B,)`` (or ``-> ((B,), aux)``) for linearized ADMM."""

    def __init__(self, fn: Callable[..., Any], name: str = "f", *, indexed: bool = False):
        if not callable(fn):
            raise TypeError(f"fn must be callable; got {type(fn).__name__}")
        self.fn = fn
        self.name = name
        self.indexed = indexed
        #: the rows of the original batch this term is evaluated on (None: all of them)
        self.rows: Optional[Tensor] = None

    def select(self, idx: Tensor) -> "Smooth":
        """The same term for rows ``idx`` (a long tensor) of the batch it is evaluated on."""
        if not self.indexed:
            raise ValueError(f"smooth term {self.name!r} cannot be restricted to a subset of "
                             "rows: build it as Smooth(fn, indexed=True) with fn(z, rows)")
        part = Smooth(self.fn, self.name, indexed=True)
        part.rows = idx if self.rows is None else self.rows.index_select(0, idx)
        return part

    def _call(self, z: Tensor) -> Tuple[Tensor, Optional[Any]]:
        out = self.fn(z, self.rows) if self.indexed else self.fn(z)
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
            grad = gradient(value, z)
        return value.detach(), grad, aux


def gradient(value: Tensor, x: Tensor) -> Tensor:
    """``∇_x Σ value`` by autograd, shaped like ``x``; zeros where ``value`` does not depend on
    ``x`` through a graph (computed without one, or from a detached copy of ``x``)."""
    if not value.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(value.sum(), x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def quadratic(target: Tensor, weight: float = 0.5) -> Smooth:
    """``weight · ||z - target||²`` per sample — a handy smooth term for tests and examples.
    ``target``: one row per sample ``(B, ...)``, or shared (of lower rank, or a leading 1)."""
    def f(z: Tensor, rows: Optional[Tensor]) -> Tensor:
        shared = rows is None or target.dim() < z.dim() or target.shape[0] == 1
        t = target if shared else target.index_select(0, rows)
        return weight * (z - t).pow(2).flatten(1).sum(1)
    return Smooth(f, name="quadratic", indexed=True)
