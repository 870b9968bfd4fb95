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
import io
import math
from typing import Any, Dict, List, Optional

from attacks.evaluation import CASES, DISTORTIONS, evaluate_cases, summary_rows
from attacks.indicators import combine, nothing_judged
from attacks.runs import RunDir
from attacks.runs.runner import run_attack
from attacks.filenames import PROVENANCE, SUMMARY
from attacks.runs.provenance import now, stopped
from cli.errors import UserError
from cli.options import RunOptions
from cli.setup import (ChosenAttack, batch_size_for, check_counts, checked_examples,
                       choose_attacks, fits, prepare, resolve_data)

DEFAULT_ATTACKS = "strattack,cw-l2,ead,ifgsm,fgm"
DEFAULT_BATCH_SIZE = 45
RANK_BY = ("l0", "l1", "l2", "linf")
TABLE_MD, TABLE_CSV = "table.md", "table.csv"
#: what eval writes beside the attacks' folders (an attack labelled so is refused)
TOP_FILES = (TABLE_MD, TABLE_CSV, SUMMARY, PROVENANCE)


def parse_cases(text: str) -> tuple:
    cases = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in cases if c not in CASES]
    if not cases or bad:
        raise UserError(f"--cases {text!r}: expected a comma list of {', '.join(CASES)}")
    return tuple(c for c in CASES if c in cases)


def evaluate(run: RunOptions, *, attacks: str = DEFAULT_ATTACKS, sets: List[str] = (),
             cases: str = "best,average,worst", rank_by: str = "l2",
             figures: int = 0) -> Optional[Dict[str, Any]]:
    """Everything ``admm-attack eval`` does; returns the summary (``None`` on torchrun ranks
    other than 0). User errors raise :class:`UserError`."""
    options = dict(attacks=attacks, set=list(sets), cases=cases, rank_by=rank_by,
                   figures=figures, **run.recorded())
    check_counts(run, figures)
    if rank_by not in RANK_BY:
        raise UserError(f"--rank-by {rank_by!r}: expected one of {', '.join(RANK_BY)}")
    chosen_cases = parse_cases(cases)
    chosen = choose_attacks(attacks, list(sets), baselines=True, reserved=TOP_FILES)
    ready = prepare(run, options)
    attackers = [a.build(ready, run.seed) for a in chosen]
    # best/worst need every other class; the average case alone only the seeded random one
    protocol = "random" if chosen_cases == ("average",) else "all"
    examples = checked_examples(ready, attackers[0], protocol, protocol)  # shared by all
    for a in chosen:
        if a.spec is not None:
            fits(a.spec, tuple(ready.images.shape[1:]), f"--attacks {a.given}")
    batch = batch_size_for(run.batch_size, DEFAULT_BATCH_SIZE)
    # -n is not part of the key: batches are image-major and checked one by one, so an eval
    # can be extended to more images (the whole data set's fingerprint identifies the data)
    everything = resolve_data(run.data, None) if run.n is not None \
        else (ready.images, ready.labels)
    identity = {"model": run.model, "weights": run.weights, "data": run.data,
                "targets": protocol}
    jobs = [ready.job(attacker, examples, batch, "admm-attack eval", identity,
                      key_head={"attack": attacker.identity()}, data=everything,
                      record={"attack": a.label})
            for a, attacker in zip(chosen, attackers)]
    root = RunDir(run.out, kind="eval")
    common = {k: v for k, v in jobs[0].key.items() if k != "attack"}  # what experiments read
    top = {k: v for k, v in jobs[0].record.items() if k != "attack"}
    top.update(attacks=[a.label for a in chosen], common=common)
    entry = jobs[0].entry
    history = ready.ranks.run_on_main(lambda: root.start({**top, "status": "running"},
                                                         restart=run.restart, entry=entry))
    try:
        return _run_eval(root, ready, jobs, chosen, chosen_cases, top, entry, history or [],
                         title_of=(run.model, run.data, protocol, run.seed, rank_by),
                         restart=run.restart, quiet=run.quiet, figures=figures)
    except BaseException as e:  # Ctrl-C, SIGTERM, or a model that raised (or exited)
        status, fields = stopped(e)
        if ready.ranks.main:
            root.write_json(PROVENANCE, {**top, "status": status,
                                         "history": (history or []) + [{**entry, **fields}]})
        raise
    finally:
        root.unlock()


