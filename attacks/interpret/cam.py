"""Class activation maps: CAM (Zhou et al. 2016) and Grad-CAM (Selvaraju et al. 2017).

Both return one map per image for one class per image, (B, H, W) at the input's resolution
(bilinear upsampling of the feature-map resolution, ``align_corners=False``), batched: one
forward pass and one backward pass for the whole batch (the model must be in eval mode so that
the examples do not interact).

* CAM needs a network that ends in global average pooling followed by a linear classifier:
  ``Z_c = Σ_k w_{c,k} · mean_{u,v} f_k(u, v) + b_c``. Then ``CAM_c(u, v) = Σ_k w_{c,k} f_k(u, v)``
  (no bias, no ReLU: the raw weighted sum, which may be negative). :func:`find_gap_head`
  finds that structure in any ``nn.Module`` by checking it numerically on a forward pass;
  :func:`gap_cam` is CAM for such a model.
* Grad-CAM works for any convolutional network: with ``A`` the output of a chosen layer
  (default: the output of the last convolutional block, see :func:`default_cam_layer`),
  ``α_k = mean_{u,v} ∂Z_c/∂A_k(u, v)`` and
  ``Grad-CAM_c = ReLU(Σ_k α_k A_k)``, computed at the layer's resolution and then upsampled.
  On a GAP + linear network whose last conv layer is the feature map, ``α_k = w_{c,k}/(h·w)``,
  so Grad-CAM = ReLU(CAM)/(h·w) before upsampling (tested).
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple, Union

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.interpret.saliency import Classes, target_classes


def _upsample(maps: Tensor, size) -> Tensor:
    """(B, h, w) -> (B, H, W), bilinear; a no-op when the sizes already agree."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=tuple(size), mode="bilinear",
                         align_corners=False).squeeze(1)


def class_activation_map(features: Callable[[Tensor], Tensor],
                         classifier: Union[nn.Linear, Tensor], x: Tensor, classes: Classes,
                         *, upsample: bool = True) -> Tensor:
    """CAM of ``classes`` (B,) for a GAP network ``classifier(mean_{u,v} features(x))``.

    ``features``: maps x (B, C, H, W) to the last convolutional feature map (B, K, h, w) (the
    part of the network before the global average pooling); ``classifier``: the linear layer
    after the pooling (or its weight matrix, (num_classes, K)). Returns (B, H, W) (or
    (B, h, w) with ``upsample=False``).
    """
    w = classifier.weight if isinstance(classifier, nn.Module) else torch.as_tensor(classifier)
    with torch.no_grad():
        f = features(x)
        if f.ndim != 4:
            raise ValueError(f"features must return (B, K, h, w); got {tuple(f.shape)}")
        if w.ndim != 2 or w.shape[1] != f.shape[1]:
            raise ValueError(f"classifier weight {tuple(w.shape)} does not match the "
                             f"{f.shape[1]} feature channels")
        c = target_classes(classes, f.shape[0], f.device)
        maps = torch.einsum("bk,bkhw->bhw", w.to(f.dtype)[c], f)
    return _upsample(maps, x.shape[-2:]) if upsample else maps


@attrs.frozen(eq=False)
class GapHead:
    """Where a model is ``logits = linear(mean_{u,v} A)``: A (B, K, h, w) is the output of
    ``module`` (its first input when ``use_input``, e.g. an ``nn.AdaptiveAvgPool2d``)."""

    module: nn.Module
    use_input: bool
    linear: nn.Linear


def _capture(model: nn.Module, module: nn.Module, x: Tensor, *, use_input: bool = False,
             method: str) -> Tuple[Tensor, Tensor]:
    """``model(x)`` with what ``module`` returned (its first input when ``use_input``), and the
    model's output; ``module`` must run exactly once (``method`` names who needs that)."""
    store = []
    handle = module.register_forward_hook(
        lambda m, i, o: store.append(i[0] if use_input else o))
    try:
        z = model(x)
    finally:
        handle.remove()
    if len(store) != 1:
        raise ValueError(f"the layer ran {len(store)} times in one forward pass; {method} "
                         "needs a layer that runs exactly once")
    return store[0], z


