"""The ``admm-attack`` command line (Typer): solve, eval, explain, specs, models, datasets.

Every command is declared here, with one error wrapper (:func:`cli.errors.command`); the options
of every run-making command (model, data, out, threads...) are declared once in
:mod:`cli.options` and reach the commands as one :class:`~cli.options.RunOptions` record, the
options several commands share otherwise as the ``Annotated`` aliases below. The commands
import their modules (and so torch) only when they run: ``--help`` stays quick.
"""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from cli.errors import command
from cli.options import RunOptions, shared_options


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

# -- options of several commands (the run options: cli.options) --------------------------------
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
EXIT_CODES = ("Exit status: 0 done; 1 the attack failed (a model or factory raised: one line, "
              "--debug for the traceback); 2 a user error (one line naming the option); 130 "
              "interrupted (Ctrl-C or SIGTERM: run the same command again to resume).")
SOLVE_FILES = ("Writes to --out: metrics.csv (one row per example: index, source_index, label, "
               "target, success, the l0 l1 l2 linf distortions, groups_nonzero, "
               "groups_fraction, c, gradient_evals, refined, targeted, forward_evals, "
               "nonfinite), summary.json (ASR, mean distortions over the successes, counts, "
               "cost), adversarial.npz (examples, deltas, originals, labels, targets), png/ "
               "(each example as an 8-bit PNG; grid runs), figures/ (example figures), "
               "spec.toml (the resolved spec, runnable with --spec), provenance.json "
               "(options, versions, resume key, history), batches/ (finished batches, kept for "
               "resuming). Resuming: the same command again continues; a different run in "
               "--out is refused (use another --out, or --restart).")
Attacks = Annotated[str, typer.Option(
    "--attacks", "-a", metavar="LIST",
    help="Comma list of attacks: spec names (strattack, strattack-overlap, cw-l2, ead, linf, "
         "refined...; admm-attack specs list), shipped examples or TOML files (a file is "
         "labelled by its spec's name, or by its file name where that name is a built-in's "
         "or another entry's); eval also takes the gradient baselines fgm, ifgsm, fgm-l2, "
         "ifgsm-l2.")]


@app.command(epilog=f"{SOLVE_FILES} {EXIT_CODES}")
@command
@shared_options
def solve(
    run: RunOptions,
    spec: Annotated[str, typer.Option(
        "--spec", "-s", metavar="SPEC",
        help="Built-in name (strattack, cw-l2...; admm-attack specs list), shipped example "
             "(sparse-group-lasso...) or a TOML file (admm-attack specs show strattack > "
             "my.toml prints one to edit).")],
    sets: Sets = [], targets: Targets = "untargeted", figures: Figures = 4,
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
    summ = run_solve(run, spec=spec, sets=sets, targets=targets, figures=figures)
    if summ is not None:  # None: a torchrun rank other than 0 (rank 0 prints)
        from cli import listing
        listing.print_summary(summ, run.out)


@app.command("eval", epilog="Writes to --out: table.md (the paper's layout: one row per "
                            "attack, a column group per case), table.csv (one row per attack "
                            "and case), summary.json (every number of the tables, each "
                            "attack's cost and origin), provenance.json, and one solve-like "
                            "run directory per attack (resumed independently: adding an "
                            f"attack runs only the new one). {EXIT_CODES}")
@command
@shared_options
def eval_command(
    run: RunOptions,
    attacks: Attacks = "strattack,cw-l2,ead,ifgsm,fgm",
    sets: ScopedSets = [],
    cases: Annotated[str, typer.Option(
        metavar="LIST",
        help="Comma list of best, average, worst. best/worst attack every image towards all "
             "other classes; average alone attacks one seeded random target per image.")
    ] = "best,average,worst",
    rank_by: Annotated[str, typer.Option(
        metavar="NORM",
        help="The distortion that decides the easiest (best case) and hardest (worst case) "
             "target: l0, l1, l2 or linf.")] = "l2",
    figures: Figures = 0,
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
    summ = evaluate(run, attacks=attacks, sets=sets, cases=cases, rank_by=rank_by,
                    figures=figures)
    if summ is not None:
        from cli.listing import print_eval
        print_eval(summ, run.out)


@app.command("explain", epilog="Writes to --out: is_curve.csv (mean IS per map, attack and ν), "
                               "is_per_example.csv, is_curve.png, figures/ (overlays), "
                               "summary.json, provenance.json, and attacks/NAME/ (one solve "
                               f"run per attack, resumable). {EXIT_CODES}")
@command
@shared_options
def explain(
    run: RunOptions,
    attacks: Attacks = "strattack,cw-l2",
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
    targets: Annotated[str, typer.Option(
        metavar="TARGETS",
        help="random (one seeded class per image, shared by every attack), all, or class "
             "indices (one per image or one for all).")] = "random",
    figures: Annotated[int, typer.Option(
        metavar="N",
        help="How many example overlays to draw (examples every attack fooled first).")] = 4,
    figure_nu: Annotated[float, typer.Option(
        metavar="NU", help="The percentile ν of the B outlines in the example overlays.")] = 90.0,
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
    summ = run_explain(run, attacks=attacks, sets=sets, targets=targets, maps=maps, nus=nus,
                       figures=figures, figure_nu=figure_nu)
    if summ is not None:
        from cli.listing import written
        typer.echo(format_table(summ))
        typer.echo(written(run.out))


# -- listing -------------------------------------------------------------------------------------
@app.command()
@command
def models(long: Annotated[bool, typer.Option("--long", "-l", help="Full details.")] = False):
    """List the model zoo: name, input shape, classes, measured accuracy, weights.

    Example: admm-attack models, then admm-attack solve --model mnist-cw ...
    Your own models: --model net.pt2 (a torch.export program, recommended:
    torch.export.save(torch.export.export(net.eval(), (x,)), "net.pt2")),
    --model net.pt (TorchScript) or --model pkg.mod:factory --weights w.pt.
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
