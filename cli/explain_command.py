"""``admm-attack explain`` (interpretability maps and scores): registered on :data:`cli.main.app`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from cli.errors import UserError, fail, one_line
from cli.main import app


@app.command("explain", epilog="More: docs/interpretability.md. Outputs: is_curve.csv, "
                               "is_per_example.csv, is_curve.png, figures/, summary.json, "
                               "provenance.json, attacks/NAME/ (one solve run per attack).")
def explain(
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Zoo name (mnist-cw, mnist-gap, cifar10-cnn...), a TorchScript "
                              "file, or package.module:factory (with --weights).")],
    data: Annotated[str, typer.Option(
        "--data", "-d", help="Dataset name (mnist-test20, cifar10-test20, mnist-heldout...), "
                             "a dataset directory or an image folder.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output directory; re-running into it resumes the attacks.")],
    attacks: Annotated[str, typer.Option(
        "--attacks", "-a", help="Attacks to compare, comma-separated: built-in names, shipped "
                                "examples or TOML files.")] = "strattack,cw-l2",
    sets: Annotated[List[str], typer.Option(
        "--set", metavar="[NAME:]KEY=VALUE",
        help="Override one spec value of every attack, e.g. search.iterations=50, or of one "
             "attack with NAME: as given in --attacks, e.g. strattack:refine.iterations=100 "
             "(repeatable; values are TOML scalars).")] = [],
    maps: Annotated[str, typer.Option(
        help="Maps B is cut from, comma-separated: asm, cam-true, cam-target (GAP models "
             "only), gradcam-true, gradcam-target; cam and gradcam stand for both labels; "
             "auto: asm, CAM where the model has a GAP head, Grad-CAM where it has a conv "
             "layer.")] = "auto",
    nus: Annotated[str, typer.Option(
        "--nus", help="Percentiles ν of the map used as thresholds (B = map > its ν-th "
                     "percentile), comma-separated.")] = "30,40,50,60,70,80,90",
    weights: Annotated[Optional[str], typer.Option(
        help="State-dict file for a zoo model or a module:factory model.")] = None,
    n: Annotated[Optional[int], typer.Option(
        "-n", help="Use only the first N images (default: all).")] = None,
    targets: Annotated[str, typer.Option(
        help="random (one seeded class per image, shared by every attack), all, or class "
             "indices (one per image or one for all).")] = "random",
    figures: Annotated[int, typer.Option(
        help="How many example overlays to draw (examples every attack fooled first).")] = 4,
    figure_nu: Annotated[float, typer.Option(
        help="The percentile ν of the B outlines in the example overlays.")] = 90.0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(
        help="Examples per batch (attacks and maps).")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the random targets (and torch).")] = 0,
    grid: Annotated[Optional[bool], typer.Option(
        "--grid/--no-grid", help="Round the attacks' examples to the 8-bit grid, as solve "
                                 "does (default: on for 8-bit images).")] = None,
    restart: Annotated[bool, typer.Option(
        "--restart", help="Discard the attacks' previous runs in --out instead of resuming "
                          "them.")] = False,
    threads: Annotated[int, typer.Option(
        help="CPU threads for torch (0: torch's default). 1 is often fastest on a busy "
             "machine.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
):
    """Interpretability: compare where attacks put their perturbation (paper section 6).

    Runs every attack on the same images and targets, then measures the interpretability
    score IS = ||B∘δ||₂/||δ||₂ (eq. 23) against the percentile ν of the adversarial saliency
    map (ASM), the class activation map (CAM, GAP models) and Grad-CAM; writes the curves
    (CSV, PNG), per-example scores, overlays and a summary.

    Examples:

    * `admm-attack explain --model mnist-cw --data mnist-test20 -n 20 --out runs/explain`

    * `admm-attack explain --model mnist-gap --data mnist-test20 --maps cam,asm --out runs/gap`

    * `admm-attack explain --attacks strattack,cw-l2,ead --set search.steps=4 --model cifar10-cnn --data cifar10-test20 -n 10 --out runs/cifar`

    Each attack is a `solve` run under OUT/attacks/NAME: an interrupted run resumes.
    """
    from cli.explain import explain as run_explain, format_table
    try:
        summ = run_explain(attacks=attacks, sets=sets, model=model, weights=weights, data=data,
                           n=n, targets=targets, maps=maps, nus=nus, figures=figures,
                           figure_nu=figure_nu, device=device, batch_size=batch_size,
                           seed=seed, out=out, restart=restart, quiet=quiet, threads=threads,
                           grid=grid)
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt as e:
        sys.stderr.write(f"interrupted: {one_line(str(e)) or 'stopped'}; run the same command "
                         "again to resume\n")
        raise typer.Exit(130)
    if summ is not None:
        typer.echo(format_table(summ))
        typer.echo(f"wrote {out}/is_curve.csv, is_per_example.csv, is_curve.png, figures/, "
                   "summary.json, provenance.json")
