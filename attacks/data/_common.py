"""Shared helpers: the cache directory, array -> tensor conversion, small validators."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

CACHE_ENV = "ADMM_ATTACK_CACHE"


def default_cache_dir() -> Path:
    """Root of the user cache: ``$ADMM_ATTACK_CACHE``, else ``$XDG_CACHE_HOME/admm-attack``,
    else ``~/.cache/admm-attack``. Downloads go under ``<cache>/data/<dataset>``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "admm-attack"


def to_image_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 array (B, H, W) or (B, C, H, W) -> float32 tensor (B, C, H, W) in [0, 1]."""
    if array.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {array.dtype}")
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise ValueError(f"expected (B, H, W) or (B, C, H, W) pixels, got shape {array.shape}")
    return torch.from_numpy(array.astype(np.float32)).div_(255.0)  # astype copies: writable


def to_label_tensor(labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(labels, dtype=np.int64).copy())


def check_n(n: Optional[int]) -> Optional[int]:
    """Validate the ``n`` argument shared by every loader (None = everything)."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    return int(n)
