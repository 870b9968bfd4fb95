"""The ``admm-attack`` command line (Typer): solve, specs, models, datasets.

The commands import their modules (and so torch) only when they run: ``--help`` stays quick.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from cli.errors import UserError, fail, one_line, user_errors

app = typer.Typer(
    name="admm-attack",
    help="Structured adversarial attacks (StrAttack, ICLR 2019) by batched linearised ADMM.\n\n"
         "Attacks are declarative specs (TOML): list them with `admm-attack specs list`, "
         "print one with `admm-attack specs show strattack > my.toml`, edit it and run it with "
         "`admm-attack solve --spec my.toml ...`.\n\n"
         "Example: admm-attack solve --spec strattack --model mnist-cw --data mnist-test20 "
         "-n 10 --targets random --out runs/str",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
specs_app = typer.Typer(
    help="List, print and check attack specs (TOML).\n\n"
         "Examples: `admm-attack specs list`; `admm-attack specs show strattack > my.toml`; "
         "`admm-attack specs show strattack --set search.steps=3`; "
         "`admm-attack specs check my.toml`",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(specs_app, name="specs")

SetOption = Annotated[List[str], typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override one spec value before validation, e.g. solver.rho=2, search.iterations=50, "
         "terms.groups.params.weight=3, refine=false (repeatable; values are TOML scalars).")]


@app.command(epilog="More: docs/cli.md. Outputs: metrics.csv, summary.json, adversarial.npz, "
                    "figures/, spec.toml, provenance.json, batches/.")
def solve(
    spec: Annotated[str, typer.Option(
        "--spec", "-s", help="Built-in name (strattack, cw-l2...), shipped example "
                             "(sparse-group-lasso...) or a TOML file.")],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Zoo name (mnist-cw, cifar10-cnn...), a TorchScript file, or "
                              "package.module:factory (with --weights).")],
    data: Annotated[str, typer.Option(
        "--data", "-d", help="Dataset name (mnist-test20, cifar10-test20, mnist-heldout...), "
                             "a dataset directory or an image folder.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Run directory; re-running into it resumes.")],
    sets: SetOption = [],
    weights: Annotated[Optional[str], typer.Option(
        help="State-dict file for a zoo model or a module:factory model.")] = None,
    n: Annotated[Optional[int], typer.Option(
        "-n", help="Attack only the first N images (default: all).")] = None,
    targets: Annotated[str, typer.Option(
        help="untargeted, random (one seeded class per image), all (every other class, the "
             "paper's protocol), or class indices: one per image or one for all, e.g. 3,7,1.")
    ] = "random",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(
        help="Examples per batch (the unit of progress and of resuming).")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the random targets (and torch).")] = 0,
    figures: Annotated[int, typer.Option(
        help="How many example figures to draw (successes first).")] = 4,
    grid: Annotated[Optional[bool], typer.Option(
        "--grid/--no-grid", help="Round the final examples to the 8-bit grid (multiples of "
                                 "1/255), re-verify them (failures to repair count as failed) "
                                 "and write them as PNG files. Default: on when the images are "
                                 "8-bit.")] = None,
    restart: Annotated[bool, typer.Option(
        "--restart", help="Discard a previous run in --out instead of resuming it.")] = False,
    threads: Annotated[int, typer.Option(
        help="CPU threads for torch (0: torch's default). 1 is often fastest on a busy "
             "machine.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Run an attack spec on a model and a dataset; write metrics, examples, figures and
    provenance to --out.

    Examples:

    * `admm-attack solve --spec strattack --model mnist-cw --data mnist-test20 -n 10 --out runs/str`

    * `admm-attack solve --spec my.toml --set search.iterations=50 --model mnist-cw --data mnist-heldout --targets all -n 5 --out runs/mine`

    * `admm-attack solve --spec sparse-group-lasso --model cifar10-cnn --data cifar10-test20 --targets untargeted --device cuda --out runs/sgl`

    Interrupted? Run the same command again: finished batches are kept.
    """
    from cli.solve import solve as run_solve
    try:
        summ = run_solve(spec=spec, sets=sets, model=model, weights=weights, data=data, n=n,
                         targets=targets, device=device, batch_size=batch_size, seed=seed,
                         out=out, figures=figures, restart=restart, threads=threads,
                         grid=grid, quiet=quiet)
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt as e:
        sys.stderr.write(f"interrupted: {one_line(str(e)) or 'stopped'}; run the same command "
                         "again to resume\n")
        raise typer.Exit(130)
    if summ is not None:  # None: a torchrun rank other than 0 (rank 0 prints)
        from cli import listing
        listing.print_summary(summ, out)


@app.command()
@user_errors
def models(long: Annotated[bool, typer.Option("--long", "-l", help="Full details.")] = False):
    """List the model zoo: name, input shape, classes, measured accuracy, weights.

    Example: `admm-attack models`, then `admm-attack solve --model mnist-cw ...`.
    Your own models: `--model net.pt` (TorchScript) or `--model pkg.mod:factory --weights w.pt`.
    """
    from cli import listing
    listing.print_models(long)


@app.command()
@user_errors
def datasets(long: Annotated[bool, typer.Option("--long", "-l", help="Full details.")] = False):
    """List the registered datasets: name, shape, classes, size, availability, source.

    Example: `admm-attack datasets`, then `admm-attack solve --data mnist-test20 ...`.
    A directory of MNIST/CIFAR-10 files or an image folder also works as --data.
    """
    from cli import listing
    listing.print_datasets(long)


@specs_app.command("list")
@user_errors
def specs_list():
    """List the built-in specs and the shipped example spec files.

    Example: `admm-attack specs list`
    """
    from cli import listing
    listing.print_specs()


@specs_app.command("show")
@user_errors
def specs_show(
    name: Annotated[str, typer.Argument(help="Built-in name, shipped example or TOML file.")],
    sets: SetOption = [],
    resolved: Annotated[bool, typer.Option(
        "--resolved", help="Print a file in the canonical layout instead of as written.")
    ] = False,
):
    """Print a spec as TOML (validated; --set overrides are applied).

    Examples:

    * `admm-attack specs show strattack > my.toml`

    * `admm-attack specs show strattack --set search.steps=3 --set eps=0.3`

    * `admm-attack specs show sparse-group-lasso`
    """
    from cli import listing
    sys.stdout.write(listing.show_spec(name, sets, resolved))


@specs_app.command("check")
@user_errors
def specs_check(
    files: Annotated[List[str], typer.Argument(help="Spec names or TOML files.")],
    sets: SetOption = [],
):
    """Validate spec files (exit 2 with the file and key on the first error).

    Example: `admm-attack specs check my.toml --set solver.rho=2`
    """
    from cli import listing
    for f in files:
        typer.echo(listing.check_spec(f, sets))


def main() -> None:
    """Console entry point (``python -m cli``)."""
    app(prog_name="admm-attack")


# Commands kept in their own modules register themselves on ``app`` when imported.
from cli import eval_command, explain_command  # noqa: E402,F401
