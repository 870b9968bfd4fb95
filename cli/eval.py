"""``admm-attack eval``: the paper's protocol (appendix F) for several attacks on one model and
the same images — best / average / worst case ASR and ℓ0, ℓ1, ℓ2, ℓ∞ — as tables.

Layout of ``--out DIR``::

    provenance.json        the eval: options, attacks, versions, history of invocations
    table.md  table.csv    the result tables (Markdown, long-format CSV)
    summary.json           every number of the tables, plus each attack's cost
    <attack>/              one run directory per attack, like ``solve``'s (batches/, metrics.csv,
                           summary.json, provenance.json, spec.toml): resumed independently, so
                           adding an attack to a finished eval only runs the new one
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import attrs
import torch
from torch import nn

from attacks.api import Attack
from attacks.baselines import GradientAttack
from attacks.evaluation import CASES, DISTORTIONS, evaluate_cases, summary_rows
from attacks.runs import Plan, RunDir, run_attack
from attacks.runs.provenance import fingerprint, model_fingerprint, now
from attacks.runs.store import PROVENANCE
from attacks.spec import AttackSpec
from attacks.catalogue import load_spec
from attacks.targets import expand_targets
from cli.errors import UserError
from cli.solve import normalized
from cli.setup import (attack_sets, batch_size_for, check_counts, fits, prepare,
                       resolve_data)

#: the gradient baselines by name: (iterations, norm); their ε is bisected per sample
BASELINES = {"fgm": (1, "inf"), "fgm-l2": (1, "2"), "ifgsm": (10, "inf"),
             "ifgsm-l2": (10, "2")}
DEFAULT_ATTACKS = "strattack,cw-l2,ead,ifgsm,fgm"
DEFAULT_BATCH_SIZE = 45
RANK_BY = ("l0", "l1", "l2", "linf")


@attrs.frozen
class EvalAttack:
    """One attack of the eval: its directory name, how to build it, what identifies it."""

    name: str
    build: Callable[[nn.Module, int, bool], Callable]   # (model, seed, grid) -> attack
    identity: Dict[str, Any]                            # part of the resume key
    files: Dict[str, str]                               # written into its run directory
    spec: Optional[AttackSpec] = None                   # None for the gradient baselines


def _baseline(net: nn.Module, seed: int, grid: bool, *, iterations: int, norm: str):
    return GradientAttack(net, norm=norm, iterations=iterations, seed=seed, grid=grid)


def _admm(net: nn.Module, seed: int, grid: bool, *, spec: AttackSpec):
    return Attack(net, spec, seed=seed, grid=grid)


def resolve_attacks(text: str, sets: List[str]) -> List[EvalAttack]:
    """``--attacks`` (comma list of spec names, TOML files and baselines) as attacks; ``--set
    KEY=VALUE`` applies to every spec (not to the baselines), ``--set NAME:KEY=VALUE`` to the
    attack NAME only."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UserError("--attacks: expected a comma list such as strattack,cw-l2,ifgsm")
    out: List[EvalAttack] = []
    scoped = {item.partition(":")[0].strip() for item in sets  # the NAMEs of NAME:KEY=VALUE
              if ":" in item.partition("=")[0]}
    for name, own in zip(names, attack_sets(list(sets), names)):
        if name in BASELINES:
            if name in scoped:
                raise UserError(f"--set {name}:…: {name} is a gradient baseline without a spec; "
                                "--set applies to spec attacks only")
            iterations, norm = BASELINES[name]
            out.append(EvalAttack(
                name, functools.partial(_baseline, iterations=iterations, norm=norm),
                {"baseline": name, "iterations": iterations, "norm": norm, "search_steps": 12},
                {}))
            continue
        spec = load_spec(name, own).spec
        label = spec.name if name.endswith(".toml") or "/" in name else name
        out.append(EvalAttack(re.sub(r"[^\w.+-]", "_", label),
                              functools.partial(_admm, spec=spec),
                              {"spec": spec.to_dict()}, {"spec.toml": spec.to_toml()}, spec))
    dirs = [a.name for a in out]
    twice = sorted({d for d in dirs if dirs.count(d) > 1})
    if twice:
        raise UserError(f"--attacks: {', '.join(twice)} given twice")
    return out


