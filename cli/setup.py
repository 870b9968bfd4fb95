"""What every command does before it attacks: check the shared options, then turn them into
objects once — threads, torchrun ranks, device, model, data, their compatibility, the 8-bit
grid default, targets (:func:`prepare`). Anything that does not resolve is a
:class:`UserError` naming the option.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Dict, List, Optional, Tuple

import attrs
import torch
from torch import Tensor, nn

from attacks.data import DataFilesMissing, load_dataset
from attacks.grid import on_grid
from attacks.models import ImageClassifier, load_model
from attacks.runs import Ranks
from attacks.runs.runner import Inputs, Plan
from attacks.runs import distributed
from attacks.runtime import set_threads
from attacks.runs.provenance import environment, git_revision, now
from attacks.checks import check_logits
from attacks.spec import AttackSpec, SpecError
from attacks.targets import expand_targets
from attacks.errors import UserError
from cli.errors import one_line

TARGET_MODES = ("untargeted", "random", "all")
#: how many clean images the model is checked on before any attack (finite logits, classes)
CHECKED_IMAGES = 16


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
    """The model of ``--model``; whatever loading it raises (a user's factory may raise
    anything, or exit) is one line naming the option."""
    try:
        return load_model(name, device, weights=weights)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise UserError(f"--model {name}: {e}") from None
    except SystemExit as e:
        raise UserError(f"--model {name}: loading it exited (SystemExit {e.code!r}) instead of "
                        "returning a model") from None
    except Exception as e:  # a user's module or factory failed
        raise UserError(f"--model {name}: loading it raised {type(e).__name__}: {e}") from None


def resolve_data(name: str, n: Optional[int]) -> Tuple[Tensor, Tensor]:
    if n is not None and n <= 0:
        raise UserError(f"-n {n}: expected a positive number of images")
    try:
        return load_dataset(name, n)
    except DataFilesMissing as e:  # worded for the command line, which has no download option
        raise UserError(f"--data {name}: the standard files are not in {e.where}; give the "
                        "directory that holds them as --data DIR, or download them once "
                        f"(python -c \"from attacks.data import load_dataset; "
                        f"load_dataset('{name}', download=True)\"; docs/data.md)") from None
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
            logits = model(images[:CHECKED_IMAGES].to(device))
    except Exception as e:  # a user model that cannot take these images
        raise UserError(f"--model {model_name} fails on images of --data {data_name} "
                        f"{tuple(images.shape[1:])}: {e}") from None
    if not isinstance(logits, Tensor):
        raise UserError(f"--model {model_name} returned {type(logits).__name__}, expected a "
                        "tensor of logits")
    warning = check_logits(logits.detach().float().cpu(), f"--model {model_name}")
    if warning:
        sys.stderr.write(f"warning: {one_line(warning)}\n")
        # said once: the attacks' own check (attacks.classifier) would warn again
        warnings.filterwarnings("ignore", message="the model returns probabilities")
    k = logits.shape[1]
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


def check_counts(*, batch_size: Optional[int] = None, threads: Optional[int] = None,
                 figures: int = 0) -> None:
    """The numeric options every command shares."""
    if batch_size is not None and batch_size <= 0:
        raise UserError(f"--batch-size {batch_size}: expected a positive integer")
    if figures < 0:
        raise UserError(f"--figures {figures}: expected 0 or more")
    if threads is not None and threads < 0:
        raise UserError(f"--threads {threads}: expected 0 (torch's default) or more")


def fits(spec: AttackSpec, shape, label: str) -> None:
    """``spec`` builds on images of ``shape``; else a UserError naming the option."""
    try:
        spec.check_fits(shape)
    except SpecError as e:
        raise UserError(f"{label}: {e}") from None


def batch_size_for(given: Optional[int], default: int, ranks: Ranks) -> int:
    """``--batch-size``, or by default ``default`` divided by the number of torchrun ranks, so
    that every rank gets batches of a run that one process would attack in one (one process:
    ``default`` itself; independent of the number of examples, so an eval extended to more
    images keeps its batches)."""
    if given is not None:
        return given
    return max(1, default // ranks.world)


@attrs.frozen
class Prepared:
    """The resolved model, data and device of one invocation."""

    ranks: Ranks
    device: torch.device
    model: nn.Module
    images: Tensor
    labels: Tensor
    num_classes: int
    grid: bool

    def inputs(self, plan: Plan, options: Dict[str, Any]) -> Inputs:
        """The run layer's :class:`Inputs`, with this invocation's provenance entry."""
        entry = {"started": now(), "git": git_revision(), "device": describe_device(self.device),
                 "processes": self.ranks.world, "options": options}
        return Inputs(self.model, self.device, plan, self.grid, self.ranks, entry)

    def record(self, tool: str, plan: Plan, options: Dict[str, Any]) -> Dict[str, Any]:
        """The provenance every run of this invocation carries."""
        return {"tool": tool, "options": options, "argv": sys.argv,
                "device": describe_device(self.device), "processes": self.ranks.world,
                "examples": plan.size, "images": int(self.images.shape[0]), **environment()}


def prepare(*, model: str, weights: Optional[str], data: str, n: Optional[int], device: str,
            normalize: Optional[tuple] = None,
            threads: Optional[int], grid: Optional[bool]) -> Prepared:
    """Threads, ranks, device, model, data, their compatibility and the grid, once."""
    set_threads(threads)
    ranks = distributed.current()
    dev = resolve_device(distributed.rank_device(device, ranks))
    net = resolve_model(model, weights, dev)
    if normalize is not None:  # (x - mean) / std in front of the model, as normalize= does
        net = ImageClassifier(net, *normalize, input_shape=getattr(net, "input_shape", None),
                              num_classes=getattr(net, "num_classes", None),
                              class_names=getattr(net, "class_names", None)).to(dev)
    images, labels = resolve_data(data, n)
    num_classes = check_compatible(net, images, labels, model, data)
    if grid is None:  # on by default wherever the images are 8-bit (PNG-savable)
        grid = on_grid(images)
    elif grid and not on_grid(images):
        raise UserError(f"--grid needs 8-bit images (multiples of 1/255); --data {data} is not")
    return Prepared(ranks, dev, net, images, labels, num_classes, grid)


def attack_sets(sets: List[str], names: List[str]) -> List[List[str]]:
    """The ``--set`` overrides of each attack: ``KEY=VALUE`` applies to every attack,
    ``NAME:KEY=VALUE`` only to the attack given as NAME in --attacks."""
    per: List[List[str]] = [[] for _ in names]
    for item in sets:
        key = item.partition("=")[0]
        if ":" not in key:
            for p in per:
                p.append(item)
            continue
        who, _, rest = item.partition(":")
        if who.strip() not in names:
            raise UserError(f"--set {item}: no attack {who.strip()!r} in --attacks "
                            f"({', '.join(names)}); NAME:KEY=VALUE sets KEY of attack NAME only")
        for i, name in enumerate(names):
            if name == who.strip():
                per[i].append(rest)
    return per