def _trace(model: nn.Module, x: Tensor):
    """Every leaf module call of one forward pass (no grad): [(module, inputs, output)], and
    the model's output."""
    calls = []
    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append((m, i, o))) for m in leaves]
    try:
        with torch.no_grad():
            z = model(x)
    finally:
        for h in hooks:
            h.remove()
    return calls, z


def find_gap_head(model: nn.Module, x: Tensor, rtol: float = 1e-4) -> Optional[GapHead]:
    """The GAP head of ``model`` if it has one, else None, checked on a forward pass of ``x``.

    A GAP head: the last module call is an ``nn.Linear`` whose output *is* the model's output
    (the logits) and whose input u (B, K) equals the spatial mean of a feature map A (B, K, h, w),
    h·w > 1, that some earlier module (called once) returned or received. Then
    Z = W·mean_{u,v} A + b exactly, so CAM_c = Σ_k W_ck A_k is defined. Found numerically (no
    naming convention), so it works for any wrapper (e.g. input normalisation in front).
    """
    _no_script(model)
    calls, z = _trace(model, x)
    if not calls:
        return None
    linear, inputs, out = calls[-1]
    if not (isinstance(linear, nn.Linear) and isinstance(out, Tensor) and isinstance(z, Tensor)
            and out.shape == z.shape and torch.equal(out, z) and inputs
            and isinstance(inputs[0], Tensor) and inputs[0].ndim == 2):
        return None
    u = inputs[0]
    atol = rtol * float(u.abs().max()) + 1e-12
    once = lambda m: sum(c[0] is m for c in calls) == 1
    for module, ins, o in reversed(calls[:-1]):
        for use_input, a in ((False, o), (True, ins[0] if ins else None)):
            if (isinstance(a, Tensor) and a.ndim == 4 and tuple(a.shape[:2]) == tuple(u.shape)
                    and a.shape[2] * a.shape[3] > 1 and once(module)
                    and torch.allclose(a.mean(dim=(2, 3)), u, rtol=rtol, atol=atol)):
                return GapHead(module, use_input, linear)
    return None


def gap_cam(model: nn.Module, x: Tensor, classes: Classes, *, head: Optional[GapHead] = None,
            upsample: bool = True) -> Tensor:
    """CAM (Zhou et al. 2016) of ``classes`` (B,) for a model with a GAP head: (B, H, W)
    (or (B, h, w) with ``upsample=False``), ``CAM_c = Σ_k W_ck A_k``.

    ``head``: from :func:`find_gap_head` (found on ``x`` when not given); a model without one
    is a ValueError.
    """
    head = head if head is not None else find_gap_head(model, x)
    if head is None:
        raise ValueError("CAM needs a model whose logits are a linear layer applied to the "
                         "global average pooling of a feature map (a GAP head); this model has "
                         "none: use Grad-CAM (grad_cam)")

    features = lambda inp: _capture(model, head.module, inp, use_input=head.use_input,
                                    method="CAM")[0]
    return class_activation_map(features, head.linear, x, classes, upsample=upsample)


def module_name(model: nn.Module, module: nn.Module) -> str:
    """The qualified name of ``module`` inside ``model`` (e.g. ``net.features.8``)."""
    for name, m in model.named_modules():
        if m is module:
            return name or "(the model)"
    return type(module).__name__