def _run_eval(root: RunDir, ready, jobs, chosen: List[ChosenAttack], chosen_cases, top, entry,
              history, *, title_of, restart: bool, quiet: bool,
              figures: int) -> Optional[Dict[str, Any]]:
    model, data, protocol, seed, rank_by = title_of
    images, labels = ready.images, ready.labels
    num_classes = jobs[0].attack.classifier.num_classes
    out = root.root
    per_attack: Dict[str, Any] = {}
    costs: Dict[str, Dict[str, Any]] = {}
    for a, job in zip(chosen, jobs):
        done = run_attack(job, out / a.label, restart=restart, quiet=quiet, figures=figures)
        if done is None:
            continue
        summ = done.summary
        try:
            per_attack[a.label] = evaluate_cases(done.result, labels, num_classes, seed=seed,
                                                rank_by=rank_by, cases=chosen_cases)
        except ValueError as e:  # a stored run that does not fit the protocol
            raise UserError(f"--attacks {a.label}: {e}") from None
        costs[a.label] = {k: summ[k] for k in ("examples", "successes", "asr", "gradient_evals",
                                              "seconds_this_run", "batches_resumed")}
        costs[a.label].update(not_judged=summ.get("not_judged", 0),
                             reasons=summ.get("reasons", {}))
    if not ready.ranks.main:
        return None

    rows = summary_rows(per_attack)
    title = (f"{model} on {data} ({int(images.shape[0])} images × {num_classes - 1} targets"
             if protocol == "all" else
             f"{model} on {data} ({int(images.shape[0])} images, one random target each")
    title += f", seed {seed}, {'8-bit grid' if jobs[0].grid else 'continuous'}; cases ranked "
    title += f"by {rank_by})"
    origins = {a.label: a.origin for a in chosen}
    root.write(TABLE_MD, markdown_table(rows, chosen_cases, title, costs, origins)
               .encode("utf-8"))
    root.write(TABLE_CSV, csv_table(rows).encode("utf-8"))
    summ = {"title": title, "cases": list(chosen_cases), "rank_by": rank_by, "rows": rows,
            "cost": costs, "images": int(images.shape[0]), "protocol": protocol,
            "grid": jobs[0].grid, "origins": origins}
    root.write_json(SUMMARY, summ)
    root.write_json(PROVENANCE, {**top, "status": "complete",
                                 "history": history + [{**entry, "finished": now()}]})
    nothing = nothing_judged(combine(costs.values()))
    if nothing:  # the tables are written; their verdict is that there is none
        raise UserError(f"--model {model}: {nothing}")
    return summ


# -- tables ------------------------------------------------------------------------------------
FORMATS = {"asr": "{:.1f}", "l0": "{:.1f}", "l1": "{:.2f}", "l2": "{:.3f}", "linf": "{:.3f}"}
HEADERS = {"asr": "ASR %", "l0": "ℓ0", "l1": "ℓ1", "l2": "ℓ2", "linf": "ℓ∞"}


def cell(key: str, v: Any) -> str:
    """A table cell: the metric ``key``'s format, ``–`` for none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return FORMATS[key].format(v)


def from_files(origins: Dict[str, str]) -> List[str]:
    """``LABEL: FILE`` for each attack read from a spec file (its origin is neither
    ``builtin:``, ``example:`` nor ``baseline:``)."""
    return [f"{label}: {origin}" for label, origin in origins.items()
            if origin.partition(":")[0] not in ("builtin", "example", "baseline")]


def markdown_table(rows: List[Dict[str, Any]], cases, title: str,
                   costs: Dict[str, Dict[str, Any]], origins: Dict[str, str]) -> str:
    """The paper's layout: one row per attack, a column group per case; then the counts,
    and which attacks were read from spec files."""
    keys = ("asr", *DISTORTIONS)
    head = ["attack"] + [f"{c} {HEADERS[k]}" for c in cases for k in keys]
    lines = [f"{title}\n", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    by = {(r["attack"], r["case"]): r for r in rows}
    for attack in dict.fromkeys(r["attack"] for r in rows):
        cells = [attack] + [cell(k, by[(attack, c)].get(k)) for c in cases for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Images counted per case (successes / judged images; ASR is their share):",
              ""]
    for attack in dict.fromkeys(r["attack"] for r in rows):
        counts = ", ".join(f"{c} {by[(attack, c)]['successes']}/{judged_of(by[(attack, c)])}"
                           + unjudged_note(by[(attack, c)]) for c in cases)
        cost = costs.get(attack, {})
        evals = cost.get("gradient_evals")
        lines.append(f"- {attack}: {counts}; all examples {cost.get('successes')}/"
                     f"{cost.get('examples')} successful{unjudged_note(cost)}, "
                     f"{cell('l1', evals) if evals is not None else '–'} gradient "
                     "evaluations per example")
    files = from_files(origins)
    if files:
        lines += ["", "Specs read from files: " + "; ".join(files)]
    return "\n".join(lines) + "\n"


def judged_of(row: Dict[str, Any]) -> int:
    return row.get("judged", row["images"])


def unjudged_note(row: Dict[str, Any]) -> str:
    """`` (N not judged)`` for a table row or an attack's cost with unjudged examples."""
    n = row.get("not_judged", 0)
    return f" ({n} not judged)" if n else ""


def csv_table(rows: List[Dict[str, Any]]) -> str:
    cols = ("attack", "case", "images", "successes", "not_judged", "asr", *DISTORTIONS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["nan" if isinstance(r[c], float) and math.isnan(r[c]) else r[c]
                    for c in cols])
    return buf.getvalue()
