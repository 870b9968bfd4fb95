"""Put input preprocessing inside the model, so every model takes [0, 1] images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Tuple, Union

import torch
from torch import nn


def _as_buffer(value: Union[float, Sequence[float], torch.Tensor]) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32)
    if t.ndim == 0:
        return t.reshape(1, 1, 1, 1)
    if t.ndim == 1:
        return t.reshape(1, -1, 1, 1)
    raise ValueError(f"mean/std must be a number or one value per channel, got shape "
                     f"{tuple(t.shape)}")


class Normalize(nn.Module):
    """``(x - mean) / std`` with per-channel (or scalar) constants; not saved in state_dicts."""

    def __init__(self, mean: Union[float, Sequence[float]] = 0.0,
                 std: Union[float, Sequence[float]] = 1.0) -> None:
        super().__init__()
        std_t = _as_buffer(std)
        if (std_t == 0).any():
            raise ValueError("std must be non-zero")
        self.register_buffer("mean", _as_buffer(mean), persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class ImageClassifier(nn.Module):
    """``net(normalize(x))``: a classifier whose input is [0, 1] images (B, C, H, W) and whose
    output is logits (B, num_classes). ``input_shape``/``num_classes``/``class_names`` are
    plain attributes for callers (e.g. to build a dummy input). The weights live in ``net``.
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Union[float, Sequence[float]] = 0.0,
        std: Union[float, Sequence[float]] = 1.0,
        *,
        input_shape: Optional[Tuple[int, int, int]] = None,
        num_classes: Optional[int] = None,
        class_names: Optional[Sequence[str]] = None,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))
