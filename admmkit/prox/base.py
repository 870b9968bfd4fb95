"""The proximal-function protocol shared by every operator in :mod:`admmkit.prox`.

Convention (one for the whole package)::

    prox_f(v, tau) = argmin_x  f(x) + ||x - v||^2 / (2 tau)

* Batched: ``v`` has shape ``(B, ...)``; ``f(x)`` returns per-sample values of shape ``(B,)``.
* ``tau`` is a positive float or a per-sample tensor of shape ``(B,)``.
* Pure: ``prox`` never mutates its input; dtype and device are preserved.
* Indicator functions return 0 on feasible points and ``+inf`` elsewhere.
"""

from __future__ import annotations

import contextlib
import numbers
import threading
from typing import Iterator, Union

import attrs
import torch
from torch import Tensor

Scalar = Union[float, int, Tensor]

#: attrs field metadata for a parameter that may hold one value per sample: a ``(B,)`` tensor or
#: a batched ``(B, ...)`` tensor. :meth:`ProxFunction.select` re-indexes such fields.
PER_SAMPLE = {"per_sample": True}


class ProxFunction:
    """A function ``f: (B, ...) -> (B,)`` with a cheap proximal operator."""

    #: True for indicator functions of convex sets (``prox`` is then a projection).
    is_indicator: bool = False
    #: True when ``f`` is a sum of identical-form functions of single coordinates, so that
    #: ``clip ∘ prox`` is exact (see :class:`admmkit.prox.compose.Constrained`).
    is_separable: bool = False

    def __call__(self, x: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def select(self, idx: Tensor, batch: int) -> "ProxFunction":
        """The same function for rows ``idx`` (a long tensor) of a batch of ``batch`` rows.

        Every attrs field marked :data:`PER_SAMPLE` whose leading dimension is ``batch`` is
        re-indexed with ``index_select``, nested operators (and derived fields) alike; the
        others are shared. No validation runs again (rows of a valid operator are valid) and no
        value is read, so this is free of host-device synchronisation. Without per-sample
        fields the operator itself is returned; an operator that keeps per-sample data
        elsewhere overrides this method.
        """
        return _select_fields(self, idx, batch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _select_value(value, idx: Tensor, batch: int, per_sample: bool):
    if isinstance(value, Tensor):
        if per_sample and value.dim() >= 1 and value.shape[0] == batch:
            return value.index_select(0, idx.to(value.device))
        return value
    if isinstance(value, ProxFunction):
        return value.select(idx, batch)
    if isinstance(value, (tuple, list)):
        parts = [_select_value(x, idx, batch, per_sample) for x in value]
        return value if all(a is b for a, b in zip(parts, value)) else type(value)(parts)
    return value


def _select_fields(f: ProxFunction, idx: Tensor, batch: int) -> ProxFunction:
    """:meth:`ProxFunction.select` for attrs operators: a copy with every field selected."""
    cls = type(f)
    if not attrs.has(cls):
        return f
    values = {a.name: _select_value(getattr(f, a.name), idx, batch,
                                    a.metadata.get("per_sample", False))
              for a in attrs.fields(cls)}
    if all(values[name] is getattr(f, name) for name in values):
        return f
    g = cls.__new__(cls)
    for name, value in values.items():  # frozen classes: set the fields as attrs' __init__ does
        object.__setattr__(g, name, value)
    return g


def batch_view(t: Scalar, like: Tensor) -> Union[float, Tensor]:
    """Reshape a float or per-sample ``(B,)`` tensor so it broadcasts against ``like`` (B, ...).

    Tensors that already have ``like``'s rank (e.g. per-coordinate bounds) are returned as is.
    Tensors are cast to ``like``'s dtype and moved to its device.
    """
    if not isinstance(t, Tensor):
        return float(t)
    t = t.to(device=like.device, dtype=like.dtype)
    if t.dim() == 1 and like.dim() >= 1 and t.shape[0] == like.shape[0]:
        return t.reshape(-1, *([1] * (like.dim() - 1)))
    return t


def param_repr(value) -> str:
    """``repr`` for attrs fields that may hold large tensors: shape and dtype instead of values."""
    if isinstance(value, Tensor) and value.numel() > 8:
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    return repr(value)


def check_positive(name: str, value: Scalar, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is finite and (strictly) positive."""
    bad_sign = (lambda x: x < 0) if allow_zero else (lambda x: x <= 0)
    what = "non-negative" if allow_zero else "positive"
    if isinstance(value, Tensor):
        if not torch.isfinite(value).all() or bad_sign(value).any():
            raise ValueError(f"{name} must be finite and {what}; got a tensor with "
                             f"min {value.min().item():.4g}")
    else:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number or a tensor; got {type(value).__name__}") from None
        if not (v == v and abs(v) != float("inf")) or bad_sign(v):
            raise ValueError(f"{name} must be finite and {what}; got {value!r}")


def check_per_sample(name: str, value: Scalar, *, allow_zero: bool = False) -> None:
    """:func:`check_positive` for a scalar parameter that may also be a per-sample ``(B,)`` tensor."""
    if not isinstance(value, (numbers.Real, Tensor)):
        raise TypeError(f"{name} must be a number or a tensor; got {type(value).__name__}")
    if isinstance(value, Tensor) and value.dim() > 1:
        raise ValueError(f"{name} must be a number or a per-sample (B,) tensor; "
                         f"got a tensor of shape {tuple(value.shape)}")
    check_positive(name, value, allow_zero=allow_zero)


_checked = threading.local()


@contextlib.contextmanager
def tau_checked() -> Iterator[None]:
    """Within this block :func:`check_tau` checks the *shape* of a tensor ``tau`` only: the
    caller has validated its values once (the solver checks ρ when a solve starts, and its
    steps ``1/ρ`` stay finite and positive), so an iteration never reads a tensor's values —
    on an accelerator that read would be a host-device synchronisation."""
    before = getattr(_checked, "on", False)
    _checked.on = True
    try:
        yield
    finally:
        _checked.on = before


def check_tau(tau: Scalar, like: Tensor) -> None:
    """Raise ``ValueError`` unless ``tau`` is a positive finite float or a ``(B,)`` tensor for ``like``.

    The values of a tensor ``tau`` are checked on the CPU, except inside :func:`tau_checked`;
    on an accelerator the caller validates them, so no prox call waits on the device.
    """
    if isinstance(tau, Tensor):
        if tau.dim() > 1 or (tau.dim() == 1 and tau.shape[0] != like.shape[0]):
            raise ValueError(f"tau must be a number or a per-sample tensor of shape ({like.shape[0]},); "
                             f"got shape {tuple(tau.shape)}")
        if tau.device.type == "cpu" and not getattr(_checked, "on", False):
            check_positive("tau", tau)
    else:
        check_positive("tau", tau)


def per_sample_sum(x: Tensor) -> Tensor:
    """Sum over every dimension but the first: ``(B, ...) -> (B,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def per_sample_max(x: Tensor) -> Tensor:
    """Max over every dimension but the first: ``(B, ...) -> (B,)``."""
    return x.reshape(x.shape[0], -1).amax(dim=1)
