"""Turn ``solve``'s options into objects: device, model, data and targets (user errors on
anything that does not resolve)."""

from __future__ import annotations

import hashlib
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from attacks.data import load_dataset
from attacks.models import load_model
from attacks.targets import expand_targets
from cli.errors import UserError

TARGET_MODES = ("untargeted", "random", "all")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine "
                            f"(torch {torch.__version__}); use --device cpu or auto")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise UserError(f"--device {name}: not a device name (cuda or cuda:N)") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise UserError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return str(dev)


def resolve_model(name: str, weights: Optional[str], device: torch.device) -> nn.Module:
    try:
        return load_model(name, device, weights=weights)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise UserError(f"--model {name}: {e}") from None


def resolve_data(name: str, n: Optional[int]) -> Tuple[Tensor, Tensor]:
    if n is not None and n <= 0:
        raise UserError(f"-n {n}: expected a positive number of images")
    try:
        return load_dataset(name, n)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise UserError(f"--data {name}: {e}") from None


def check_compatible(model: nn.Module, images: Tensor, labels: Tensor, model_name: str,
                     data_name: str) -> int:
    """Run one image through the model; return its number of classes."""
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(shape) != tuple(images.shape[1:]):
        raise UserError(f"--model {model_name} expects images of shape {tuple(shape)} but "
                        f"--data {data_name} has {tuple(images.shape[1:])}")
    device = next(iter(model.parameters()), torch.empty(0)).device
    try:
        with torch.no_grad():
            k = model(images[:1].to(device)).shape[1]
    except Exception as e:  # a user model that cannot take these images
        raise UserError(f"--model {model_name} fails on images of --data {data_name} "
                        f"{tuple(images.shape[1:])}: {e}") from None
    if int(labels.max()) >= k:
        raise UserError(f"--data {data_name} has label {int(labels.max())} but --model "
                        f"{model_name} has only {k} classes")
    return int(k)


def parse_targets(text: str, labels: Tensor, num_classes: int, seed: int):
    """``(source_index, Targets)`` for ``--targets untargeted|random|all|<ints>``.

    A comma list gives one target per image, or a single class for every image.
    """
    text = text.strip()
    choice = text if text in TARGET_MODES else None
    if choice is None:
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            raise UserError(f"--targets {text!r}: expected untargeted, random, all or a comma "
                            "list of class indices (one per image, or one for all)") from None
        if len(values) == 1:
            values = values * labels.shape[0]
        if len(values) != labels.shape[0]:
            raise UserError(f"--targets {text!r}: {len(values)} targets for "
                            f"{labels.shape[0]} images; give one per image or a single class")
        choice = torch.tensor(values, dtype=torch.long)
    try:
        return expand_targets(labels, num_classes, choice, seed)
    except ValueError as e:
        raise UserError(f"--targets {text}: {e}") from None


def fingerprint(*tensors: Tensor) -> str:
    """SHA-256 (first 16 hex digits) of tensors' bytes: identifies data and weights."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def model_fingerprint(model: nn.Module) -> str:
    return fingerprint(*[v for _, v in sorted(model.state_dict().items())])
