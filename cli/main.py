"""The ``admm-attack`` command line (Typer): solve, eval, explain, specs, models, datasets.

Every command is declared here, with the options they share declared once (the ``Annotated``
aliases below) and one error wrapper (:func:`cli.errors.command`). The commands import their
modules (and so torch) only when they run: ``--help`` stays quick.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from cli.errors import UserError, command


def normalization(mean: Optional[str], std: Optional[str]):
    """``--mean``/``--std`` as ``(mean, std)`` tuples of floats, or None for neither."""
    if mean is None and std is None:
        return None
    parse = lambda text, option: tuple(_floats(text, option)) if text is not None else (0.0,)
    return parse(mean, "--mean"), parse(std, "--std") if std is not None else (1.0,)


def _floats(text: str, option: str):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected a number or a comma list of numbers, one "
                        "per channel") from None
    if option == "--std" and any(not v > 0 for v in values):
        raise UserError(f"{option} {text!r}: expected positive numbers")
    return values


def out_dir(text: str) -> Path:
    """``--out`` as a path; an empty one (an unset shell variable) is refused."""
    if not text.strip():
        raise UserError(f"--out {text!r}: expected a directory path (an unset variable?)")
    return Path(text).expanduser()

app = typer.Typer(
    name="admm-attack",
    help="Structured adversarial attacks (StrAttack, ICLR 2019) by batched linearised ADMM.\n\n"
         "Attacks are declarative specs (TOML): list them with admm-attack specs list, "
         "print one with admm-attack specs show strattack > my.toml, edit it and run it with "
         "admm-attack solve --spec my.toml ....\n\n"
         "Example: admm-attack solve --spec strattack --model mnist-cw --data mnist-test20 "
         "-n 10 --targets random --out runs/str",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
specs_app = typer.Typer(
    help="List, print and check attack specs (TOML).\n\n"
         "Examples: admm-attack specs list; admm-attack specs show strattack > my.toml; "
         "admm-attack specs show strattack --set search.budget=300; "
         "admm-attack specs check my.toml",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(specs_app, name="specs")

# -- options shared by the commands -------------------------------------------------------------
Model = Annotated[str, typer.Option(
    "--model", "-m", metavar="MODEL",
    help="Zoo name (mnist-cw, cifar10-cnn...), a TorchScript file, or "
         "package.module:factory (with --weights).")]
Data = Annotated[str, typer.Option(
    "--data", "-d", metavar="DATA",
    help="Dataset name (mnist-test20, cifar10-test20, mnist-heldout...), a "
         "dataset directory or an image folder.")]
Out = Annotated[str, typer.Option(
    "--out", "-o", metavar="DIR",
    help="Run directory (new, empty, or one of this command's own runs: "
         "re-running into it resumes).")]
Weights = Annotated[Optional[str], typer.Option(
    metavar="FILE", help="State-dict file for a zoo model or a module:factory model.")]
Count = Annotated[Optional[int], typer.Option(
    "-n", "--num-images", metavar="N", help="Use only the first N images (default: all).")]
Mean = Annotated[Optional[str], typer.Option(
    metavar="M[,M...]",
    help="The model expects normalised inputs (x - mean) / std: the per-channel mean (one "
         "value, or one per channel), as normalize=(mean, std) in Python. Images stay in "
         "[0, 1]; a model taking [0, 255] pixels is --mean 0 --std 0.00392156862745098.",
    show_default=False)]
Std = Annotated[Optional[str], typer.Option(
    metavar="S[,S...]", help="The per-channel std of --mean (default 1 when --mean is given).",
    show_default=False)]
Device = Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")]
BatchSize = Annotated[Optional[int], typer.Option(
    metavar="N",
    help="Examples per batch, the unit of progress and of resuming (default: the command's, "
         "lowered so that every torchrun rank gets a batch).", show_default=False)]
Seed = Annotated[int, typer.Option(metavar="N", help="Seed of the random targets (and torch).")]
Grid = Annotated[Optional[bool], typer.Option(
    "--grid/--no-grid", help="Round the final examples to the 8-bit grid (multiples of 1/255), "
                             "re-verify them (failures to repair count as failed) and write "
                             "them as PNG files. Default: on when the images are 8-bit.",
    show_default=False)]
Restart = Annotated[bool, typer.Option(
    "--restart", help="Discard the files of a previous run in --out instead of resuming it.")]
Threads = Annotated[Optional[int], typer.Option(
    metavar="N", help="CPU threads for torch. Default: 1 (or OMP_NUM_THREADS when set), "
                      "never slow on a busy machine; 0: torch's own default, one per core.",
    show_default=False)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Targets = Annotated[str, typer.Option(
    metavar="TARGETS",
    help="untargeted, random (one seeded class per image), all (every other class, the "
         "paper's protocol), or class indices: one per image or one for all, e.g. 3,7,1.")]
Figures = Annotated[int, typer.Option(
    metavar="N", help="How many example figures to draw (successes first).")]
Sets = Annotated[List[str], typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override one spec value before validation, e.g. solver.rho=2, search.iterations=50, "
         "terms.groups.params.weight=3, refine=false (repeatable; values are TOML scalars).")]
ScopedSets = Annotated[List[str], typer.Option(
    "--set", metavar="[NAME:]KEY=VALUE",
    help="Override one spec value of every spec attack, e.g. search.iterations=50, or of one "
         "attack with NAME: as given in --attacks, e.g. strattack:refine.iterations=100 "
         "(repeatable; values are TOML scalars; baselines take none).")]


# -- attacking -----------------------------------------------------------------------------------
@app.command(epilog="More: docs/cli.md in the source repository. Outputs: metrics.csv, "
                    "summary.json, adversarial.npz, "
                    "figures/, png/ (8-bit grid runs), spec.toml, provenance.json, batches/.")
@command
def solve(
    spec: Annotated[str, typer.Option(
        "--spec", "-s", metavar="SPEC", help="Built-in name (strattack, cw-l2...), shipped example "
                                             "(sparse-group-lasso...) or a TOML file.")],
    model: Model, data: Data, out: Out, sets: Sets = [], weights: Weights = None,
    mean: Mean = None, std: Std = None, n: Count = None, targets: Targets = "untargeted",
    device: Device = "auto",
    batch_size: BatchSize = None, seed: Seed = 0, figures: Figures = 4, grid: Grid = None,
    restart: Restart = False, threads: Threads = None, quiet: Quiet = False,
):
    """Run an attack spec on a model and a dataset; write metrics, examples, figures and
    provenance to --out.

    Examples:

    \b
      admm-attack solve --spec strattack --model mnist-cw --data mnist-test20 \\
          -n 10 --out runs/str
      admm-attack solve --spec my.toml --set search.iterations=50 \\
          --model mnist-cw --data mnist-heldout --targets all -n 5 --out runs/mine
      admm-attack solve --spec sparse-group-lasso --model cifar10-cnn \\
          --data cifar10-test20 --targets untargeted --device cuda --out runs/sgl

    Interrupted? Run the same command again: finished batches are kept.
    Default batch size 16.
    """
    from cli.solve import solve as run_solve
    summ = run_solve(spec=spec, sets=sets, model=model, weights=weights,
                     normalize=normalization(mean, std), data=data, n=n,
                     targets=targets, device=device, batch_size=batch_size, seed=seed,
                     out=out_dir(out), figures=figures, restart=restart, threads=threads,
                     grid=grid, quiet=quiet)
    if summ is not None:  # None: a torchrun rank other than 0 (rank 0 prints)
        from cli import listing
        listing.print_summary(summ, out)


@app.command("eval", epilog="More: docs/cli.md in the source repository. Outputs: table.md, "
                            "table.csv, summary.json, "
                            "provenance.json, one solve-like run directory per attack.")
@command
def eval_command(
    model: Model, data: Data, out: Out,
    attacks: Annotated[str, typer.Option(
        "--attacks", "-a", metavar="LIST",
        help="Comma list of spec names or TOML files (strattack, "
             "strattack-overlap, cw-l2, ead, linf, refined...) and "
             "gradient baselines (fgm, ifgsm, fgm-l2, ifgsm-l2).")
    ] = "strattack,cw-l2,ead,ifgsm,fgm",
    sets: ScopedSets = [], weights: Weights = None, mean: Mean = None, std: Std = None,
    n: Count = None,
    cases: Annotated[str, typer.Option(
        metavar="LIST",
        help="Comma list of best, average, worst. best/worst attack every image towards all "
             "other classes; average alone attacks one seeded random target per image.")
    ] = "best,average,worst",
    rank_by: Annotated[str, typer.Option(
        metavar="NORM",
        help="The distortion that decides the easiest (best case) and hardest (worst case) "
             "target: l0, l1, l2 or linf.")] = "l2",
    device: Device = "auto", batch_size: BatchSize = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the average case's targets.")] = 0,
    figures: Figures = 0, grid: Grid = None, restart: Restart = False, threads: Threads = None,
    quiet: Quiet = False,
):
    """Evaluate attacks by the paper's protocol (appendix F): targeted, each image against
    every other class; best case (easiest target), average case (one seeded random target),
    worst case (hardest target, counted only when every target succeeded); ASR and mean
    ℓ0, ℓ1, ℓ2, ℓ∞ per case and attack.

    Examples:

    \b
      admm-attack eval --model mnist-cw --data mnist-heldout -n 200 \\
          --out runs/table1-mnist
      admm-attack eval --attacks strattack,strattack-overlap --cases average \\
          --model mnist-cw --data mnist-test20 --out runs/overlap
      torchrun --standalone --nproc_per_node 2 -m cli eval ... --out runs/x

    Under torchrun each process attacks its share of the batches; the files are
    those of one process. Interrupted? Run the same command again: finished
    batches are kept. Default batch size 45.
    """
    from cli.eval import evaluate
    summ = evaluate(attacks=attacks, sets=sets, model=model, weights=weights,
                    normalize=normalization(mean, std), data=data, n=n,
                    cases=cases, rank_by=rank_by, device=device, batch_size=batch_size,
                    seed=seed, out=out_dir(out), restart=restart, quiet=quiet,
                    threads=threads, grid=grid, figures=figures)
    if summ is not None:
        from cli.listing import print_eval
        print_eval(summ, out)


@app.command("explain", epilog="More: docs/interpretability.md in the source repository. "
                               "Outputs: is_curve.csv, "
                               "is_per_example.csv, is_curve.png, figures/, summary.json, "
                               "provenance.json, attacks/NAME/ (one solve run per attack).")
@command
def explain(
    model: Model, data: Data, out: Out,
    attacks: Annotated[str, typer.Option(
        "--attacks", "-a", metavar="LIST",
        help="Attacks to compare, comma-separated: built-in names, shipped "
             "examples or TOML files.")] = "strattack,cw-l2",
    sets: ScopedSets = [],
    maps: Annotated[str, typer.Option(
        metavar="LIST",
        help="Maps B is cut from, comma-separated: asm, cam-true, cam-target (GAP models "
             "only), gradcam-true, gradcam-target; cam and gradcam stand for both labels; "
             "auto: asm, CAM where the model has a GAP head, Grad-CAM where it has a conv "
             "layer.")] = "auto",
    nus: Annotated[str, typer.Option(
        "--nus", metavar="LIST",
        help="Percentiles ν of the map used as thresholds (B = map > its ν-th "
             "percentile), comma-separated.")] = "30,40,50,60,70,80,90",
    weights: Weights = None, mean: Mean = None, std: Std = None, n: Count = None,
    targets: Annotated[str, typer.Option(
        metavar="TARGETS",
        help="random (one seeded class per image, shared by every attack), all, or class "
             "indices (one per image or one for all).")] = "random",
    figures: Annotated[int, typer.Option(
        metavar="N",
        help="How many example overlays to draw (examples every attack fooled first).")] = 4,
    figure_nu: Annotated[float, typer.Option(
        metavar="NU", help="The percentile ν of the B outlines in the example overlays.")] = 90.0,
    device: Device = "auto", batch_size: BatchSize = None, seed: Seed = 0, grid: Grid = None,
    restart: Restart = False, threads: Threads = None, quiet: Quiet = False,
):
    """Interpretability: compare where attacks put their perturbation (paper section 6).

    Runs every attack on the same images and targets, then measures the interpretability
    score IS = ||B∘δ||₂/||δ||₂ (eq. 23) against the percentile ν of the adversarial saliency
    map (ASM), the class activation map (CAM, GAP models) and Grad-CAM; writes the curves
    (CSV, PNG), per-example scores, overlays and a summary.

    Examples:

    \b
      admm-attack explain --model mnist-cw --data mnist-test20 -n 20 \\
          --out runs/explain
      admm-attack explain --model mnist-gap --data mnist-test20 --maps cam,asm \\
          --out runs/gap
      admm-attack explain --attacks strattack,cw-l2,ead --set search.budget=300 \\
          --model cifar10-cnn --data cifar10-test20 -n 10 --out runs/cifar

    Each attack is a solve run under OUT/attacks/NAME: an interrupted run
    resumes. Default batch size 16 (attacks and maps).
    """
    from cli.explain import explain as run_explain, format_table
    summ = run_explain(attacks=attacks, sets=sets, model=model, weights=weights,
                       normalize=normalization(mean, std), data=data,
                       n=n, targets=targets, maps=maps, nus=nus, figures=figures,
                       figure_nu=figure_nu, device=device, batch_size=batch_size, seed=seed,
                       out=out_dir(out), restart=restart, quiet=quiet, threads=threads,
                       grid=grid)
    if summ is not None:
        typer.echo(format_table(summ))
        typer.echo(f"wrote {out}/is_curve.csv, is_per_example.csv, is_curve.png, figures/, "
                   "summary.json, provenance.json")


# -- listing -------------------------------------------------------------------------------------
@app.command()
@command
def models(long: Annotated[bool, typer.Option("--long", "-l", help="Full details.")] = False):
    """List the model zoo: name, input shape, classes, measured accuracy, weights.

    Example: admm-attack models, then admm-attack solve --model mnist-cw ...
    Your own models: --model net.pt (TorchScript) or
    --model pkg.mod:factory --weights w.pt.
    """
    from cli import listing
    listing.print_models(long)


@app.command()
@command
def datasets(long: Annotated[bool, typer.Option("--long", "-l", help="Full details.")] = False):
    """List the registered datasets: name, shape, classes, size, availability, source.

    Example: admm-attack datasets, then admm-attack solve --data mnist-test20 ...
    A directory of MNIST/CIFAR-10 files or an image folder also works as --data.
    """
    from cli import listing
    listing.print_datasets(long)


@specs_app.command("list")
@command
def specs_list():
    """List the built-in specs and the shipped example spec files.

    Example: admm-attack specs list
    """
    from cli import listing
    listing.print_specs()


@specs_app.command("show")
@command
def specs_show(
    name: Annotated[str, typer.Argument(help="Built-in name, shipped example or TOML file.")],
    sets: Sets = [],
    resolved: Annotated[bool, typer.Option(
        "--resolved", help="Print a file in the canonical layout instead of as written.")
    ] = False,
):
    """Print a spec as TOML (validated; --set overrides are applied).

    Examples:

    \b
      admm-attack specs show strattack > my.toml
      admm-attack specs show strattack --set search.budget=300 --set eps=0.3
      admm-attack specs show sparse-group-lasso
    """
    from cli import listing
    sys.stdout.write(listing.show_spec(name, sets, resolved))


@specs_app.command("check")
@command
def specs_check(
    files: Annotated[List[str], typer.Argument(help="Spec names or TOML files.")],
    sets: Sets = [],
):
    """Validate spec files (exit 2 with the file and key on the first error).

    Example: admm-attack specs check my.toml --set solver.rho=2
    """
    from cli import listing
    for f in files:
        typer.echo(listing.check_spec(f, sets))


def main() -> None:
    """Console entry point (``python -m cli``)."""
    app(prog_name="admm-attack")
