"""Distortion metrics of perturbations, per sample (B,)."""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

from admmkit.groups import SlidingGroups

L0_TOL = 1e-7  # an entry counts as perturbed when |δ_i| > 1e-7 (entries of H×W×C)
#: every metric :func:`distortions` computes (the group ones only given groups)
NAMES = ("l0", "l1", "l2", "linf", "groups_nonzero", "groups_fraction")


def distortions(delta: Tensor, groups: Optional[SlidingGroups] = None) -> Dict[str, Tensor]:
    """ℓ0 (entries of H×W×C with |δ| > 1e-7), ℓ1, ℓ2, ℓ∞ and, given ``groups``, the number and
    fraction of groups with a non-zero perturbation."""
    flat = delta.flatten(1)
    out = {
        "l0": (flat.abs() > L0_TOL).sum(1).to(delta.dtype),
        "l1": flat.abs().sum(1),
        "l2": flat.norm(dim=1),
        "linf": flat.abs().amax(1),
    }
    if groups is not None:
        nz = groups.nonzero_groups(delta, tol=L0_TOL).to(delta.dtype)
        out["groups_nonzero"] = nz
        out["groups_fraction"] = nz / groups.num_groups
    return out
