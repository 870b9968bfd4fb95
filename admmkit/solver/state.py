"""The solver's state and its per-check statistics, as small records of (B,)-batched tensors."""

from __future__ import annotations

from typing import List, Optional

import attrs
from torch import Tensor

from admmkit.tensors import batch_where  # noqa: F401  (its former home; admmkit.batch_where)


@attrs.define
class ADMMState:
    """Iterates of linearized ADMM, all batched over the leading dimension.

    z          consensus variable (B, ...)
    xs, us     per-block variables ``x_b`` and scaled duals ``u_b`` (block's local layout)
    rho        per-sample penalty (B,)
    active     samples still iterating (B,) bool
    converged  samples stopped by the residual test (B,) bool
    diverged   samples stopped because an iterate became non-finite (B,) bool
    iterations per-sample iteration count = gradient evaluations of the smooth term (B,)
    """

    z: Tensor
    xs: List[Tensor]
    us: List[Tensor]
    rho: Tensor
    active: Tensor
    converged: Tensor
    diverged: Tensor
    iterations: Tensor

    @property
    def batch_size(self) -> int:
        return self.z.shape[0]

    def _map(self, op) -> "ADMMState":
        """A new state: ``op(tensor, field name, list position or None)`` of every tensor."""
        fields = {}
        for f in attrs.fields(ADMMState):
            v = getattr(self, f.name)
            fields[f.name] = ([op(t, f.name, i) for i, t in enumerate(v)] if isinstance(v, list)
                              else op(v, f.name, None))
        return ADMMState(**fields)

    def clone(self) -> "ADMMState":
        return self._map(lambda t, name, i: t.clone())

    def select(self, idx: Tensor) -> "ADMMState":
        """The state of rows ``idx`` (a long tensor) only."""
        return self._map(lambda t, name, i: t.index_select(0, idx))

    def replace_rows(self, idx: Tensor, part: "ADMMState") -> "ADMMState":
        """A new state: this one with rows ``idx`` taken from ``part`` (of ``len(idx)`` rows),
        the inverse of :meth:`select`."""
        def put(t, name, i):
            new = getattr(part, name) if i is None else getattr(part, name)[i]
            return t.index_copy(0, idx, new)
        return self._map(put)


@attrs.frozen
class IterationStats:
    """What a check step saw: per-sample tensors (B,) on the solver's device."""

    k: int
    eta: float
    rho: Tensor
    primal_residual: Tensor
    dual_residual: Tensor
    primal_tol: Tensor
    dual_tol: Tensor
    smooth_value: Optional[Tensor]
    block_values: List[Tensor]
    active: Tensor
    #: the rows of the solve's batch these tensors belong to (None: all; see ``compact_below``)
    rows: Optional[Tensor] = None

    @property
    def objective(self) -> Tensor:
        """``f(z) + Σ_b g_b(x_b)`` at this check (B,)."""
        total = sum(self.block_values)
        return total if self.smooth_value is None else total + self.smooth_value


@attrs.frozen
class IterationInfo:
    """Handed to callbacks after every iteration (cheap: no host-device sync is implied).

    ``smooth_value``/``aux``/``grad`` are those of the linearization point ``z^k`` that this
    iteration used (``grad`` = ∇f(z^k), the tensor the z-step used, not a copy: read it, do not
    change it; None without a smooth term); ``state`` holds the updated iterates ``z^{k+1}``,
    ``x_b^{k+1}``, ``u_b^{k+1}``.
    Once the solver has compacted the batch (``ADMMSettings.compact_below``), ``state`` holds
    the rows ``rows`` of the solve's batch only (None: all rows), and so must a callback's
    returned stop mask.
    """

    k: int
    eta: float
    state: ADMMState
    smooth_value: Optional[Tensor]
    aux: object
    stats: Optional[IterationStats]
    rows: Optional[Tensor] = None
    grad: Optional[Tensor] = None


@attrs.frozen
class ADMMResult:
    state: ADMMState
    history: List[IterationStats]

    @property
    def z(self) -> Tensor:
        return self.state.z

    @property
    def xs(self) -> List[Tensor]:
        return self.state.xs

    @property
    def iterations(self) -> Tensor:
        return self.state.iterations

    @property
    def converged(self) -> Tensor:
        return self.state.converged

    @property
    def diverged(self) -> Tensor:
        return self.state.diverged
