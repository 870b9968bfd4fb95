"""Any of our attacks with torchattacks' (3.5) calling convention.

    atk = TorchattacksAdapter(StrAttack(model))     # instead of torchattacks.CW(model, c=1)
    adv = atk(images, labels)                       # a tensor; the clean image where it failed

Modes as in torchattacks: ``set_mode_default()`` (untargeted), ``set_mode_targeted_by_label()``
(``labels`` are the targets), ``set_mode_targeted_random()``, ``set_mode_targeted_least_likely
(kth_min)``, ``set_mode_targeted_by_function(fn)``. ``set_normalization_used(mean, std)``: the
model takes normalised inputs, and so do ``atk(...)``'s inputs and outputs (torchattacks 3.5's
rule). ``save(loader, path)`` writes torchattacks' file (``torchattacks.Attack.load`` reads it).
``set_model_training_mode(model_training, batchnorm_training, dropout_training)``: the modes
the model runs in during the attack (default: eval). ``get_logits(inputs)``: the model's logits
for inputs as ``atk(...)`` takes them; ``set_device(device)``: where inputs are put.
``last_result`` is the full :class:`AttackResult` of the last call (success, distortions);
``last_status`` and ``last_reasons`` say per input whether its outcome can be trusted
("success", "failed" or "not judged", and why: :mod:`attacks.indicators`).
Each call runs on the wrapped attack's ``threads`` (default: one CPU thread, or
``OMP_NUM_THREADS``) and gives torch's setting back afterwards.
"""

from __future__ import annotations

import time
from typing import Callable, List, Optional

import torch
from torch import Tensor, nn

from attacks.adapters.common import check_attack, predict, run_attack, verdicts
from attacks.classifier import Classifier
from attacks.progress import BatchProgress


class _TrainingModes(nn.Module):
    """The user's model in torchattacks' ``set_model_training_mode(True, ...)`` modes: each
    forward puts it in training mode, its BatchNorm and Dropout layers in eval mode unless their
    flag is set. An attack's ``eval()`` stops here; the attack's
    :meth:`Classifier.evaluating` gives every module its own mode back after the call."""

    def __init__(self, net: nn.Module, batchnorm_training: bool, dropout_training: bool):
        super().__init__()
        self.net = net
        self.kept_in_eval = tuple(kind for kind, training in (("BatchNorm", batchnorm_training),
                                                              ("Dropout", dropout_training))
                                  if not training)

    def train(self, mode: bool = True) -> "_TrainingModes":
        self.training = mode  # the modes of ``net`` are set in forward
        return self

    def forward(self, x: Tensor) -> Tensor:
        self.net.train()
        for m in self.net.modules():
            if any(kind in type(m).__name__ for kind in self.kept_in_eval):
                m.eval()
        return self.net(x)


