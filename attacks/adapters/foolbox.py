"""Any of our attacks with foolbox 3's calling convention (a minimization attack).

    attack = FoolboxAttack(StrAttack)            # instead of fb.attacks.L2CarliniWagnerAttack()
    raw, clipped, success = attack(fmodel, images, fb.criteria.Misclassification(labels),
                                   epsilons=[0.5, 1.0, None])

``fmodel`` is a ``foolbox.PyTorchModel``: inputs lie in its ``bounds`` and go through its
``preprocessing`` (mean, std, axis, flip_axis) exactly as foolbox sends them; a plain
``torch.nn.Module`` is taken as bounds (0, 1). The criterion is ``Misclassification(labels)``,
``TargetedMisclassification(target_classes)`` or a labels tensor. ``epsilons`` as foolbox
treats minimization attacks: ``raw`` is the attack's answer (the clean input where it failed),
``clipped`` that answer with its perturbation clipped to each ε by ``attack.distance``
(``None``: unclipped), ``success`` re-checked through ``fmodel`` on ``clipped``; a list of
epsilons gives lists and a (K, N) success, one ε an (N,) success. After a call,
``last_status`` and ``last_reasons`` say per input whether its outcome can be trusted
("success", "failed" or "not judged", and why: :mod:`attacks.indicators`): a False
``success`` that is "not judged" says nothing about robustness.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, List, Optional

import torch
from torch import Tensor, nn

from attacks.adapters.common import check_attack, run_attack, verdicts

#: The foolbox distance an attack class is measured (and clipped) in; all others: ℓ2.
DISTANCES = {"EAD": "l1", "LinfAttack": "linf"}


class _BoundedModel(nn.Module):
    """A foolbox model as a module on [0, 1] images: ``fmodel(lo + x·(hi − lo))``."""

    def __init__(self, fmodel: Any, lo: float, hi: float, device):
        super().__init__()
        self.fmodel, self.lo, self.hi = fmodel, lo, hi
        self.register_buffer("anchor", torch.zeros(0, device=device), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fmodel(self.lo + x * (self.hi - self.lo))


class FoolboxAttack:
    """foolbox's ``Attack`` interface around one of our attack classes (see the module doc).

    ``attack``: an attack class or factory ``model -> attack`` (``StrAttack``, ``CWL2``,
    ``lambda m: EAD(m, search=...)``...), built on each call's model; ``params`` go to it.
    ``distance``: a foolbox distance (default: ℓ1 for EAD, ℓ∞ for LinfAttack, else ℓ2).
    """

    def __init__(self, attack: Callable[..., Any], *, distance: Any = None, **params):
        if not callable(attack):
            raise TypeError(f"attack must be an attack class or a factory model -> attack; got "
                            f"{type(attack).__name__}")
        self.attack, self.params, self._distance = attack, params, distance
        self.last_result = None
        #: per input of the last call: "success", "failed" or "not judged", and the reasons
        #: (attacks.indicators): a False ``success`` that is "not judged" is no robustness
        self.last_status: List[str] = []
        self.last_reasons: List[str] = []

    def __repr__(self) -> str:
        name = getattr(self.attack, "__name__", type(self.attack).__name__)
        return f"FoolboxAttack({name}, {self.params})"

    @property
    def distance(self):
        if self._distance is not None:
            return self._distance
        import foolbox.distances as d  # only needed to clip to epsilons
        return getattr(d, DISTANCES.get(getattr(self.attack, "__name__", ""), "l2"))

    def repeat(self, times: int) -> "FoolboxAttack":
        """Our attacks are deterministic: repeating one returns the same answer."""
        return self

    def __call__(self, model: Any, inputs: Any, criterion: Any, *, epsilons: Any, **kwargs):
        if kwargs:
            raise TypeError(f"attack got an unexpected keyword argument '{next(iter(kwargs))}'")
        x = getattr(inputs, "raw", inputs)  # an eagerpy tensor wraps the torch one
        if not isinstance(x, Tensor):
            raise TypeError(f"inputs must be a torch tensor; got {type(inputs).__name__}")
        restore = (lambda t: type(inputs)(t)) if x is not inputs else (lambda t: t)
        lo, hi = (float(b) for b in getattr(model, "bounds", (0.0, 1.0)))
        if x.min() < lo or x.max() > hi:
            raise ValueError(f"inputs must lie in the model's bounds ({lo}, {hi}); got values "
                             f"in [{x.min().item():.4g}, {x.max().item():.4g}]")
        if isinstance(model, nn.Module):
            net = model
        elif hasattr(model, "bounds") and callable(model):
            net = _BoundedModel(model, lo, hi, getattr(model, "device", x.device))
        else:
            raise TypeError(f"model must be a foolbox model (e.g. fb.PyTorchModel) or a "
                            f"torch.nn.Module; got {type(model).__name__}")
        ours = self.attack(net, **self.params)
        check_attack(ours)
        with ours.using_threads():
            x = x.to(ours.classifier.device)
            x01 = ((x - lo) / (hi - lo)).clamp(0, 1)
            labels, targets = _criterion(criterion, x.shape[0])
            labels = ours.classifier.predict(x01) if labels is None else labels.to(x.device)
            targets = None if targets is None else targets.to(x.device)
            adv01, _, self.last_result = run_attack(ours, x01, labels, targets)
            self.last_status, self.last_reasons = verdicts(self.last_result, x.shape[0])
            raw = torch.where(adv01 == x01, x, lo + adv01 * (hi - lo))  # untouched entries exact

            was_iterable = isinstance(epsilons, Iterable)
            eps_list = list(epsilons) if was_iterable else [epsilons]
            clipped = [raw if e is None else self.distance.clip_perturbation(x, raw, e)
                       for e in eps_list]
            score = ours.classifier if net is model else model  # the user's model, in its bounds
            with torch.no_grad():  # success as foolbox decides it: the model on the clipped inputs
                preds = [score(c).argmax(-1) for c in clipped]
            ok = torch.stack([p == targets if targets is not None else p != labels for p in preds])
            if was_iterable:
                return [restore(raw)] * len(eps_list), [restore(c) for c in clipped], restore(ok)
            return restore(raw), restore(clipped[0]), restore(ok[0])


def _criterion(criterion: Any, n: int):
    """``(labels, targets)`` of a foolbox criterion or a labels tensor; one of them is None."""
    if hasattr(criterion, "target_classes"):
        labels, targets = None, getattr(criterion.target_classes, "raw", criterion.target_classes)
    elif hasattr(criterion, "labels"):
        labels, targets = getattr(criterion.labels, "raw", criterion.labels), None
    elif isinstance(criterion, Tensor):
        labels, targets = criterion, None
    else:
        raise TypeError("criterion must be foolbox's Misclassification(labels), "
                        "TargetedMisclassification(target_classes) or a labels tensor; got "
                        f"{type(criterion).__name__}")
    given = labels if labels is not None else targets
    given = torch.as_tensor(given)
    if given.shape != (n,) or given.is_floating_point():
        name = "target_classes" if targets is not None else "labels"
        raise ValueError(f"the criterion's {name} must be an integer tensor of shape ({n},); "
                         f"got {given.dtype} {tuple(given.shape)}")
    return (given.long(), None) if targets is None else (None, given.long())
