"""admmkit: batched linearized ADMM on torch tensors (prox operators, problems, the solver).

Public helpers at the top level: :func:`batch_where` (per-sample selection on (B, ...) tensors).
"""

from admmkit.tensors import batch_where

__all__ = ["batch_where"]