def parse_cases(text: str) -> tuple:
    cases = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in cases if c not in CASES]
    if not cases or bad:
        raise UserError(f"--cases {text!r}: expected a comma list of {', '.join(CASES)}")
    return tuple(c for c in CASES if c in cases)


def evaluate(*, attacks: str, sets: List[str], model: str, weights: Optional[str], data: str,
             normalize: Optional[tuple] = None,
             n: Optional[int], cases: str, rank_by: str, device: str,
             batch_size: Optional[int], seed: int, out: Path, restart: bool, quiet: bool,
             threads: Optional[int] = None, grid: Optional[bool] = None,
             figures: int = 0) -> Optional[Dict[str, Any]]:
    """Everything ``admm-attack eval`` does; returns the summary (``None`` on torchrun ranks
    other than 0). User errors raise :class:`UserError`."""
    options = dict(attacks=attacks, set=list(sets), model=model, weights=weights,
                   normalize=normalize, data=data,
                   n=n, cases=cases, rank_by=rank_by, device=device, batch_size=batch_size,
                   seed=seed, out=str(out), restart=restart, threads=threads, grid=grid)
    check_counts(batch_size=batch_size, threads=threads, figures=figures)
    if rank_by not in RANK_BY:
        raise UserError(f"--rank-by {rank_by!r}: expected one of {', '.join(RANK_BY)}")
    chosen_cases = parse_cases(cases)
    chosen = resolve_attacks(attacks, sets)
    ready = prepare(model=model, weights=weights, normalize=normalize, data=data, n=n,
                    device=device,
                    threads=threads, grid=grid)
    images, labels, num_classes = ready.images, ready.labels, ready.num_classes
    for a in chosen:
        if a.spec is not None:
            fits(a.spec, tuple(images.shape[1:]), f"--attacks {a.name}")
    # best/worst need every other class; the average case alone only the seeded random one
    protocol = "random" if chosen_cases == ("average",) else "all"
    index, tg = expand_targets(labels, num_classes, protocol, seed)
    batch = batch_size_for(batch_size, DEFAULT_BATCH_SIZE, ready.ranks)
    plan = Plan(images, labels, index, tg, batch)

    root = RunDir(out, kind="eval")
    # -n is not part of the key: batches are image-major and checked one by one, so an eval
    # can be extended to more images (the whole data set's fingerprint identifies the data)
    everything = resolve_data(data, None) if n is not None else (images, labels)
    common = {"model": model, "weights": weights,
              "model_sha256_16": model_fingerprint(ready.model), "data": data,
              "data_sha256_16": fingerprint(*everything), "targets": protocol, "seed": seed,
              "batch_size": batch, "grid": ready.grid, **normalized(normalize)}
    inputs = ready.inputs(plan, options)
    env = ready.record("admm-attack eval", plan, options)
    top = {**env, "attacks": [a.name for a in chosen], "common": common}
    history = ready.ranks.run_on_main(lambda: _start_eval(root, restart, top, inputs.entry))
    try:
        return _run_eval(root, ready, inputs, chosen, chosen_cases, common, env, top,
                         history or [], title_of=(model, data, protocol, seed, rank_by),
                         restart=restart, quiet=quiet, figures=figures)
    finally:
        root.unlock()


