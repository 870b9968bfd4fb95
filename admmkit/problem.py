"""Consensus problems: a smooth term plus prox-able blocks, each tied to ``z`` by a copy.

    minimize_z   f(z) + Σ_b g_b(x_b)     subject to   x_b = A_b z   for every block b,

where ``A_b`` is a *coupling*: the identity (the block holds a full copy of ``z``) or the
sliding-window gather of :class:`admmkit.groups.SlidingGroups` (the block holds one copy of
each coordinate per group that contains it). StrAttack (paper eq. 4) is

    f = c·margin(x0 + z),  g_δ = γ||·||²,  g_w = 1{box ∩ ℓ∞ ball},  g_y = τ Σ_G ||·||₂ .

A coupling provides ``gather`` (``A z``), ``scatter`` (``Aᵀ x``) and ``cover`` (``diag AᵀA``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import attrs
import torch
from torch import Tensor

from admmkit.groups import SlidingGroups
from admmkit.prox.base import ProxFunction
from admmkit.smooth import Smooth


@attrs.frozen
class Identity:
    """The trivial coupling ``A = I``: the block holds a full copy of ``z``."""

    def gather(self, z: Tensor) -> Tensor:
        return z

    def scatter(self, x: Tensor) -> Tensor:
        return x

    def cover(self, like: Tensor) -> float:
        return 1.0


COPIES = ("local", "full")


@attrs.frozen
class Block:
    """One prox-able term ``g(x)`` with its copy constraint ``x = A z``.

    ``copies="full"`` (group couplings only) reproduces the paper's own overlapping splitting
    (eq. 16): every group copy spans all ``n`` coordinates. Outside its group a copy just tracks
    ``z^k``, so it is stored in-group like the ``"local"`` (general-form consensus) splitting and
    shows up in the z-step as an extra per-coordinate damping ``ρ·(#groups − cover)`` (eq. 18).
    """

    fn: ProxFunction = attrs.field()
    coupling: object = attrs.field(factory=Identity)
    name: str = ""
    rho_scale: float = attrs.field(default=1.0)
    copies: str = attrs.field(default="local")

    @fn.validator
    def _check_fn(self, attribute, value):
        if not isinstance(value, ProxFunction):
            raise TypeError(f"Block fn must be an admmkit ProxFunction; got {type(value).__name__}")

    @coupling.validator
    def _check_coupling(self, attribute, value):
        if not all(hasattr(value, m) for m in ("gather", "scatter", "cover")):
            raise TypeError("Block coupling must provide gather, scatter and cover; got "
                            f"{type(value).__name__}")

    @rho_scale.validator
    def _check_rho_scale(self, attribute, value):
        if not (float(value) > 0 and float(value) < float("inf")):
            raise ValueError(f"Block rho_scale must be finite and positive; got {value!r}")

    @copies.validator
    def _check_copies(self, attribute, value):
        if value not in COPIES:
            raise ValueError(f"Block copies must be one of {COPIES}; got {value!r}")
        if value == "full" and not isinstance(self.coupling, SlidingGroups):
            raise ValueError('Block copies="full" needs a SlidingGroups coupling')

    def extra_damping(self, like: Tensor):
        """``#groups − cover`` for ``copies="full"``, else 0 (see class docstring)."""
        if self.copies == "full":
            return self.coupling.num_groups - self.coupling.cover(like)
        return 0.0

    def select(self, idx: Tensor, batch: int) -> "Block":
        """The block for rows ``idx`` of a batch of ``batch`` (:meth:`ProxFunction.select`)."""
        fn = self.fn.select(idx, batch)
        return self if fn is self.fn else attrs.evolve(self, fn=fn)

    def mean_copy(self, x: Tensor) -> Tensor:
        """The block's variable seen in ``z``'s space: ``Aᵀx / cover`` (the mean of the copies)."""
        return self.coupling.scatter(x) / self.coupling.cover(x)

    def subgradient(self, z: Tensor, step: float = 1e-3) -> Tensor:
        """A subgradient of ``g(A z)`` at ``z``, in ``z``'s space: ``Aᵀ (v − prox_{t·g}(v)) / t``
        at ``v = A z``, the gradient map at a small step ``t`` — exactly ``τ·v_G/‖v_G‖`` on a
        group norm's groups with ``‖v_G‖ > tτ`` (``β·sign v`` for ℓ1 where ``|v| > tβ``), 0 on
        its zero ones (``v_G/t``, of norm below τ, on the few in between), ``2γv/(1 + 2γt)``
        for ``γ‖v‖²``."""
        v = self.coupling.gather(z)
        return self.coupling.scatter((v - self.fn.prox(v, step)) / step)


@attrs.define
class Problem:
    """``minimize f(z) + Σ_b g_b(A_b z)``, optionally with ``z = 0`` outside ``support``.

    ``support`` (a bool tensor broadcastable to ``z``) restricts the z-step to a fixed sparsity
    pattern, as in the refined attack (paper eq. 58-59).
    """

    blocks: Sequence[Block] = attrs.field(converter=tuple)
    smooth: Optional[Smooth] = None
    support: Optional[Tensor] = None

    @blocks.validator
    def _check_blocks(self, attribute, value):
        if not value:
            raise ValueError("a Problem needs at least one block")
        for i, b in enumerate(value):
            if not isinstance(b, Block):
                raise TypeError(f"blocks[{i}] must be a Block; got {type(b).__name__}")
        names = [b.name for b in value if b.name]
        if len(names) != len(set(names)):
            raise ValueError(f"block names must be unique; got {names}")

    def check_shape(self, z: Tensor) -> None:
        """Raise a clear error when a block's coupling or support does not fit ``z``."""
        for i, b in enumerate(self.blocks):
            try:
                b.coupling.gather(z[:1])
            except ValueError as e:
                raise ValueError(f"block {b.name or i}: coupling does not fit z of shape "
                                 f"{tuple(z.shape)}: {e}") from None
        if self.support is not None:
            try:
                torch.broadcast_shapes(self.support.shape, z.shape)
            except RuntimeError:
                raise ValueError(f"support of shape {tuple(self.support.shape)} does not "
                                 f"broadcast to z of shape {tuple(z.shape)}") from None

    def select(self, idx: Tensor, batch: int) -> "Problem":
        """The same problem for rows ``idx`` (a long tensor) of a batch of ``batch`` rows: the
        blocks' per-sample data, a per-sample ``support`` and the smooth term re-indexed
        (:meth:`ProxFunction.select`, :meth:`Smooth.select`). What the solver continues on
        when it compacts (``ADMMSettings.compact_below``)."""
        support = self.support
        if support is not None and support.dim() >= 1 and support.shape[0] == batch:
            support = support.index_select(0, idx.to(support.device))
        return Problem([b.select(idx, batch) for b in self.blocks], support=support,
                       smooth=None if self.smooth is None else self.smooth.select(idx))

    def block(self, name: str) -> int:
        """Index of the block called ``name``."""
        for i, b in enumerate(self.blocks):
            if b.name == name:
                return i
        raise KeyError(f"no block named {name!r}; blocks are {[b.name for b in self.blocks]}")
