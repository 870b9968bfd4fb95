"""The options ``solve``, ``eval`` and ``explain`` share, declared once: as command-line options
(:func:`shared_options` adds them to a command) and as one record, :class:`RunOptions`, that the
commands hand down. Light on purpose (no torch): ``--help`` imports this module.
"""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path
from typing import Annotated, Any, Dict, Optional, Tuple

import attrs
import typer

from attacks.errors import UserError
from attacks.limits import MAX_SEED, MAX_THREADS


def parse_normalization(mean: Optional[str], std: Optional[str]
                        ) -> Optional[Tuple[tuple, tuple]]:
    """``--mean``/``--std`` as ``(mean, std)`` tuples of floats (the missing one 0 or 1), or
    None for neither; a value that is not finite, or a std that is not positive, is refused."""
    if mean is None and std is None:
        return None
    return (_floats(mean, "--mean") if mean is not None else (0.0,),
            _floats(std, "--std") if std is not None else (1.0,))


def _floats(text: str, option: str) -> tuple:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"{option} {text!r}: expected a number or a comma list of numbers, one "
                        "per channel") from None
    if option == "--std" and not all(0 < v < math.inf for v in values):
        raise UserError(f"{option} {text!r}: expected positive finite numbers")
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"{option} {text!r}: expected finite numbers")
    return values


def out_dir(text: str) -> Path:
    """``--out`` as a path; an empty one (an unset shell variable) is refused."""
    if not text.strip():
        raise UserError(f"--out {text!r}: expected a directory path (an unset variable?)")
    return Path(text).expanduser()


def in_range(option: str, value: Optional[int], low: int, high: int, note: str = "") -> None:
    """An integer option within [low, high], else one line naming it and the range."""
    if value is not None and not low <= value <= high:
        raise UserError(f"{option} {value}: expected an integer from {low} to {high}{note}")


@attrs.frozen
class RunOptions:
    """What a run-making command was asked, parsed and range-checked (:meth:`parse`)."""

    model: str
    data: str
    out: Path
    weights: Optional[str] = None
    normalize: Optional[tuple] = None   # (mean, std) of --mean/--std
    n: Optional[int] = None
    device: str = "auto"
    batch_size: Optional[int] = None
    seed: int = 0
    grid: Optional[bool] = None
    restart: bool = False
    threads: Optional[int] = None
    quiet: bool = False
    debug: bool = False

    @classmethod
    def parse(cls, *, mean: Optional[str] = None, std: Optional[str] = None, out: str,
              **given: Any) -> "RunOptions":
        """The record of the options as typed (``mean``/``std`` and ``out`` as text)."""
        run = cls(normalize=parse_normalization(mean, std), out=out_dir(out), **given)
        in_range("--threads", run.threads, 0, MAX_THREADS,
                 " (0: torch's default, one per core)")
        in_range("--seed", run.seed, 0, MAX_SEED)
        return run

    def recorded(self) -> Dict[str, Any]:
        """The options as the provenance records them (``out`` as text; ``debug`` left out:
        it changes nothing written)."""
        return {**attrs.asdict(self, filter=lambda a, _: a.name != "debug"),
                "out": str(self.out)}


# -- the shared options as the command line declares them -----------------------------------------
def _shared(
    *,
    model: Annotated[str, typer.Option(
        "--model", "-m", metavar="MODEL",
        help="Zoo name (mnist-cw, cifar10-cnn...; admm-attack models), a torch.export "
             "program (.pt2, recommended: torch.export.save(torch.export.export(net, "
             "(x,)), 'net.pt2')), a TorchScript file, or package.module:factory (with "
             "--weights).")],
    data: Annotated[str, typer.Option(
        "--data", "-d", metavar="DATA",
        help="Dataset name (mnist-test20, cifar10-test20, mnist-heldout...; admm-attack "
             "datasets), a directory of MNIST IDX / CIFAR-10 binary files, or an image folder "
             "(one sub-folder of images per class, or images with a labels.csv).")],
    out: Annotated[str, typer.Option(
        "--out", "-o", metavar="DIR",
        help="Run directory (new, empty, or one of this command's own runs: re-running into "
             "it resumes).")],
    weights: Annotated[Optional[str], typer.Option(
        metavar="FILE",
        help="State-dict file for a zoo model or a module:factory model.")] = None,
    mean: Annotated[Optional[str], typer.Option(
        metavar="M[,M...]",
        help="The model expects normalised inputs (x - mean) / std: the per-channel mean (one "
             "value, or one per channel), as normalize=(mean, std) in Python. Images stay in "
             "[0, 1]; a model taking [0, 255] pixels is --mean 0 --std "
             "0.00392156862745098.", show_default=False)] = None,
    std: Annotated[Optional[str], typer.Option(
        metavar="S[,S...]",
        help="The per-channel std of --mean (default 1 when --mean is given).",
        show_default=False)] = None,
    n: Annotated[Optional[int], typer.Option(
        "-n", "--num-images", metavar="N",
        help="Use only the first N images (default: all).")] = None,
    device: Annotated[str, typer.Option(
        metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[Optional[int], typer.Option(
        metavar="N",
        help="Examples per batch, the unit of progress and of resuming (default: the "
             "command's, lowered so that every torchrun rank gets a batch).",
        show_default=False)] = None,
    seed: Annotated[int, typer.Option(
        metavar="N",
        help=f"Seed of the random targets (and torch), 0 to {MAX_SEED}.")] = 0,
    grid: Annotated[Optional[bool], typer.Option(
        "--grid/--no-grid",
        help="Round the final examples to the 8-bit grid (multiples of 1/255), re-verify "
             "them (failures to repair count as failed) and write them as PNG files. "
             "Default: on when the images are 8-bit.", show_default=False)] = None,
    restart: Annotated[bool, typer.Option(
        "--restart",
        help="Discard the files of a previous run in --out instead of resuming it.")] = False,
    threads: Annotated[Optional[int], typer.Option(
        metavar="N",
        help=f"CPU threads for torch, 0 to {MAX_THREADS}. Default: 1 (or OMP_NUM_THREADS "
             "when set), never slow on a busy machine; 0: torch's own default, one per "
             "core.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the traceback of an unexpected error (a model or a factory "
                        "that raises) instead of one line.")] = False,
):
    """The template of the shared options (never called)."""


def shared_options(fn):
    """``fn(run: RunOptions, **own)`` as a command taking its own options and the shared ones
    (``--model``, ``--data`` and ``--out`` first, the rest after ``fn``'s own)."""
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values()
           if p.name != "run"]
    shared = list(inspect.signature(_shared, eval_str=True).parameters.values())
    names = [p.name for p in shared]
    params = shared[:3] + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] \
        + shared[3:]

    @functools.wraps(fn)
    def command(**given):
        run = RunOptions.parse(**{k: given.pop(k) for k in names})
        return fn(run, **given)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command
