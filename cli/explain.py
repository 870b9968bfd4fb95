"""``admm-attack explain``: run several attacks on the same examples (each a resumable
``solve`` run under ``OUT/attacks/NAME``), then compare where their perturbations lie through
the interpretability maps (ASM, CAM, Grad-CAM) and the score IS (eq. 23).

Layout of ``--out DIR``::

    attacks/NAME/        one ``solve`` run directory per attack (resumes like solve)
    is_curve.csv  is_per_example.csv  is_curve.png  figures/example-NNNN.png  summary.json
    provenance.json      options, attacks (resolved specs), maps, versions, timings
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from attacks.interpret.report import Comparison, map_settings, write_report
from attacks.interpret.score import MAPS
from attacks.runs.provenance import now, run_record, stopped
from attacks.store import PROVENANCE, RunDir
from cli.errors import UserError
from cli.options import RunOptions
from cli.setup import (batch_size_for, check_counts, checked_examples, choose_attacks, fits,
                       parse_targets, prepare, split_list)
from cli.solve import DEFAULT_BATCH_SIZE, run_spec

ALIASES = {"cam": ("cam-true", "cam-target"), "gradcam": ("gradcam-true", "gradcam-target")}
MAP_CHOICES = ("auto",) + MAPS + tuple(ALIASES)


def parse_nus(text: str) -> List[float]:
    """``--nus 30,40,...``: percentiles in [0, 100], sorted, without repeats."""
    values = []
    for item in split_list(text, "--nus"):
        try:
            v = float(item)
        except ValueError:
            raise UserError(f"--nus {text!r}: {item!r} is not a number; expected percentiles "
                            "in [0, 100], e.g. 30,40,50,60,70,80,90") from None
        if not 0 <= v <= 100:
            raise UserError(f"--nus {text!r}: {item} is outside [0, 100]")
        values.append(v)
    return sorted(set(values))


def parse_maps(text: str) -> List[str]:
    """``--maps``: ``auto`` or names among :data:`MAP_CHOICES` (aliases expanded)."""
    out: List[str] = []
    for item in split_list(text, "--maps"):
        if item not in MAP_CHOICES:
            raise UserError(f"--maps {text!r}: unknown map {item!r}; expected auto or a comma "
                            f"list of {', '.join(MAPS + tuple(ALIASES))}")
        for m in ALIASES.get(item, (item,)):
            if m not in out:
                out.append(m)
    if "auto" in out and len(out) > 1:
        raise UserError(f"--maps {text!r}: auto stands alone")
    return out


def resolve_maps(requested: List[str], net, images, model: str) -> List[str]:
    """The maps to measure: ``auto`` is ASM plus CAM where the model has a GAP head and
    Grad-CAM where it has a convolutional layer; an explicit map the model cannot give is a
    user error."""
    if requested == ["auto"]:
        s = map_settings(net, images, required=False)
        return (["asm"] + (list(ALIASES["cam"]) if s.head is not None else [])
                + (list(ALIASES["gradcam"]) if s.layer is not None else []))
    for m in requested:
        try:
            map_settings(net, images, [m])
        except ValueError as e:
            raise UserError(f"--maps {m}: --model {model}: {e}") from None
    return requested


def load_comparison(runs: Dict[str, Path]) -> Comparison:
    """The attacks' examples from their ``adversarial.npz`` (aligned: same images, labels and
    targets, which the shared --targets/--seed guarantee; checked)."""
    arrays = {}
    for label, root in runs.items():
        with np.load(root / "adversarial.npz") as z:
            arrays[label] = {k: z[k] for k in z.files}
    first = next(iter(arrays.values()))
    for label, a in arrays.items():
        for key in ("source_index", "labels", "targets"):
            if not np.array_equal(a[key], first[key]):
                raise UserError(f"--attacks: the run of {label} differs in {key} from the "
                                "first attack's; use a fresh --out or --restart")
    t = lambda v: torch.from_numpy(np.asarray(v))
    return Comparison(t(first["original"]).float(), t(first["labels"]).long(),
                      t(first["targets"]).long(), t(first["source_index"]).long(),
                      {k: t(a["delta"]).float() for k, a in arrays.items()},
                      {k: t(a["success"]).bool() for k, a in arrays.items()})


def explain(run: RunOptions, *, attacks: str = "strattack,cw-l2", sets: List[str] = (),
            targets: str = "random", maps: str = "auto", nus: str = "30,40,50,60,70,80,90",
            figures: int = 4, figure_nu: float = 90.0) -> Optional[Dict[str, Any]]:
    """Everything ``admm-attack explain`` does; returns the summary (None on torchrun ranks
    other than 0, which only attack). User errors raise :class:`UserError`."""
    options = dict(attacks=attacks, set=list(sets), targets=targets, maps=maps, nus=nus,
                   figures=figures, figure_nu=figure_nu, **run.recorded())
    check_counts(run, figures)
    if not 0 <= figure_nu <= 100:
        raise UserError(f"--figure-nu {figure_nu:g}: expected a percentile in [0, 100]")
    if targets.strip() == "untargeted":
        raise UserError("--targets untargeted: the maps need a target class t (ASM(x0, t), "
                        "CAM of t); use random, all or class indices")
    nu_values = parse_nus(nus)
    requested = parse_maps(maps)
    chosen = choose_attacks(attacks, list(sets))

    ready = prepare(run, options)
    chosen_attacks = [c.build(ready, run.seed) for c in chosen]
    # one check and one set of targets for every attack (a bad --targets fails here)
    examples = checked_examples(ready, chosen_attacks[0], parse_targets(targets, ready.labels),
                                targets)
    for c in chosen:
        fits(c.spec, tuple(ready.images.shape[1:]), f"--spec {c.given}")
    maps_used = resolve_maps(requested, chosen_attacks[0].classifier.model, ready.images,
                             run.model)
    batch = batch_size_for(run.batch_size, DEFAULT_BATCH_SIZE)

    record = {**run_record("admm-attack explain", examples.size, int(ready.images.shape[0]),
                           **ready.context),
              "status": "running", "seed": run.seed, "maps": maps_used, "nus": nu_values,
              "started": now(),
              "attacks": {c.label: {"spec": c.given, "set": list(c.loaded.overrides),
                                    "spec_origin": c.origin, "run": f"attacks/{c.label}",
                                    "spec_toml": c.spec.to_toml()}
                          for c in chosen}}
    root = RunDir(run.out, kind="explain")
    ready.ranks.run_on_main(lambda: root.start(record, restart=run.restart))
    try:
        return _compare(root, ready, examples, batch, chosen_attacks, chosen, record,
                        maps_used, nu_values, targets=targets, seed=run.seed,
                        restart=run.restart, quiet=run.quiet, figures=figures,
                        figure_nu=figure_nu)
    except BaseException as e:  # Ctrl-C, SIGTERM, or a model that raised (or exited)
        if ready.ranks.main:
            status, fields = stopped(e)
            root.write_json(PROVENANCE, {**record, "status": status, **fields})
        raise
    finally:
        root.unlock()


#: what explain writes at the top of its directory (figures/ are listed as they are drawn)
REPORT_FILES = ("is_curve.csv", "is_per_example.csv", "is_curve.png", "summary.json",
                PROVENANCE)


def _compare(root: RunDir, ready, examples, batch, chosen_attacks, chosen, record, maps_used,
             nu_values, *, targets, seed, restart, quiet, figures, figure_nu):
    out = root.root

    runs, attack_summaries = {}, {}
    for c, attack in zip(chosen, chosen_attacks):
        done = run_spec(out / "attacks" / c.label, ready, attack, examples, c.loaded,
                        "admm-attack explain", batch_size=batch, targets=targets,
                        restart=restart, quiet=quiet, figures=0)
        runs[c.label] = out / "attacks" / c.label
        if done is not None:  # None: a torchrun rank other than 0 (rank 0 reports)
            attack_summaries[c.label] = {k: done.summary.get(k) for k in (
                "examples", "successes", "asr", "l0", "l2", "groups_nonzero",
                "gradient_evals", "seconds_this_run", "batches_resumed")}
    if not ready.ranks.main:
        return None
    net = chosen_attacks[0].classifier.model
    model, data = ready.model_name, ready.data_name
    comp = load_comparison(runs)
    root.own(REPORT_FILES)
    summary = write_report(
        out, net, comp, maps=maps_used, nus=nu_values, figures=figures, figure_nu=figure_nu,
        batch_size=batch, class_names=getattr(net, "class_names", None),
        title=f"{model} on {data}",
        extra={"model": model, "data": data, "targets": targets, "seed": seed,
               "attacks": attack_summaries})
    root.own(summary["figures"])
    root.write_json(PROVENANCE, {**record, "status": "complete", "finished": now(),
                                 "map_settings": summary["map_settings"]})
    return summary


def format_table(summary: Dict[str, Any]) -> str:
    """The mean IS per map and attack against ν, and each attack's paired difference from the
    first (mean ± standard error over the counted examples), as printed after a run."""
    nus = summary["nus"]
    num = lambda v, fmt: "nan" if v is None else format(v, fmt)
    lines = [f"mean IS over the {summary['counted']} of {summary['examples']} examples fooled "
             f"by every attack ({summary['rule']})",
             f"{'map':15s} {'attack':24s} " + " ".join(f"{f'ν={v:g}':13s}" for v in nus)]
    for m, row in summary["mean_is"].items():
        for name, vals in row.items():
            lines.append(f"{m:15s} {name:24s} "
                         + " ".join(f"{num(v, '.3f'):13s}" for v in vals))
        for pair, d in summary["paired"].get(m, {}).items():
            cells = [num(a, "+.3f") + ("" if e is None or math.isnan(e) else f"±{e:.3f}")
                     for a, e in zip(d["mean"], d["stderr"])]  # one example: no error bar
            lines.append(f"{m:15s} {pair:24s} " + " ".join(f"{c:13s}" for c in cells))
    return "\n".join(lines)
