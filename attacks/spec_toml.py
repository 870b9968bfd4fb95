"""Attack specs as TOML files: read one (a path or TOML text) and write one as commented TOML
(an exact writer for the fixed spec layout). Finding a spec by name (a built-in, a shipped
example): :mod:`attacks.catalogue`.

``loads(dumps_spec(s))`` gives back ``s``: floats are written with ``repr`` (shortest exact
form), integers as integers, strings as TOML basic strings. Every key carries a short comment;
optional values that are absent (``eps``, ``loss.c``, group ``size``/``stride``, the
``[refine]`` table) are shown as commented-out lines so a person sees what can be set. The
comments of term kinds and their parameters come from :data:`attacks.terms.TERM_KINDS`.

Like the dict codec (:mod:`attacks.schema`), this module works on the value types below the
whole spec and is handed the spec class to build (:meth:`attacks.spec.AttackSpec.from_toml`).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Dict, List, Union

import attrs

from attacks.schema import field_names, loads_toml, spec_from_dict, spec_to_dict
from attacks.search_spec import SECTIONS, SearchSpec
from attacks.spec_values import GroupSpec, LossSpec, RefineSpec, SolverSpec, SpecError
from attacks.terms import TERM_KINDS

#: the most a spec file may hold: a spec is a few hundred bytes (guards against /dev/zero)
MAX_SPEC_BYTES = 1 << 20

DOCS: Dict[str, str] = {
    "name": "short name, used in outputs",
    "description": "one line for `admm-attack specs list`",
    "eps": "ℓ∞ bound on δ; absent: none (x₀ + δ stays in [0, 1])",
    "decision": "rank successes by: objective | l0 | l1 | l2 | linf",
    "loss.kind": "C&W margin loss, paper eq. (3)",
    "loss.kappa": "confidence κ >= 0",
    "loss.c": "first c; absent: 0.5 MNIST, 0.25 CIFAR, 2.5 larger",
    "loss.project": "model sees x0 + P(z), the valid image (false: eq. 14)",
    "terms.name": "address for --set terms.<name>.…",
    "terms.role": "distortion (kept by refine) | regularizer",
    "terms.scale": "none | boundary: × (distance to boundary)^(2−degree)",
    "terms.groups.size": "group side; absent: 2 (3 overlapping), 13 above 64 px",
    "terms.groups.stride": "absent: default for size (= size if size is set)",
    "terms.groups.copies": "local (general-form consensus) | full (paper eq. 16)",
    "terms.groups.overlapping": "use the overlapping defaults (3×3, stride 2)",
    "solver.rho": "ADMM penalty ρ > 0",
    "solver.eta": "linearisation η; η_k = eta·√k with the sqrt schedule",
    "solver.eta_schedule": "sqrt | constant",
    "solver.adaptive_rho": "residual balancing of ρ",
    "solver.compact_below": "go on with the running rows alone below this fraction",
    "search.mode": "the search that runs: its table [search.<mode>] below",
    "search.iterations": "ADMM iterations of the solve (binary: of each step)",
    "search.track_every": "test the candidate for success every N iterations",
    "search.rescue_iterations": "more iterations for examples with no success yet",
    "search.budget": "most gradient evaluations per example, all stages",
    "search.start": "auto (pgd if eps) | zero | pgd: start from PGD's example",
    "search.start_steps": "pgd start: PGD steps (cross-entropy, random start)",
    "search.scale": "none | boundary: c and mu in units of c* = 2s/n",
    "search.shrink_steps": "last: shortest αδ still adversarial, bisection steps",
    "refine.quantile": "zero |δ| below this quantile of the non-zeros (eq. 19)",
    "refine.iterations": "ADMM iterations of the fixed-support re-solve (eq. 20)",
}
ABSENT_EXAMPLES = {"eps": "0.3", "loss.c": "0.5", "terms.groups.size": "2",
                   "terms.groups.stride": "2", "search.budget": "500"}
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


def key_doc(doc_key: str, kind: str = "") -> str:
    """The one-line doc of a spec key (``solver.rho``, ``terms.params.weight`` of ``kind``);
    term kinds and their parameters are documented in :data:`attacks.terms.TERM_KINDS`."""
    if doc_key == "terms.kind":
        return " | ".join(TERM_KINDS)
    if doc_key.startswith("terms.params.") and kind in TERM_KINDS:
        param = TERM_KINDS[kind].params.get(doc_key.removeprefix("terms.params."))
        return param.doc if param else ""
    section, _, name = doc_key.removeprefix("search.").partition(".")
    if doc_key.startswith("search.") and section in SECTIONS and name:
        field = attrs.fields_dict(SECTIONS[section]).get(name)
        return field.metadata.get("doc", "") if field else ""
    return DOCS.get(doc_key, "")


def _line(key: str, value: Any, doc_key: str, kind: str = "") -> str:
    text = f"{toml_key(key)} = {toml_value(value)}"
    doc = key_doc(doc_key, kind)
    if not doc:
        return text
    if len(text) >= _COMMENT_COLUMN - 1:  # long value: the comment goes on the line above
        return f"# {doc}\n{text}"
    return f"{text.ljust(_COMMENT_COLUMN)}# {doc}"


def _absent(key: str, doc_key: str) -> str:
    text = f"# {key} = {ABSENT_EXAMPLES.get(doc_key, '...')}"
    return f"{text.ljust(_COMMENT_COLUMN)}# {key_doc(doc_key) or 'optional'}"


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


def dumps_spec(spec) -> str:
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
        for k in ("name", "kind", "role", "scale"):
            if k in t:
                out.append(_line(k, t[k], f"terms.{k}"))
        out.append("[terms.params]")
        out += [_line(p, v, f"terms.params.{p}", t["kind"]) for p, v in t["params"].items()]
        if "groups" in t:
            out.append("[terms.groups]")
            out += _table_lines("groups", GroupSpec, t["groups"], "terms.groups")
    for name, cls in (("solver", SolverSpec), ("search", SearchSpec)):
        out += ["", _header(f"[{name}]", TABLE_DOCS[name])]
        out += _table_lines(name, cls, d[name], name)
    for name, cls in SECTIONS.items():
        out += ["", _header(f"[search.{name}]", f"mode {toml_value(name)}: {cls.doc}")]
        out += _table_lines(name, cls, d["search"][name], f"search.{name}")
    out.append("")
    if "refine" in d:
        out.append(_header("[refine]", TABLE_DOCS["refine"]))
        out += _table_lines("refine", RefineSpec, d["refine"], "refine")
    else:
        out += ["# No [refine] table: no refine stage. To add one (paper Sec. 4.2):",
                "# [refine]"] + [f"# {k} = {toml_value(v)}"
                                 for k, v in attrs.asdict(RefineSpec()).items()]
    return "\n".join(out) + "\n"


# -- reading ------------------------------------------------------------------------------------
def read_toml(path: Path) -> Dict[str, Any]:
    """The parsed TOML file ``path``; a :class:`SpecError` naming the file otherwise."""
    path = Path(path)
    try:
        if not path.is_file():
            if path.exists():
                raise SpecError(f"cannot read spec file {path}: not a regular file")
            raise SpecError(f"spec file not found: {path}")
        with path.open("rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read spec file {path}: {e.strerror or e}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: larger than {MAX_SPEC_BYTES >> 20} MiB; not a spec file")
    try:
        return loads_toml(raw.decode("utf-8-sig"))   # a byte-order mark is skipped
    except UnicodeDecodeError as e:
        raise SpecError(f"cannot read spec file {path}: not UTF-8 text ({e.reason})") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None


def read_spec(cls, source: Union[Path, str]):
    """A spec ``cls`` (an :class:`attacks.spec.AttackSpec`) from a TOML file (a :class:`Path`)
    or from TOML text (a ``str``)."""
    if isinstance(source, Path):
        data, label = read_toml(source), str(source)
    else:
        try:
            data, label = loads_toml(source), "spec"
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"not valid TOML: {e}") from None
    try:
        return spec_from_dict(cls, data)
    except SpecError as e:
        raise SpecError(f"{label}: {e}") from None
