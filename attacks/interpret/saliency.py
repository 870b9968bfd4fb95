"""Adversarial saliency map (ASM), the paper's modified form (appendix E, eq. 61).

Papernot et al. (2016, "The limitations of deep learning in adversarial settings", eq. 60 of
the StrAttack paper) define, for a target class t and the forward derivative of the network,

    S(X, t)[i] = 0                                  if ∂Z_t/∂X_i < 0  or  Σ_{j≠t} ∂Z_j/∂X_i > 0
               = (∂Z_t/∂X_i) · |Σ_{j≠t} ∂Z_j/∂X_i|  otherwise.

The StrAttack paper keeps only the true label t0 in place of the sum over all other classes
(the sum is expensive with 1,000 classes). Our reading of the (garbled) eq. 61 is therefore

    ASM(X, t)[i] = 0                              if ∂Z_t/∂X_i < 0  or  ∂Z_t0/∂X_i > 0
                 = (∂Z_t/∂X_i) · |∂Z_t0/∂X_i|     otherwise,

i.e. a pixel scores when increasing it promotes the target logit (∂Z_t/∂X_i ≥ 0) *and* demotes
the true-label logit (∂Z_t0/∂X_i ≤ 0); the score is the product of the two magnitudes, so it
is always ≥ 0. The boundary cases (a derivative exactly 0) are kept, as in eq. 60, and give a
score of 0 anyway. Z are the logits (the outputs before the softmax).
"""

from __future__ import annotations

from typing import Callable, Tuple, Union

import torch
from torch import Tensor

Model = Callable[[Tensor], Tensor]
Classes = Union[int, Tensor]


def target_classes(c: Classes, b: int, device) -> Tensor:
    t = torch.as_tensor(c, device=device)
    if t.is_floating_point():
        raise ValueError(f"class indices must be integers; got {t.dtype}")
    if t.ndim == 0:
        t = t.expand(b)
    if t.shape != (b,):
        raise ValueError(f"expected one class per image, shape ({b},); got {tuple(t.shape)}")
    return t.long()


def logit_gradients(model: Model, x: Tensor, targets: Classes, labels: Classes
                    ) -> Tuple[Tensor, Tensor]:
    """``(∂Z_t/∂x, ∂Z_t0/∂x)``, each of x's shape (B, C, H, W), for a batch.

    One forward pass and two backward passes for the whole batch: since the examples of a
    batch do not interact (the model must be in eval mode), the gradient of Σ_b Z_b[t_b] with
    respect to x is, example by example, ∂Z_b[t_b]/∂x_b.
    """
    if x.ndim < 2:
        raise ValueError(f"x must be batched (B, ...); got shape {tuple(x.shape)}")
    b = x.shape[0]
    t = target_classes(targets, b, x.device)
    t0 = target_classes(labels, b, x.device)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        z = model(xg)
        if z.ndim != 2 or z.shape[0] != b:
            raise ValueError(f"the model must return logits (B, K); got {tuple(z.shape)}")
        zt = z.gather(1, t.view(-1, 1)).sum()
        z0 = z.gather(1, t0.view(-1, 1)).sum()
        (g_t,) = torch.autograd.grad(zt, xg, retain_graph=True)
        (g_t0,) = torch.autograd.grad(z0, xg)
    return g_t, g_t0


def asm_from_gradients(grad_target: Tensor, grad_true: Tensor) -> Tensor:
    """The eq.-61 rule on given gradients: ``g_t·|g_t0|`` where ``g_t ≥ 0`` and ``g_t0 ≤ 0``,
    else 0."""
    keep = (grad_target >= 0) & (grad_true <= 0)
    return torch.where(keep, grad_target * grad_true.abs(), torch.zeros_like(grad_target))


def adversarial_saliency_map(model: Model, x: Tensor, labels: Classes, targets: Classes
                             ) -> Tensor:
    """ASM(x, t) of eq. 61 for a batch: (B, C, H, W), non-negative.

    ``labels``: the true labels t0 (B,) (or one int for all); ``targets``: the target labels
    t (B,). The derivatives are taken at ``x`` (the clean images x0 in the paper).
    """
    g_t, g_t0 = logit_gradients(model, x, targets, labels)
    return asm_from_gradients(g_t, g_t0)


def percentile_mask(scores: Tensor, nu: float, *, strict: bool = True) -> Tensor:
    """Boolean map B at percentile ``nu`` ∈ [0, 100], per sample: ``scores > q_ν`` where q_ν is
    the ν-th percentile of that sample's scores (over all entries after the batch dimension;
    linear interpolation, as ``numpy.percentile``). This is the paper's "B(i) = 1 if
    ASM(x0, t)[i] > ν" with ν valued by a percentile (section 6).

    With distinct scores, B keeps ``n − floor(ν/100·(n−1)) − 1`` of the ``n`` entries (the top
    ≈ 100−ν %); ``strict=False`` (``scores ≥ q_ν``) keeps the same entries except when
    ν/100·(n−1) is an integer, where it also keeps the entry equal to q_ν.

    The two differ a lot on ties: ASM is exactly 0 wherever the eq.-61 sign test fails (41–87 %
    of the pixels of the mnist-test20 digits on mnist-cw), so for every ν below that fraction
    q_ν = 0; ``strict=True`` then keeps exactly the pixels with a positive score, while
    ``strict=False`` keeps every pixel (B = 1, IS = 1 for any δ).
    """
    if not 0 <= float(nu) <= 100:
        raise ValueError(f"nu is a percentile in [0, 100]; got {nu}")
    if scores.ndim < 2:
        raise ValueError(f"scores must be batched (B, ...); got shape {tuple(scores.shape)}")
    flat = scores.detach().flatten(1).double()
    q = torch.quantile(flat, float(nu) / 100.0, dim=1, keepdim=True)
    keep = flat > q if strict else flat >= q
    return keep.view(scores.shape)
