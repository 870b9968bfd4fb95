"""Tables and printed text of the small commands: models, datasets, specs list/show/check, and
the closing summary of ``solve``."""

from __future__ import annotations

import math
import re
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterable

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from attacks.builtin import BUILTIN, builtin_spec
from attacks.catalogue import example_specs, load_spec, rewrite_toml
from attacks.indicators import combine, unjudged_line
from cli.errors import UserError


def _console() -> Console:
    return Console(highlight=False)


def _shape(shape) -> str:
    return "×".join(str(d) for d in shape)


def _brief(text: str) -> str:
    """The head of a long provenance string: "bundled: foolbox==3.3.4 wheel (MIT), ..." ->
    "foolbox==3.3.4 wheel"."""
    text = text.removeprefix("bundled: ").removeprefix("standard ")
    text = re.sub(r"==[\w.]+", "", text).split(" (")[0].split(":")[0].split(", ")[0]
    return text if len(text) <= 36 else text[:35] + "…"


def _details(rows) -> None:
    lines = []
    for title, fields in rows:
        lines.append(title)
        for k, v in fields:
            lines.append(textwrap.fill(f"{v}", width=88, initial_indent=f"  {k + ':':<11} ",
                                       subsequent_indent=" " * 14))
    sys.stdout.write("\n".join(lines) + "\n")


def _table(title: str, first: str, *columns: str) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    t.add_column(first, no_wrap=True, style="bold")
    for col in columns:  # accuracy cells ("98.2% mnist-heldout") stay on one line
        t.add_column(col, min_width=20 if col == "accuracy" else None)
    return t


def print_models(long: bool = False) -> None:
    from attacks.models import list_models
    models = list_models()
    acc = lambda m: "; ".join(f"{100 * v:.1f}% {k}" for k, v in m.accuracy.items()) or "–"
    if long:
        _details((m.name, [("input", _shape(m.input_shape)), ("classes", m.num_classes),
                           ("accuracy", acc(m)), ("weights", m.weights),
                           ("licence", m.license), ("about", m.description),
                           ("layers", m.architecture)]) for m in models)
        return
    t = _table("Model zoo (--model NAME)", "name", "input", "classes", "accuracy", "weights")
    for m in models:
        t.add_row(escape(m.name), _shape(m.input_shape), str(m.num_classes), acc(m),
                  escape(_brief(m.weights)))
    _console().print(t)
    _console().print("--long for weights' origin, licences and architectures.")


def print_datasets(long: bool = False) -> None:
    from attacks.data import list_datasets
    sets = list_datasets()
    avail = lambda d: "yes" if d.available else "no"
    if long:
        _details((d.name, [("shape", _shape(d.shape)), ("classes", d.num_classes),
                           ("size", f"{d.size:,}"), ("available", avail(d)),
                           ("source", d.source), ("about", d.description)]) for d in sets)
        return
    t = _table("Datasets (--data NAME, or a directory / image folder)", "name", "shape",
               "classes", "size", "ready", "source")
    for d in sets:
        t.add_row(d.name, _shape(d.shape), str(d.num_classes), f"{d.size:,}", avail(d),
                  _brief(d.source))
    _console().print(t)
    _console().print("--long for descriptions and sources; a dataset that is not ready loads "
                     "from a directory of its files: --data DIR.")


def print_specs() -> None:
    t = _table("Attack specs (--spec NAME; `admm-attack specs show NAME` prints the TOML)",
               "name", "terms", "description")
    for name in BUILTIN:
        s = builtin_spec(name)
        t.add_row(name, ", ".join(x.kind for x in s.terms), escape(s.description))
    for name, path in example_specs().items():
        try:
            s = load_spec(str(path)).spec
            t.add_row(escape(name), ", ".join(x.kind for x in s.terms),
                      f"{escape(s.description)} [dim](shipped TOML file)[/dim]")
        except UserError as e:
            t.add_row(escape(name), "–", f"INVALID: {escape(str(e))}")
    _console().print(t)


def show_spec(name: str, sets: Iterable[str], resolved: bool) -> str:
    """The TOML of a spec (validated): a file as written, with --set values changed in place
    (its comments kept); a built-in commented on every key; --resolved: the canonical
    layout."""
    sets = list(sets)
    loaded = load_spec(name, sets)
    if resolved:
        return loaded.spec.to_toml()
    if loaded.path is None:  # a built-in: its commented TOML, then the overrides
        return rewrite_toml(load_spec(name).spec.to_toml(), sets)
    return rewrite_toml(loaded.path.read_text(encoding="utf-8"), sets)


def check_spec(name: str, sets: Iterable[str]) -> str:
    s = load_spec(name, sets).spec
    return f"ok: {name}: spec {s.name!r} with terms {', '.join(t.kind for t in s.terms)}" + \
        ("" if s.refine is None else ", refined")


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def print_summary(summary: Dict[str, object], out: Path) -> None:
    unjudged = int(summary.get("not_judged", 0))
    t = Table(title=f"{escape(str(summary.get('attack')))}: "
                    f"{summary['successes']}/{summary.get('judged', summary['examples'])} "
                    f"successful ({float(summary['asr']):.1f}% ASR)"
                    + (f", {unjudged} of {summary['examples']} not judged" if unjudged else ""),
              show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in ("l0", "l1", "l2", "linf", "groups_nonzero", "groups_fraction", "gradient_evals",
              "nonfinite", "batches_computed", "batches_resumed"):
        if k in summary:
            t.add_row(k, _fmt(summary[k]))
    c = _console()
    c.print(t)
    warn_unjudged(unjudged_line(summary))
    c.print(escape(written(out)), soft_wrap=True)


def written(out: Path, folders: Iterable[str] = ()) -> str:
    """``wrote OUT/: ...``: every file and folder at the top of the run directory ``out`` that
    its runs wrote (its manifest: batches/, png/, figures/ included), and ``folders``."""
    from attacks.store import RunDir
    names = dict.fromkeys(n.split("/")[0] + ("/" if "/" in n else "")
                          for n in RunDir(out).owned())
    names.update(dict.fromkeys(f"{f}/" for f in folders))
    return f"wrote {out}/: {' '.join(sorted(names, key=lambda n: (n.endswith('/'), n)))}"


def warn_unjudged(line) -> None:
    """The one warning line on examples not judged (attacks.indicators), on stderr."""
    if line:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]warning:[/] {escape(line)}")


def print_eval(summary: Dict[str, object], out: Path) -> None:
    """The eval's table: one row per attack and case (the Markdown file has the paper's
    wide layout)."""
    from cli.eval import HEADERS, cell, unjudged_note
    t = Table(title=escape(str(summary["title"])), box=box.SIMPLE_HEAD)
    keys = ("asr", "l0", "l1", "l2", "linf")
    for col in ("attack", "case", "images", *[HEADERS[k] for k in keys]):
        t.add_column(col, justify="left" if col in ("attack", "case") else "right")
    for r in summary["rows"]:
        t.add_row(escape(r["attack"]), r["case"],
                  f"{r['successes']}/{r.get('judged', r['images'])}" + unjudged_note(r),
                  *[cell(k, r[k]) for k in keys])
    c = _console()
    c.print(t)
    warn_unjudged(unjudged_line(combine(summary.get("cost", {}).values())))
    from cli.eval import from_files
    files = from_files(summary.get("origins", {}))
    if files:
        c.print(escape("specs read from files: " + "; ".join(files)), soft_wrap=True)
    c.print(escape(written(out, summary["cost"])), soft_wrap=True)
