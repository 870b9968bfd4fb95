"""Any of our attacks with the Adversarial Robustness Toolbox's (ART 1.x) evasion-attack call.

    attack = ArtAttack(classifier, StrAttack)   # instead of CarliniL2Method(classifier)
    x_adv = attack.generate(x)                  # numpy in, numpy out, x's dtype

``classifier`` is an ART ``PyTorchClassifier`` (channels first): inputs lie in its
``clip_values`` and go through its preprocessing operations (``preprocessing=(mean, std)``,
and any PyTorch preprocessing defence) as ART sends them to its model. ``targeted=False``:
``y`` (labels, one-hot or indices) defaults to the classifier's predictions, as in ART;
``targeted=True``: ``y`` are the target classes (required). Where the attack fails (or the
prediction already is the target) the input comes back unchanged. ``last_result`` is the
full :class:`AttackResult` of the last call; ``last_status`` and ``last_reasons`` say per input
whether its outcome can be trusted ("success", "failed" or "not judged", and why:
:mod:`attacks.indicators`). Each call runs on the attack's ``threads`` (a
parameter: default one CPU thread, or ``OMP_NUM_THREADS``) and gives torch's setting back.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from attacks.adapters.common import check_attack, verdicts


class _ArtModel(nn.Module):
    """An ART classifier as a module on [0, 1] images: its model after its preprocessing of
    ``lo + x·(hi − lo)``."""

    def __init__(self, classifier: Any):
        super().__init__()
        self.net = classifier.model
        low, high = classifier.clip_values
        self.lo, self.hi = float(np.min(low)), float(np.max(high))
        self.steps = [p for p in classifier.preprocessing_operations if p.apply_predict]

    def forward(self, x: Tensor) -> Tensor:
        x = self.lo + x * (self.hi - self.lo)
        for step in self.steps:
            x, _ = step.forward(x)
        return self.net(x)


class ArtAttack:
    """ART's ``EvasionAttack`` interface around one of our attack classes (see the module doc).

    ``attack``: an attack class or factory ``model -> attack`` (``StrAttack``, ``CWL2``...),
    ``params`` go to it; ``targeted`` as ART's attacks take it.
    """

    def __init__(self, classifier: Any, attack: Callable[..., Any], *, targeted: bool = False,
                 **params):
        for name in ("model", "clip_values", "preprocessing_operations", "predict"):
            if not hasattr(classifier, name):
                raise TypeError(f"classifier must be an ART PyTorchClassifier; got "
                                f"{type(classifier).__name__} (no {name})")
        if classifier.clip_values is None:
            raise ValueError("classifier must have clip_values (the input range): "
                             "PyTorchClassifier(..., clip_values=(0, 1))")
        if not getattr(classifier, "channels_first", True):
            raise ValueError("classifier must be channels first (channels_first=True)")
        slow = [type(p).__name__ for p in classifier.preprocessing_operations
                if p.apply_predict and not hasattr(p, "forward")]
        if slow:
            raise ValueError(f"classifier's preprocessing {slow} has no PyTorch forward; the "
                             "attack needs gradients through it")
        if not callable(attack):
            raise TypeError(f"attack must be an attack class or a factory model -> attack; got "
                            f"{type(attack).__name__}")
        self.estimator, self.targeted = classifier, bool(targeted)
        self.wrapped = attack(_ArtModel(classifier), **params)
        check_attack(self.wrapped)
        self.last_result = None
        self.last_status: List[str] = []   # per input of the last call (attacks.indicators)
        self.last_reasons: List[str] = []

    def __repr__(self) -> str:
        return f"ArtAttack({type(self.wrapped).__name__}, targeted={self.targeted})"

    def generate(self, x: np.ndarray, y: Optional[np.ndarray] = None, **kwargs) -> np.ndarray:
        """Adversarial examples for ``x`` (N, C, H, W), same dtype, within ``clip_values``."""
        if kwargs:
            raise TypeError(f"generate got an unexpected keyword argument '{next(iter(kwargs))}'")
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            raise ValueError(f"x must be a numpy array (N, C, H, W); got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        model = self.wrapped.classifier
        lo, hi = model.net.lo, model.net.hi
        if x.min() < lo or x.max() > hi:
            raise ValueError(f"x must lie in the classifier's clip_values ({lo}, {hi}); got "
                             f"values in [{x.min():.4g}, {x.max():.4g}]")
        with self.wrapped.using_threads():
            x01 = torch.from_numpy(((x - lo) / (hi - lo)).astype(np.float32)).clamp(0, 1)
            x01 = x01.to(model.device)
            predicted = model.predict(x01)
            if y is None and self.targeted:
                raise ValueError("y (the target classes) is required for a targeted attack")
            given = predicted if y is None else _classes(y, len(x)).to(model.device)
            labels, targets = (predicted, given) if self.targeted else (given, None)
            todo = torch.arange(len(x), device=model.device)
            if self.targeted:  # where the prediction is the target already, x is the answer
                todo = todo[labels != targets]
            adv01 = x01.clone()
            self.last_result = None
            if todo.numel():
                self.last_result = self.wrapped(x01[todo], labels[todo],
                                                None if targets is None else targets[todo])
                adv01[todo] = self.last_result.adversarial.to(adv01.dtype)
            self.last_status, self.last_reasons = verdicts(self.last_result, len(x), todo)
            adv = (lo + adv01 * (hi - lo)).cpu().numpy().astype(x.dtype)
            return np.where((adv01 == x01).cpu().numpy(), x, adv)  # untouched entries exact


def _classes(y: Any, n: int) -> Tensor:
    """Class indices (n,) of ART labels: indices (n,) or one-hot / scores (n, K)."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.argmax(1)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be {n} class indices or an (n, num_classes) one-hot array; "
                         f"got {y.dtype} {y.shape}")
    return torch.from_numpy(y.astype(np.int64))