def _run_eval(root: RunDir, ready, inputs, chosen: List[EvalAttack], chosen_cases, common,
              env, top, history, *, title_of, restart: bool, quiet: bool,
              figures: int) -> Optional[Dict[str, Any]]:
    model, data, protocol, seed, rank_by = title_of
    images, labels, num_classes = ready.images, ready.labels, ready.num_classes
    out = root.root
    per_attack: Dict[str, Any] = {}
    costs: Dict[str, Dict[str, Any]] = {}
    for a in chosen:
        torch.manual_seed(seed)
        done = run_attack(out / a.name, inputs, a.build(ready.model, seed, ready.grid),
                          name=a.name, key={"attack": a.identity, **common},
                          record={**env, "attack": a.name}, files=a.files, restart=restart,
                          quiet=quiet, figures=figures,
                          groups=a.spec.groups(tuple(images.shape[1:])) if a.spec else None)
        if done is None:
            continue
        summ = done.summary
        try:
            per_attack[a.name] = evaluate_cases(done.result, labels, num_classes, seed=seed,
                                                rank_by=rank_by, cases=chosen_cases)
        except ValueError as e:  # a stored run that does not fit the protocol
            raise UserError(f"--attacks {a.name}: {e}") from None
        costs[a.name] = {k: summ[k] for k in ("examples", "successes", "asr", "gradient_evals",
                                              "seconds_this_run", "batches_resumed")}
    if not ready.ranks.main:
        return None

    rows = summary_rows(per_attack)
    title = (f"{model} on {data} ({int(images.shape[0])} images × {num_classes - 1} targets"
             if protocol == "all" else
             f"{model} on {data} ({int(images.shape[0])} images, one random target each")
    title += f", seed {seed}, {'8-bit grid' if ready.grid else 'continuous'}; cases ranked by "
    title += f"{rank_by})"
    root.write("table.md", markdown_table(rows, chosen_cases, title, costs).encode("utf-8"))
    root.write("table.csv", csv_table(rows).encode("utf-8"))
    summ = {"title": title, "cases": list(chosen_cases), "rank_by": rank_by, "rows": rows,
            "cost": costs, "images": int(images.shape[0]), "protocol": protocol,
            "grid": ready.grid}
    root.write_json("summary.json", summ)
    entry = {**inputs.entry, "finished": now()}
    root.write_json(PROVENANCE, {**top, "status": "complete", "history": history + [entry]})
    return summ


def _start_eval(root: RunDir, restart: bool, top: Dict[str, Any],
                entry: Dict[str, Any]) -> List[Any]:
    """Claim and lock ``--out`` (``restart``: clear the eval's own files), record this
    invocation; return the earlier invocations."""
    root.claim(restart)
    try:
        history = (root.stored_provenance() or {}).get("history", [])
        root.write_json(PROVENANCE, {**top, "status": "running",
                                     "history": history + [entry]})
    except BaseException:
        root.unlock()
        raise
    return history


# -- tables ------------------------------------------------------------------------------------
FORMATS = {"asr": "{:.1f}", "l0": "{:.1f}", "l1": "{:.2f}", "l2": "{:.3f}", "linf": "{:.3f}"}
HEADERS = {"asr": "ASR %", "l0": "ℓ0", "l1": "ℓ1", "l2": "ℓ2", "linf": "ℓ∞"}


def cell(key: str, v: Any) -> str:
    """A table cell: the metric ``key``'s format, ``–`` for none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return FORMATS[key].format(v)


def markdown_table(rows: List[Dict[str, Any]], cases, title: str,
                   costs: Dict[str, Dict[str, Any]]) -> str:
    """The paper's layout: one row per attack, a column group per case."""
    keys = ("asr", *DISTORTIONS)
    head = ["attack"] + [f"{c} {HEADERS[k]}" for c in cases for k in keys]
    lines = [f"{title}\n", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    by = {(r["attack"], r["case"]): r for r in rows}
    for attack in dict.fromkeys(r["attack"] for r in rows):
        cells = [attack] + [cell(k, by[(attack, c)].get(k)) for c in cases for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Images counted per case (successes / images):", ""]
    for attack in dict.fromkeys(r["attack"] for r in rows):
        counts = ", ".join(f"{c} {by[(attack, c)]['successes']}/{by[(attack, c)]['images']}"
                           for c in cases)
        cost = costs.get(attack, {})
        evals = cost.get("gradient_evals")
        lines.append(f"- {attack}: {counts}; all examples {cost.get('successes')}/"
                     f"{cost.get('examples')} successful, "
                     f"{cell('l1', evals) if evals is not None else '–'} gradient "
                     "evaluations per example")
    return "\n".join(lines) + "\n"


def csv_table(rows: List[Dict[str, Any]]) -> str:
    cols = ("attack", "case", "images", "successes", "asr", *DISTORTIONS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["nan" if isinstance(r[c], float) and math.isnan(r[c]) else r[c]
                    for c in cols])
    return buf.getvalue()
