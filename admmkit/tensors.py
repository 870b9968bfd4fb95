"""Helpers for (B, ...)-batched tensors: per-sample selection without Python loops."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["batch_where"]


def batch_where(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """``new`` where the per-sample ``mask`` (B,) is true, ``old`` elsewhere."""
    return torch.where(mask.reshape(-1, *([1] * (new.dim() - 1))), new, old)
