"""The classifier under attack: any ``torch.nn.Module`` mapping [0, 1] images to logits, with
optional input normalisation (mean, std), and the input checks every attack shares.

``normalize=(mean, std)`` is for a model that expects normalised inputs (a torchvision-style
network, a user's TorchScript file): the attack still works on [0, 1] images and the model
sees ``(x - mean) / std``; mean and std are numbers or one value per channel."""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from attacks.checks import check_batch_logits, check_logits
from attacks.models import ImageClassifier
from attacks.targets import INTEGER_DTYPES

#: how many clean images the model's outputs are checked on before an attack
CHECKED_IMAGES = 16


class InputError(ValueError):
    """The images, the labels or the model's outputs on them cannot be attacked."""


class Classifier:
    """A model on its own device, with checked calls. Attacks run it in eval mode inside
    :meth:`evaluating`, which gives every module of the caller's model its own mode back."""

    def __init__(self, model: nn.Module, normalize: Optional[tuple] = None):
        if not isinstance(model, nn.Module):
            hint = ""
            if hasattr(model, "bounds") and callable(model):  # e.g. a foolbox PyTorchModel
                hint = " (for a foolbox model use attacks.adapters.FoolboxAttack)"
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}{hint}")
        if normalize is not None and (not isinstance(normalize, (tuple, list))
                                      or len(normalize) != 2):
            raise ValueError(f"normalize must be a (mean, std) pair; got {normalize!r}")
        self.net = model  # the user's model, as given
        self.normalize = normalize
        p = next(iter(model.parameters()), None)
        p = next(iter(model.buffers()), None) if p is None else p
        self.device = p.device if p is not None else torch.device("cpu")
        if self.device.type == "meta":
            raise ValueError("model: its parameters are on the meta device (shapes without "
                             "data); load its weights first (e.g. to_empty, then "
                             "load_state_dict)")
        self.dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        if normalize is not None:  # (x - mean) / std inside the model, on its device
            model = ImageClassifier(model, *normalize,
                                    input_shape=getattr(model, "input_shape", None),
                                    num_classes=getattr(model, "num_classes", None),
                                    class_names=getattr(model, "class_names", None)
                                    ).to(self.device)
        self.model = model
        self.num_classes: Optional[int] = None

    @contextlib.contextmanager
    def evaluating(self):
        """The model in eval mode for the duration; each module's own mode restored after
        (the caller's model is left as it was given, training or not)."""
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            yield self
        finally:
            for m, training in modes:
                m.training = training

    def __call__(self, x: Tensor) -> Tensor:
        """The model's logits on ``x``, checked on every call: ``x.shape[0]`` rows of
        ``num_classes`` (once the clean check learnt it) floating-point scores
        (:func:`check_batch_logits`)."""
        return check_batch_logits(self.model(x), x.shape[0], self.num_classes)

    def predict(self, x: Tensor, batch_size: int = 512) -> Tensor:
        with torch.no_grad(), self.evaluating():
            return torch.cat([self(x[i:i + batch_size]).argmax(1)
                              for i in range(0, x.shape[0], batch_size)])

    def check_inputs(self, images: Tensor, labels: Tensor, on_warning=None) -> tuple:
        """Validate ``images`` (B, C, H, W) in [0, 1] and ``labels`` (B,), run the model on
        the first :data:`CHECKED_IMAGES` images (its outputs must be finite logits of as many
        classes as the labels need: ``num_classes`` is learnt here); return both on the
        model's device. A model whose outputs look like probabilities is warned about through
        ``on_warning(text)`` (default: :func:`warnings.warn`). The one check of a call or run:
        errors are :class:`InputError` (a ``ValueError``)."""
        if not isinstance(images, Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise InputError(f"images must be a (B, C, H, W) tensor; got {shape}")
        for name, t in (("images", images), ("labels", labels)):
            if isinstance(t, Tensor) and t.is_meta:
                raise InputError(f"{name} are on the meta device (a shape without data); "
                                 "give them on a real device")
        if not images.is_floating_point():
            raise InputError(f"images must be floating point in [0, 1]; got {images.dtype}")
        if images.shape[0] == 0:
            raise InputError("images is an empty batch")
        if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise InputError(f"images must lie in [0, 1]; got values in "
                             f"[{images.min().item():.4g}, {images.max().item():.4g}]")
        labels = torch.as_tensor(labels)
        if labels.shape != (images.shape[0],) or labels.dtype not in INTEGER_DTYPES:
            raise InputError(f"labels must be an integer tensor of shape ({images.shape[0]},); "
                             f"got {labels.dtype} {tuple(labels.shape)}")
        shape = getattr(self.model, "input_shape", None)
        if shape is not None and tuple(shape) != tuple(images.shape[1:]):
            raise InputError(f"the model expects images of shape {tuple(shape)}; these are "
                             f"{tuple(images.shape[1:])}")
        # float64 (or half) images are cast to the model's own floating-point type
        images, labels = images.to(self.device, self.dtype), labels.to(self.device).long()
        try:
            with torch.no_grad(), self.evaluating():
                logits = self.model(images[:CHECKED_IMAGES])
        except Exception as e:  # a model that cannot take these images
            raise InputError(f"the model fails on images of shape {tuple(images.shape[1:])}: "
                             f"{e}") from e
        logits = check_batch_logits(logits, min(CHECKED_IMAGES, images.shape[0]))
        warning = check_logits(logits.detach().float(), "the model")  # non-finite: an error
        if warning:
            if on_warning is None:
                warnings.warn(warning, stacklevel=4)
            else:
                on_warning(warning)
        k = logits.shape[1]
        if k < 2:
            raise InputError(f"the model returns {k} class score per image; an attack needs "
                             "at least 2 classes")
        self.num_classes = k
        if labels.min() < 0 or labels.max() >= k:
            raise InputError(f"labels must be in [0, {k}); got values in "
                             f"[{labels.min().item()}, {labels.max().item()}]")
        return images, labels


def in_eval_mode(method):
    """Decorator of an attack's method: its ``self.classifier`` runs in eval mode during the
    call, and the caller's model gets its modes back afterwards."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.classifier.evaluating():
            return method(self, *args, **kwargs)

    return wrapper