class TorchattacksAdapter:
    """torchattacks' ``Attack`` interface around one of our attacks (see the module doc)."""

    def __init__(self, attack):
        check_attack(attack)
        self.wrapped = attack
        self.attack = type(attack).__name__
        self.model = attack.classifier.net
        self.device = attack.classifier.device
        self.supported_mode = ["default", "targeted"]
        self.attack_mode = "default"
        self.targeted = False
        self.normalization_used: Optional[dict] = None
        self.last_result = None
        self.last_status: List[str] = []   # per input of the last call (attacks.indicators)
        self.last_reasons: List[str] = []
        self._target_map_function: Optional[Callable] = None
        self._kth_min = 1
        self._model_training = self._batchnorm_training = self._dropout_training = False
        self._attacked: nn.Module = self.model  # the model, or it in _TrainingModes

    def __repr__(self) -> str:
        return (f"TorchattacksAdapter({self.attack}, attack_mode={self.attack_mode}, "
                f"normalization_used={self.normalization_used is not None})")

    # -- modes -------------------------------------------------------------------------------
    def get_mode(self) -> str:
        return self.attack_mode

    def _set_mode(self, mode: str, quiet: bool) -> None:
        self.attack_mode, self.targeted = mode, mode != "default"
        if not quiet:
            print(f"Attack mode is changed to '{mode}'.")

    def set_mode_default(self, quiet: bool = False) -> None:
        """Untargeted (the default)."""
        self._set_mode("default", quiet)

    def set_mode_targeted_by_label(self, quiet: bool = False) -> None:
        """``atk(images, labels)`` takes the target classes as ``labels``."""
        self._set_mode("targeted(label)", quiet)

    def set_mode_targeted_random(self, quiet: bool = False) -> None:
        """One uniformly random class other than the label per image (torch's global RNG)."""
        self._set_mode("targeted(random)", quiet)

    def set_mode_targeted_least_likely(self, kth_min: int = 1, quiet: bool = False) -> None:
        """The class with the ``kth_min``-th smallest logit, the label excluded."""
        if not isinstance(kth_min, int) or kth_min < 1:
            raise ValueError(f"kth_min must be a positive integer; got {kth_min!r}")
        self._kth_min = kth_min
        self._set_mode("targeted(least-likely)", quiet)

    def set_mode_targeted_by_function(self, target_map_function: Callable,
                                      quiet: bool = False) -> None:
        """Targets ``target_map_function(images, labels)`` (images in [0, 1])."""
        if not callable(target_map_function):
            raise TypeError(f"target_map_function must be callable; got "
                            f"{type(target_map_function).__name__}")
        self._target_map_function = target_map_function
        self._set_mode("targeted(custom)", quiet)

    # -- normalisation -----------------------------------------------------------------------
    def set_normalization_used(self, mean, std) -> None:
        """The model expects ``(x − mean) / std``: the attack works on [0, 1] images, and
        ``atk(...)`` takes and returns normalised tensors, as torchattacks 3.5 does."""
        if self.wrapped.classifier.normalize is not None and self.normalization_used is None:
            raise ValueError("the wrapped attack already normalises (normalize=...); set it in "
                             "one place only")
        mean_t, std_t = torch.as_tensor(mean).flatten(), torch.as_tensor(std).flatten()
        if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
            raise ValueError(f"mean and std must give one value per channel each; got "
                             f"{mean_t.numel()} and {std_t.numel()}")
        self.normalization_used = {"mean": mean_t.reshape(1, -1, 1, 1),
                                   "std": std_t.reshape(1, -1, 1, 1)}
        self.wrapped.classifier = Classifier(self._attacked, (mean_t.tolist(), std_t.tolist()))

    def normalize(self, x: Tensor) -> Tensor:
        n = self.normalization_used
        return (x - n["mean"].to(x)) / n["std"].to(x)

    def inverse_normalize(self, x: Tensor) -> Tensor:
        n = self.normalization_used
        return x * n["std"].to(x) + n["mean"].to(x)

    # -- model mode, device, logits ----------------------------------------------------------
    def set_model_training_mode(self, model_training: bool = False,
                                batchnorm_training: bool = False,
                                dropout_training: bool = False) -> None:
        """During the attack, the model in training mode (``model_training``) with its
        BatchNorm/Dropout layers in training mode only when their flag is set; default: eval
        mode throughout. The model's own modes are restored after each call."""
        self._model_training = model_training
        self._batchnorm_training = batchnorm_training
        self._dropout_training = dropout_training
        self._attacked = (_TrainingModes(self.model, batchnorm_training, dropout_training)
                          if model_training else self.model)
        self.wrapped.classifier = Classifier(self._attacked, self.wrapped.classifier.normalize)

    def set_device(self, device) -> None:
        """The device inputs are put on (torchattacks: for a model whose device is not found)."""
        self.device = device

    def get_logits(self, inputs: Tensor, labels: Optional[Tensor] = None, *args,
                   **kwargs) -> Tensor:
        """The model's logits for ``inputs`` as ``atk(...)`` takes them (normalised after
        ``set_normalization_used``), in the model's current mode, as torchattacks' is."""
        return self.model(inputs)

    # -- attacking ---------------------------------------------------------------------------
    def _targets(self, images: Tensor, labels: Tensor) -> Optional[Tensor]:
        """The target of each image in the current mode (None: untargeted)."""
        mode = self.attack_mode
        if mode == "default":
            return None
        if mode == "targeted(label)":
            return labels
        if mode == "targeted(custom)":
            return torch.as_tensor(self._target_map_function(images, labels)).to(labels)
        with torch.no_grad(), self.wrapped.classifier.evaluating():
            logits = self.wrapped.classifier(images)
        k = logits.shape[1]
        if mode == "targeted(random)":
            shift = torch.randint(1, k, labels.shape).to(labels.device)
            return (labels + shift) % k
        # least likely: the kth smallest logit among the classes other than the label
        if not 1 <= self._kth_min < k:
            raise ValueError(f"kth_min must be in [1, {k - 1}] for {k} classes; got "
                             f"{self._kth_min}")
        masked = logits.scatter(1, labels.view(-1, 1), float("inf"))
        return masked.kthvalue(self._kth_min, dim=1).indices

    def __call__(self, inputs: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """The adversarial images (B, C, H, W) on the model's device; where the attack failed,
        the input itself. ``labels=None`` uses the model's predictions."""
        if not isinstance(inputs, Tensor):
            raise TypeError(f"inputs must be a tensor (B, C, H, W); got {type(inputs).__name__}")
        normalized = self.normalization_used is not None
        with self.wrapped.using_threads():
            x = inputs.detach().to(self.device)
            x = self.inverse_normalize(x).clamp(0, 1) if normalized else x
            given = None if labels is None else torch.as_tensor(labels).to(self.device)
            by_label = self.attack_mode == "targeted(label)"
            true = predict(self.wrapped, x) if given is None or by_label else given
            targets = self._targets(x, true if given is None else given)
            adv, _, self.last_result = run_attack(self.wrapped, x, true, targets)
            self.last_status, self.last_reasons = verdicts(self.last_result, x.shape[0])
        return self.normalize(adv) if normalized else adv

    # -- torchattacks' save file -------------------------------------------------------------
    def save(self, data_loader, save_path=None, verbose: bool = True,
             return_verbose: bool = False, save_predictions: bool = False,
             save_clean_inputs: bool = False, save_type: str = "float"):
        """Attack every ``(inputs, labels)`` batch and ``torch.save`` torchattacks' dict:
        ``adv_inputs`` (and ``clean_inputs``) in [0, 1] (un-normalised), ``labels``, ``preds``,
        ``save_type``. ``save_type="int"`` stores ``round(255·x)`` as uint8 (torchattacks
        truncates, which would move grid examples a level down). Returns ``(robust accuracy %,
        mean ℓ2 of the fooled examples, seconds)`` with ``return_verbose``."""
        if save_type not in ("float", "int"):
            raise ValueError(f'save_type must be "float" or "int"; got {save_type!r}')
        advs, labels_all, preds, cleans = [], [], [], []
        correct = total = 0
        l2 = []
        start = time.perf_counter()
        total_batches = len(data_loader) if hasattr(data_loader, "__len__") else None
        with BatchProgress(f"{self.attack} → {save_path or 'memory'}", total_batches,
                           verbose) as bar, self.wrapped.using_threads():
            for inputs, labels in data_loader:
                adv = self(inputs, labels)
                x01 = adv if self.normalization_used is None else self.inverse_normalize(adv)
                pred = predict(self.wrapped, x01.clamp(0, 1))
                right = pred == labels.to(self.device)
                correct, total = correct + int(right.sum()), total + right.numel()
                l2.append((adv - inputs.to(self.device)).flatten(1).norm(dim=1)[~right])
                advs.append(adv.cpu())
                labels_all.append(labels.cpu())
                preds.append(pred.cpu())
                cleans.append(inputs.cpu())
                bar.advance(self.last_result)
        elapsed = time.perf_counter() - start
        rob_acc = 100.0 * correct / max(total, 1)
        mean_l2 = float(torch.cat(l2).mean()) if l2 else float("nan")
        if save_path is not None:
            out = {"adv_inputs": torch.cat(advs), "labels": torch.cat(labels_all)}
            if save_predictions:
                out["preds"] = torch.cat(preds)
            if save_clean_inputs:
                out["clean_inputs"] = torch.cat(cleans)
            for key in ("adv_inputs", "clean_inputs"):
                if key in out:
                    x = out[key]
                    x = self.inverse_normalize(x) if self.normalization_used is not None else x
                    out[key] = (x * 255).round().clamp(0, 255).to(torch.uint8) \
                        if save_type == "int" else x
            out["save_type"] = save_type
            torch.save(out, save_path)
        if verbose:
            print(f"- Save progress: 100.00 % / Robust accuracy: {rob_acc:.2f} % / "
                  f"L2: {mean_l2:.5f} ({elapsed:.3f} s)")
        if return_verbose:
            return rob_acc, mean_l2, elapsed
        return None