def last_conv(model: nn.Module) -> nn.Module:
    """The last ``nn.Conv2d`` in ``model.modules()`` order (registration order, which for the
    zoo models is also the order of the forward pass)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the model has no nn.Conv2d; pass layer= (a module whose output is "
                         "a (B, K, h, w) feature map)")
    return convs[-1]


def _no_script(model) -> None:
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    scripted = [m for m in [model] + modules if isinstance(m, torch.jit.ScriptModule)]
    if scripted:
        raise ValueError("Grad-CAM needs forward hooks, which TorchScript modules do not run; "
                         "load the model as a Python nn.Module")


_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
                nn.BatchNorm2d, nn.Identity, nn.Dropout, nn.Dropout2d)


def default_cam_layer(model: nn.Module, x: Tensor, min_size: int = 4) -> nn.Module:
    """The output of the last convolutional block whose feature map is at least
    ``min_size``×``min_size``: traces one forward pass (on ``x[:1]``), takes the last
    ``nn.Conv2d`` with such an output, then follows the per-pixel modules called right after it
    (activations, batch norm, dropout) so that the map is the block's output, not the
    pre-activation. Falls back to :func:`last_conv` when nothing qualifies.

    Why not simply the last ``nn.Conv2d``: in both zoo models its output is the
    pre-activation (negative values that the next ReLU discards dominate Σ α_k A_k, and the
    true-label map of many MNIST digits is 0 everywhere), and in ``cifar10-cnn`` it is 1×1
    (a constant map after upsampling). mnist-cw -> ``net.features[8]`` (ReLU, 8×8);
    cifar10-cnn -> ``net.bns[3]`` (10×10).
    """
    _no_script(model)
    calls = [(m, o) for m, _, o in _trace(model, x[:1])[0]]
    shape = lambda o: tuple(o.shape) if isinstance(o, Tensor) else ()
    convs = [k for k, (m, o) in enumerate(calls) if isinstance(m, nn.Conv2d)
             and len(shape(o)) == 4 and min(shape(o)[2:]) >= min_size]
    if not convs:
        return last_conv(model)
    k = convs[-1]
    once = lambda m: sum(c[0] is m for c in calls) == 1
    while (k + 1 < len(calls) and isinstance(calls[k + 1][0], _ELEMENTWISE)
           and shape(calls[k + 1][1]) == shape(calls[k][1]) and once(calls[k + 1][0])):
        k += 1
    return calls[k][0]


def grad_cam(model: nn.Module, x: Tensor, classes: Classes, *,
             layer: Optional[nn.Module] = None, upsample: bool = True) -> Tensor:
    """Grad-CAM of ``classes`` (B,) at ``layer``: (B, H, W) ≥ 0.

    ``layer``: the module whose output (B, K, h, w) is the feature map A; default
    :func:`default_cam_layer` (the last conv block's output); ``last_conv(model)`` gives the
    plain last ``nn.Conv2d``.

    ``model`` maps [0, 1] images to logits (B, num_classes); gradients are those of the logits
    (before any softmax). The layer must be called exactly once per forward pass.
    """
    _no_script(model)
    layer = layer if layer is not None else default_cam_layer(model, x)
    with torch.enable_grad():
        a, z = _capture(model, layer, x.detach().requires_grad_(True), method="Grad-CAM")
    if not isinstance(a, Tensor) or a.ndim != 4:
        raise ValueError(f"the layer must output (B, K, h, w); got "
                         f"{tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__}")
    if z.ndim != 2 or z.shape[0] != x.shape[0]:
        raise ValueError(f"the model must return logits (B, K); got {tuple(z.shape)}")
    c = target_classes(classes, x.shape[0], z.device)
    (g,) = torch.autograd.grad(z.gather(1, c.view(-1, 1)).sum(), a)
    alpha = g.mean(dim=(2, 3), keepdim=True)
    maps = torch.relu((alpha * a).sum(1)).detach()
    return _upsample(maps, x.shape[-2:]) if upsample else maps


def normalize_maps(maps: Tensor) -> Tensor:
    """Per-sample min-max scaling to [0, 1] (for display; constant maps become 0)."""
    flat = maps.flatten(1)
    lo = flat.min(1, keepdim=True).values
    span = flat.max(1, keepdim=True).values - lo
    return ((flat - lo) / torch.where(span > 0, span, torch.ones_like(span))).view_as(maps)
