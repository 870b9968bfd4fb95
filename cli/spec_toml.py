"""Write an attack spec as commented TOML (an exact writer for the fixed spec layout).

``loads(dumps_spec(s))`` gives back ``s``: floats are written with ``repr`` (shortest exact
form), integers as integers, strings as TOML basic strings. Every key carries a short comment;
optional values that are absent (``eps``, ``loss.c``, group ``size``/``stride``, the
``[refine]`` table) are shown as commented-out lines so a person sees what can be set.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List

from attacks.spec import AttackSpec, GroupSpec, LossSpec, RefineSpec, SearchSpec, SolverSpec
from cli.spec_dict import field_names, spec_to_dict

DOCS: Dict[str, str] = {
    "name": "short name, used in outputs",
    "description": "one line for `admm-attack specs list`",
    "eps": "ℓ∞ bound on δ; absent: none (x₀ + δ stays in [0, 1])",
    "decision": "rank successes by: objective | l0 | l1 | l2 | linf",
    "loss.kind": "C&W margin loss, paper eq. (3)",
    "loss.kappa": "confidence κ >= 0",
    "loss.c": "first c; absent: 0.5 MNIST, 0.25 CIFAR, 2.5 larger",
    "terms.name": "address for --set terms.<name>.…",
    "terms.kind": "squared_l2 | l1 | elastic_net | group_l2",
    "terms.role": "distortion (kept by refine) | regularizer",
    "terms.params.weight": "multiplier of the term",
    "terms.params.l1": "β, weight of ||δ||₁",
    "terms.params.l2": "weight of ||δ||₂²",
    "terms.groups.size": "group side; absent: 2 (3 overlapping), 13 above 64 px",
    "terms.groups.stride": "absent: default for size (= size if size is set)",
    "terms.groups.copies": "local (general-form consensus) | full (paper eq. 16)",
    "terms.groups.overlapping": "use the overlapping defaults (3×3, stride 2)",
    "solver.rho": "ADMM penalty ρ > 0",
    "solver.eta": "linearisation η; η_k = eta·√k with the sqrt schedule",
    "solver.eta_schedule": "sqrt | constant",
    "solver.adaptive_rho": "residual balancing of ρ",
    "search.steps": "solves per example over the constant c (binary search)",
    "search.iterations": "ADMM iterations per solve",
    "search.track_every": "test the candidate for success every N iterations",
    "search.growth": "multiply c by this until a success bounds it",
    "search.warm_start": "start each solve from the best success so far",
    "search.patience_tol": "stop when a success improves by < this (relative)",
    "search.rescue_iterations": "cold restart at c0·growth² for examples with no success",
    "refine.quantile": "zero |δ| below this quantile of the non-zeros (eq. 19)",
    "refine.iterations": "ADMM iterations of the fixed-support re-solve (eq. 20)",
}
ABSENT_EXAMPLES = {"eps": "0.3", "loss.c": "0.5", "terms.groups.size": "2",
                   "terms.groups.stride": "2"}
TABLE_DOCS = {
    "loss": "the attack loss",
    "terms": "one objective term; several [[terms]] are summed",
    "solver": "linearised ADMM (paper appendix F)",
    "search": "per-example search over c",
    "refine": "fixed-support refine (paper Sec. 4.2); delete to skip",
}
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_COMMENT_COLUMN = 30


def toml_value(v: Any) -> str:
    """A TOML scalar (or inline array) for ``v``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as a TOML value")


def toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k, ensure_ascii=False)


def _line(key: str, value: Any, doc_key: str) -> str:
    text = f"{toml_key(key)} = {toml_value(value)}"
    doc = DOCS.get(doc_key)
    if not doc:
        return text
    if len(text) >= _COMMENT_COLUMN - 1:  # long value: the comment goes on the line above
        return f"# {doc}\n{text}"
    return f"{text.ljust(_COMMENT_COLUMN)}# {doc}"


def _absent(key: str, doc_key: str) -> str:
    text = f"# {key} = {ABSENT_EXAMPLES.get(doc_key, '...')}"
    return f"{text.ljust(_COMMENT_COLUMN)}# {DOCS.get(doc_key, 'optional')}"


def _table_lines(prefix: str, cls, values: Dict[str, Any], doc_prefix: str) -> List[str]:
    lines = []
    for name in field_names(cls):
        doc_key = f"{doc_prefix}.{name}" if doc_prefix else name
        if name in values:
            lines.append(_line(name, values[name], doc_key))
        elif doc_key in ABSENT_EXAMPLES:
            lines.append(_absent(name, doc_key))
    return lines


def _header(title: str, doc: str) -> str:
    return f"{title.ljust(_COMMENT_COLUMN)}# {doc}" if doc else title


def dumps_spec(spec: AttackSpec) -> str:
    """The spec as a TOML document with comments (see the module docstring)."""
    d = spec_to_dict(spec)
    out = [f"# Attack spec {spec.name!r} for admm-attack (docs/tutorial-spec.md).",
           "# Run: admm-attack solve --spec THIS.toml --model mnist-cw --data mnist-test20 "
           "--out DIR",
           ""]
    for k in ("name", "description", "eps", "decision"):
        out.append(_line(k, d[k], k) if k in d else _absent(k, k))
    out += ["", _header("[loss]", TABLE_DOCS["loss"])]
    out += _table_lines("loss", LossSpec, d["loss"], "loss")
    for t in d["terms"]:
        out += ["", _header("[[terms]]", TABLE_DOCS["terms"])]
        for k in ("name", "kind", "role"):
            if k in t:
                out.append(_line(k, t[k], f"terms.{k}"))
        out.append("[terms.params]")
        out += [_line(p, v, f"terms.params.{p}") for p, v in t["params"].items()]
        if "groups" in t:
            out.append("[terms.groups]")
            out += _table_lines("groups", GroupSpec, t["groups"], "terms.groups")
    for name, cls in (("solver", SolverSpec), ("search", SearchSpec)):
        out += ["", _header(f"[{name}]", TABLE_DOCS[name])]
        out += _table_lines(name, cls, d[name], name)
    out.append("")
    if "refine" in d:
        out.append(_header("[refine]", TABLE_DOCS["refine"]))
        out += _table_lines("refine", RefineSpec, d["refine"], "refine")
    else:
        out += ["# No [refine] table: no refine stage. To add one (paper Sec. 4.2):",
                "# [refine]", "# quantile = 0.03", "# iterations = 200"]
    return "\n".join(out) + "\n"
