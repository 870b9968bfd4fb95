"""SlidingGroups: the image <-> group-copies coupling A (gather), its adjoint (scatter), cover counts."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from admmkit.groups import SlidingGroups


@st.composite
def groupings(draw):
    """A valid SlidingGroups (stride <= size <= min(H, W))."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    size = draw(st.integers(1, min(h, w)))
    stride = draw(st.integers(1, size))
    return SlidingGroups((c, h, w), size, stride)


@settings(max_examples=40, deadline=None)
@given(groups=groupings(), batch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_scatter_is_the_adjoint_of_gather(groups, batch, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, *groups.shape, generator=g, dtype=torch.float64)
    y = torch.randn(batch, groups.num_groups, groups.group_dim, generator=g, dtype=torch.float64)
    az = groups.gather(z)
    assert az.shape == y.shape
    lhs = (az * y).sum()
    rhs = (z * groups.scatter(y)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(groups=groupings())
def test_cover_counts_how_many_groups_hold_each_pixel(groups):
    cover = groups.cover(torch.zeros(1))
    assert cover.shape == (1, *groups.shape)
    assert (cover >= 1).all()  # every pixel is in a group
    # diag(AᵀA) by brute force: mark each group's pixels
    _, h, w = groups.shape
    hp, wp = groups.padded_hw
    counts = torch.zeros(hp, wp)
    p, q = groups.grid
    for i in range(p):
        for j in range(q):
            counts[i * groups.stride:i * groups.stride + groups.size,
                   j * groups.stride:j * groups.stride + groups.size] += 1
    torch.testing.assert_close(cover[0, 0], counts[:h, :w])
    if groups.is_partition:
        assert (cover == 1).all()


@pytest.mark.parametrize("hw, size", [((28, 28), 3), ((28, 28), 2), ((32, 32), 13), ((5, 7), 2)])
def test_partition_covers_each_pixel_once_even_with_padding(hw, size):
    groups = SlidingGroups((3, *hw), size, size)
    assert groups.is_partition
    assert (groups.cover(torch.zeros(1)) == 1).all()
    hp, wp = groups.padded_hw
    assert hp >= hw[0] and wp >= hw[1] and hp % size == 0 and wp % size == 0


def test_overlapping_3x3_stride_2_on_28x28():
    groups = SlidingGroups((1, 28, 28), 3, 2)
    cover = groups.cover(torch.zeros(1, dtype=torch.float64))
    assert set(cover.unique().tolist()) == {1.0, 2.0, 4.0}
    assert groups.grid == (14, 14) and groups.num_groups == 196 and groups.group_dim == 9
    assert cover[0, 0, 1, 1] == 1 and cover[0, 0, 0, 2] == 2 and cover[0, 0, 2, 2] == 4


def test_cover_follows_dtype():
    groups = SlidingGroups((1, 4, 4), 2, 1)
    assert groups.cover(torch.zeros(1, dtype=torch.float64)).dtype == torch.float64


def test_gather_then_scatter_on_a_partition_is_the_identity():
    groups = SlidingGroups((2, 7, 9), 3, 3)
    z = torch.randn(2, 2, 7, 9)
    torch.testing.assert_close(groups.scatter(groups.gather(z)), z)


def test_group_norms_and_nonzero_groups():
    groups = SlidingGroups((1, 4, 4), 2, 2)
    x = torch.zeros(2, 1, 4, 4)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 3.0, 4.0  # group (0, 0) of sample 0: norm 5
    x[0, 0, 3, 3] = 1e-3  # group (1, 1) of sample 0: tiny
    norms = groups.group_norms(x)
    assert norms.shape == (2, 2, 2)
    torch.testing.assert_close(norms[0], torch.tensor([[5.0, 0.0], [0.0, 1e-3]]))
    assert (norms[1] == 0).all()
    assert groups.nonzero_groups(x).tolist() == [2, 0]
    assert groups.nonzero_groups(x, tol=0.01).tolist() == [1, 0]


def test_overlapping_groups_count_shared_pixels_in_every_group():
    groups = SlidingGroups((1, 3, 3), 2, 1)
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0  # the centre is in all four groups
    assert groups.nonzero_groups(x).tolist() == [4]
    torch.testing.assert_close(groups.group_norms(x), torch.ones(1, 2, 2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(shape=(1, 4, 4), size=5, stride=1), "larger than the image"),
    (dict(shape=(1, 8, 3), size=4, stride=2), "larger than the image"),
    (dict(shape=(1, 8, 8), size=2, stride=0), "stride must be a positive integer"),
    (dict(shape=(1, 8, 8), size=2, stride=-1), "stride must be a positive integer"),
    (dict(shape=(1, 8, 8), size=0, stride=1), "size must be a positive integer"),
    (dict(shape=(1, 8, 8), size=2, stride=3), "stride 3 > size 2"),
    (dict(shape=(1, 8, 8), size=2.0, stride=2), "size must be a positive integer"),
    (dict(shape=(8, 8), size=2, stride=2), r"shape must be \(C, H, W\)"),
    (dict(shape=(1, 0, 8), size=1, stride=1), r"shape must be \(C, H, W\)"),
])
def test_invalid_groupings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SlidingGroups(**kwargs)


def test_wrong_input_shapes():
    groups = SlidingGroups((1, 4, 4), 2, 2)
    with pytest.raises(ValueError, match=r"expected a \(B, 1, 4, 4\) tensor; got shape \(1, 4, 4\)"):
        groups.gather(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"expected a \(B, 1, 4, 4\) tensor"):
        groups.gather(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected a \(B, 4, 4\) tensor; got shape \(1, 4, 3\)"):
        groups.scatter(torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match=r"expected a \(B, 1, 4, 4\) tensor"):
        groups.group_norms(torch.zeros(2, 16))
