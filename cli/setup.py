"""What every command does before it attacks: check the shared options, then turn them into
objects once — threads, torchrun ranks, device, model, data (:func:`prepare`), the checked
examples of the attack (:func:`checked_examples`) and the run's :class:`Job`. Anything that
does not resolve is a :class:`UserError` naming the option.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Tuple

import attrs
import torch
from torch import Tensor, nn

from attacks.base import AttackBase, Examples
from attacks.checks import ModelOutputError
from attacks.classifier import InputError
from attacks.data import DataFilesMissing, load_dataset
from attacks.errors import UserError
from attacks.grid import on_grid
from attacks.models import load_model
from attacks.runs import Ranks, distributed
from attacks.runs.job import Job
from attacks.runtime import set_threads
from attacks.spec import AttackSpec, SpecError
from attacks.targets import TargetChoice
from cli.errors import one_line

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


def checked_examples(ready: "Prepared", attack: AttackBase, choice: TargetChoice,
                     targets: str) -> Examples:
    """The one model/input check and the targets expanded once (``attack.examples``), its
    errors worded for the options: a model that does not fit the data names ``--model`` and
    ``--data``, bad targets ``--targets``; a warning is one line on stderr."""
    warn = lambda text: sys.stderr.write(f"warning: {one_line(text)}\n")
    try:
        return attack.examples(ready.images, ready.labels, choice, on_warning=warn)
    except (InputError, ModelOutputError) as e:
        raise UserError(f"--model {ready.model_name} on --data {ready.data_name}: {e}") \
            from None
    except ValueError as e:
        raise UserError(f"--targets {targets}: {e}") from None


def parse_targets(text: str, labels: Tensor) -> TargetChoice:
    """``--targets untargeted|random|all|<ints>`` as the attacks take it: a mode, or one class
    per image (a comma list of one per image, or a single class for every image)."""
    text = text.strip()
    if text in TARGET_MODES:
        return text
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
    return torch.tensor(values, dtype=torch.long)


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


def batch_size_for(given: Optional[int], default: int) -> int:
    """``--batch-size``, else ``default``: the same on any number of torchrun ranks (an
    example's result depends on the batch it shares, so the batches must not) and independent
    of the number of examples (an eval extended to more images keeps its batches)."""
    return default if given is None else given


@attrs.frozen
class Prepared:
    """The resolved model, data and device of one invocation, and its provenance context."""

    ranks: Ranks
    device: torch.device
    net: nn.Module             # the model as loaded (normalize= is the attacks')
    normalize: Optional[tuple]
    images: Tensor
    labels: Tensor
    grid: Optional[bool]       # --grid as given (checked against the images)
    model_name: str
    weights: Optional[str]
    data_name: str
    n: Optional[int]
    context: Dict[str, Any]    # options, argv, device, processes: in every provenance record

    def identity(self, targets: str) -> Dict[str, Any]:
        """The options that name what a solve-like run attacks (part of its resume key)."""
        return dict(model=self.model_name, weights=self.weights, data=self.data_name, n=self.n,
                    targets=targets)

    def job(self, attack: AttackBase, examples: Examples, batch_size: int, tool: str,
            identity: Dict[str, Any], **kw) -> Job:
        """The run of ``attack`` on ``examples`` (see :meth:`Job.create`)."""
        return Job.create(attack, examples, batch_size=batch_size, tool=tool,
                          identity=identity, context=self.context, ranks=self.ranks, **kw)


def prepare(*, model: str, weights: Optional[str], data: str, n: Optional[int], device: str,
            normalize: Optional[tuple] = None, threads: Optional[int], grid: Optional[bool],
            options: Dict[str, Any]) -> Prepared:
    """Threads, ranks, device, model, data and the grid option, once."""
    set_threads(threads)
    ranks = distributed.current()
    dev = resolve_device(distributed.rank_device(device, ranks))
    net = resolve_model(model, weights, dev)
    images, labels = resolve_data(data, n)
    if grid and not on_grid(images):
        raise UserError(f"--grid needs 8-bit images (multiples of 1/255); --data {data} is not")
    context = {"options": options, "argv": sys.argv, "device": describe_device(dev),
               "processes": ranks.world}
    return Prepared(ranks, dev, net, normalize, images, labels, grid, model, weights, data, n,
                    context)


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
