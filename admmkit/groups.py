"""Sliding-window groups over images, as a linear *coupling* between an image and its group copies.

A mask of ``size × size × C`` slides over a ``(C, H, W)`` image with ``stride`` (paper, Sec. 2).
``stride == size`` gives a partition; ``stride < size`` an overlapping cover. When ``H`` or ``W``
is not reachable by whole strides, the image is zero-padded on the bottom/right so every pixel
is covered; border groups then hold fewer real pixels.

The groups act as the linear map ``A: z -> (z_{D_1}, ..., z_{D_G})`` (``gather``), stored as a
``(B, G, C·size²)`` tensor: one copy of each coordinate *per group that contains it*, never a
full image per group (general-form consensus, Boyd et al. 2011, §7.2). Memory is therefore
``O(n · cover)``. ``scatter`` is the adjoint ``Aᵀ`` (sums the copies back) and ``cover`` is
the diagonal of ``AᵀA``: how many groups contain each coordinate.
"""

from __future__ import annotations

import math
from typing import Tuple

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor


def _positive_int(name):
    def check(instance, attribute, value):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return check


@attrs.frozen
class SlidingGroups:
    """``size × size × C`` groups with ``stride`` over images of shape ``(C, H, W)``."""

    shape: Tuple[int, int, int] = attrs.field(converter=lambda s: tuple(int(d) for d in s))
    size: int = attrs.field(validator=_positive_int("size"))
    stride: int = attrs.field(validator=_positive_int("stride"))

    @shape.validator
    def _check_shape(self, attribute, value):
        if len(value) != 3 or min(value) <= 0:
            raise ValueError(f"shape must be (C, H, W) with positive sizes; got {value!r}")

    def __attrs_post_init__(self):
        _, h, w = self.shape
        if self.size > min(h, w):
            raise ValueError(f"group size {self.size} is larger than the image ({h}×{w})")
        if self.stride > self.size:
            raise ValueError(f"stride {self.stride} > size {self.size} would leave pixels in no "
                             "group; use stride <= size")

    # -- geometry ---------------------------------------------------------------------------
    @property
    def padded_hw(self) -> Tuple[int, int]:
        """Smallest ``(H', W') >= (H, W)`` that whole strides reach exactly."""
        _, h, w = self.shape
        pad = lambda n: self.size + math.ceil((n - self.size) / self.stride) * self.stride
        return pad(h), pad(w)

    @property
    def grid(self) -> Tuple[int, int]:
        """Number of group positions ``(P, Q)`` along height and width."""
        hp, wp = self.padded_hw
        return (hp - self.size) // self.stride + 1, (wp - self.size) // self.stride + 1

    @property
    def num_groups(self) -> int:
        p, q = self.grid
        return p * q

    @property
    def group_dim(self) -> int:
        """Coordinates per group, ``C · size²`` (padding included)."""
        return self.shape[0] * self.size * self.size

    @property
    def is_partition(self) -> bool:
        return self.stride == self.size

    # -- the coupling A, Aᵀ, diag(AᵀA) -------------------------------------------------------
    def _check_input(self, z: Tensor) -> None:
        if z.dim() != 4 or tuple(z.shape[1:]) != self.shape:
            raise ValueError(f"expected a (B, {', '.join(map(str, self.shape))}) tensor; "
                             f"got shape {tuple(z.shape)}")

    def gather(self, z: Tensor) -> Tensor:
        """``A z``: ``(B, C, H, W) -> (B, G, C·size²)``, groups row-major over the grid and
        each group's coordinates ordered (channel, row, column), as ``F.unfold``."""
        self._check_input(z)
        _, h, w = self.shape
        hp, wp = self.padded_hw
        if (hp, wp) != (h, w):
            z = F.pad(z, (0, wp - w, 0, hp - h))
        r, s = self.size, self.stride
        windows = z.unfold(2, r, s).unfold(3, r, s)  # (B, C, P, Q, r, r), a view
        return windows.permute(0, 2, 3, 1, 4, 5).reshape(z.shape[0], self.num_groups,
                                                         self.group_dim)

    def scatter(self, y: Tensor) -> Tensor:
        """``Aᵀ y``: sum the group copies back into an image, ``(B, G, C·size²) -> (B, C, H, W)``."""
        if y.dim() != 3 or tuple(y.shape[1:]) != (self.num_groups, self.group_dim):
            raise ValueError(f"expected a (B, {self.num_groups}, {self.group_dim}) tensor; "
                             f"got shape {tuple(y.shape)}")
        c, h, w = self.shape
        (p, q), r, b = self.grid, self.size, y.shape[0]
        if self.is_partition:  # a permutation: undo the gather's reshape
            img = y.reshape(b, p, q, c, r, r).permute(0, 3, 1, 4, 2, 5).reshape(
                b, c, p * r, q * r)
        else:
            img = F.fold(y.transpose(1, 2), output_size=self.padded_hw, kernel_size=r,
                         stride=self.stride)
        return img[..., :h, :w]

    def cover(self, like: Tensor) -> Tensor:
        """``diag(AᵀA)`` as a ``(1, C, H, W)`` tensor on ``like``'s device and dtype."""
        ones = torch.ones((1, *self.shape), dtype=like.dtype, device=like.device)
        return self.scatter(self.gather(ones))

    # -- summaries --------------------------------------------------------------------------
    def group_norms(self, x: Tensor) -> Tensor:
        """Per-group ℓ2 norms ``(B, P, Q)`` of an image batch ``(B, C, H, W)`` (for heatmaps)."""
        b = x.shape[0]
        return self.gather(x).norm(dim=2).reshape(b, *self.grid)

    def nonzero_groups(self, x: Tensor, tol: float = 0.0) -> Tensor:
        """Number of groups with ``||x_G||_2 > tol`` per sample, ``(B,)``."""
        return (self.gather(x).norm(dim=2) > tol).sum(dim=1)
