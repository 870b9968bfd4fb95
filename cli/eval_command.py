"""``admm-attack eval`` (the paper's evaluation protocol): registered on :data:`cli.main.app`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from cli.errors import UserError, fail, one_line
from cli.main import app


@app.command("eval", epilog="More: docs/cli.md. Outputs: table.md, table.csv, summary.json, "
                            "provenance.json, one solve-like run directory per attack.")
def eval_command(
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Zoo name (mnist-cw, cifar10-cnn...), a TorchScript file, or "
                              "package.module:factory (with --weights).")],
    data: Annotated[str, typer.Option(
        "--data", "-d", help="Dataset name (mnist-heldout, cifar10-test20...), a dataset "
                             "directory or an image folder.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Eval directory; re-running into it resumes every attack.")],
    attacks: Annotated[str, typer.Option(
        "--attacks", "-a", help="Comma list of spec names or TOML files (strattack, "
                                "strattack-overlap, cw-l2, ead, linf, refined...) and "
                                "gradient baselines (fgm, ifgsm, fgm-l2, ifgsm-l2).")
    ] = "strattack,cw-l2,ead,ifgsm,fgm",
    sets: Annotated[List[str], typer.Option(
        "--set", metavar="[NAME:]KEY=VALUE",
        help="Override one spec value of every spec attack, e.g. search.iterations=50, or of "
             "one attack with NAME: as given in --attacks, e.g. "
             "strattack:terms.groups.params.weight=1 (repeatable; values are TOML scalars; "
             "baselines take none).")] = [],
    weights: Annotated[Optional[str], typer.Option(
        help="State-dict file for a zoo model or a module:factory model.")] = None,
    n: Annotated[Optional[int], typer.Option(
        "-n", help="Evaluate only the first N images (default: all).")] = None,
    cases: Annotated[str, typer.Option(
        help="Comma list of best, average, worst. best/worst attack every image towards all "
             "other classes; average alone attacks one seeded random target per image.")
    ] = "best,average,worst",
    rank_by: Annotated[str, typer.Option(
        help="The distortion that decides the easiest (best case) and hardest (worst case) "
             "target: l0, l1, l2 or linf.")] = "l2",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(
        help="Examples per batch (the unit of progress and of resuming).")] = 45,
    seed: Annotated[int, typer.Option(help="Seed of the average case's targets.")] = 0,
    grid: Annotated[Optional[bool], typer.Option(
        "--grid/--no-grid", help="Measure the examples after rounding to the 8-bit grid "
                                 "(re-verified; see `solve --help`). Default: on when the "
                                 "images are 8-bit.")] = None,
    restart: Annotated[bool, typer.Option(
        "--restart", help="Discard previous results in --out instead of resuming.")] = False,
    threads: Annotated[int, typer.Option(
        help="CPU threads for torch (0: torch's default).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
):
    """Evaluate attacks by the paper's protocol (appendix F): targeted, each image against
    every other class; best case (easiest target), average case (one seeded random target),
    worst case (hardest target, counted only when every target succeeded); ASR and mean
    ℓ0, ℓ1, ℓ2, ℓ∞ per case and attack.

    Examples:

    * `admm-attack eval --model mnist-cw --data mnist-heldout -n 200 --out runs/table1-mnist`

    * `admm-attack eval --attacks strattack,strattack-overlap --cases average --model mnist-cw --data mnist-test20 --out runs/overlap`

    * `torchrun --standalone --nproc_per_node 2 -m cli eval ... --out runs/x` (each process attacks its share of the batches; same files as one process)

    Interrupted? Run the same command again: finished batches are kept.
    """
    from cli.eval import evaluate
    try:
        summ = evaluate(attacks=attacks, sets=sets, model=model, weights=weights, data=data,
                        n=n, cases=cases, rank_by=rank_by, device=device,
                        batch_size=batch_size, seed=seed, out=out, restart=restart,
                        quiet=quiet, threads=threads, grid=grid)
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt as e:
        sys.stderr.write(f"interrupted: {one_line(str(e)) or 'stopped'}; run the same command "
                         "again to resume\n")
        raise typer.Exit(130)
    if summ is not None:
        from cli.listing import print_eval
        print_eval(summ, out)
