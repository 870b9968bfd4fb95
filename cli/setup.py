"""What every command does before it attacks: check the shared options, then turn them into
objects once — threads, torchrun ranks, device, model, data (:func:`prepare`), the checked
examples of the attack (:func:`checked_examples`) and the run's :class:`Job`. Anything that
does not resolve is a :class:`UserError` naming the option.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Dict, List, Optional, Tuple

import attrs
import torch
from torch import Tensor, nn

from attacks.api import Attack
from attacks.base import AttackBase, Examples
from attacks.baselines import BASELINES, baseline
from attacks.builtin import BUILTIN
from attacks.catalogue import LoadedSpec, example_specs, load_spec
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
from cli.options import RunOptions

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
                        f"load_dataset('{name}', download=True)\")") from None
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
    if any(abs(v) >= 2 ** 63 for v in values):  # beyond a class index tensor (int64)
        raise UserError(f"--targets: a class index of {max(len(str(v)) for v in values)} "
                        "digits; expected class indices of the model")
    return torch.tensor(values, dtype=torch.long)


def check_counts(run: RunOptions, figures: int = 0) -> None:
    """The numeric options every command shares that the record does not range-check."""
    if run.batch_size is not None and run.batch_size <= 0:
        raise UserError(f"--batch-size {run.batch_size}: expected a positive integer")
    if figures < 0:
        raise UserError(f"--figures {figures}: expected 0 or more")


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


def prepare(run: RunOptions, options: Dict[str, Any]) -> Prepared:
    """Threads, ranks, device, model, data and the grid option of ``run``, once; ``options``
    (every option of the command) go into each provenance record."""
    set_threads(run.threads)
    ranks = distributed.current()
    dev = resolve_device(distributed.rank_device(run.device, ranks))
    net = resolve_model(run.model, run.weights, dev)
    images, labels = resolve_data(run.data, run.n)
    if run.grid and not on_grid(images):
        raise UserError(f"--grid needs 8-bit images (multiples of 1/255); --data {run.data} is "
                        "not")
    context = {"options": options, "argv": sys.argv, "device": describe_device(dev),
               "processes": ranks.world}
    return Prepared(ranks, dev, net, run.normalize, images, labels, run.grid, run.model,
                    run.weights, run.data, run.n, context)


def split_list(text: str, option: str) -> List[str]:
    """A comma list of ``option``, refused when empty or with an empty entry."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise UserError(f"{option} {text!r}: expected a comma-separated list without empty "
                        "entries")
    return items


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


@attrs.frozen
class ChosenAttack:
    """One entry of ``--attacks``: its label (its folder and its name in tables), the entry
    as given, and its spec (``None``: a gradient baseline of that name)."""

    label: str
    given: str
    loaded: Optional[LoadedSpec] = None

    @property
    def spec(self) -> Optional[AttackSpec]:
        return None if self.loaded is None else self.loaded.spec

    @property
    def origin(self) -> str:
        """Where the attack comes from: ``builtin:NAME``, ``example:NAME``, the file read, or
        ``baseline:NAME``."""
        return f"baseline:{self.given}" if self.loaded is None else self.loaded.origin

    @property
    def from_file(self) -> bool:
        return self.loaded is not None and self.loaded.origin == str(self.loaded.path)

    def build(self, ready: Prepared, seed: int) -> AttackBase:
        """The attack on the invocation's model (with its --mean/--std and --grid)."""
        kw = dict(normalize=ready.normalize, seed=seed, grid=ready.grid)
        if self.loaded is None:
            return baseline(self.given, ready.net, **kw)
        return Attack(ready.net, self.loaded.spec, **kw)


def choose_attacks(text: str, sets: List[str], *, baselines: bool = False,
                   reserved: Tuple[str, ...] = ()) -> List[ChosenAttack]:
    """``--attacks`` (spec names, TOML files and, with ``baselines``, the gradient baselines)
    with their ``--set`` overrides (:func:`attack_sets`; a baseline takes none), labelled.

    A name is its own label; a file is labelled by its spec's name, or by its file name
    (``my.toml``: ``my``) where that spec name is a built-in's, a shipped example's, a
    baseline's or another entry's (an edited copy of ``strattack`` runs beside it). Two
    entries with one label, a hidden label or one of ``reserved`` (the files beside the
    attacks' folders) are refused."""
    names = split_list(text, "--attacks")
    scoped = {item.partition(":")[0].strip() for item in sets  # the NAMEs of NAME:KEY=VALUE
              if ":" in item.partition("=")[0]}
    chosen = []
    for name, own in zip(names, attack_sets(list(sets), names)):
        if baselines and name in BASELINES:
            if name in scoped:
                raise UserError(f"--set {name}:…: {name} is a gradient baseline without a spec; "
                                "--set applies to spec attacks only")
            chosen.append(ChosenAttack(name, name))
            continue
        loaded = load_spec(name, own)
        chosen.append(ChosenAttack(name, name, loaded))
    first = [c.spec.name if c.from_file else c.label for c in chosen]
    taken = set(BUILTIN) | set(example_specs()) | set(BASELINES)
    chosen = [attrs.evolve(c, label=re.sub(r"[^\w.+-]", "_", c.loaded.path.stem)
                           if label in taken or first.count(label) > 1 else label)
              if c.from_file else c for c, label in zip(chosen, first)]
    labels = [c.label for c in chosen]
    for c in chosen:
        if labels.count(c.label) > 1:
            given = [d.given for d in chosen if d.label == c.label]
            raise UserError(f"--attacks: {c.label} given twice" if len(set(given)) == 1 else
                            f"--attacks: {' and '.join(given)} would both be labelled "
                            f"{c.label!r}; rename one")
        if c.label.startswith(".") or c.label.casefold() in {r.casefold() for r in reserved}:
            raise UserError(f"--attacks {c.given}: its label {c.label!r} names a file of the "
                            f"run's own ({', '.join(reserved)}, hidden files); rename the "
                            "spec or the file")
    return chosen
