"""Attack specs as TOML files: read one (a path, TOML text, a built-in name or a shipped
example) and write one as commented TOML (an exact writer for the fixed spec layout).

``loads(dumps_spec(s))`` gives back ``s``: floats are written with ``repr`` (shortest exact
form), integers as integers, strings as TOML basic strings. Every key carries a short comment;
optional values that are absent (``eps``, ``loss.c``, group ``size``/``stride``, the
``[refine]`` table) are shown as commented-out lines so a person sees what can be set. The
comments of term kinds and their parameters come from :data:`attacks.terms.TERM_KINDS`.

Shipped example specs (formulations that are none of the built-ins, written only as TOML) live
in ``attacks/specs/*.toml``; :func:`load_spec` finds them by name.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple, Union

import attrs
import tomlkit

from attacks.builtin import BUILTIN, builtin_spec
from attacks.schema import apply_overrides, field_names, spec_from_dict, spec_to_dict
from attacks.spec import (AttackSpec, GroupSpec, LossSpec, RefineSpec, SearchSpec, SolverSpec,
                          SpecError)
from attacks.terms import TERM_KINDS

SPEC_DIR = Path(__file__).resolve().parent / "specs"
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
    "terms.groups.size": "group side; absent: 2 (3 overlapping), 13 above 64 px",
    "terms.groups.stride": "absent: default for size (= size if size is set)",
    "terms.groups.copies": "local (general-form consensus) | full (paper eq. 16)",
    "terms.groups.overlapping": "use the overlapping defaults (3×3, stride 2)",
    "solver.rho": "ADMM penalty ρ > 0",
    "solver.eta": "linearisation η; η_k = eta·√k with the sqrt schedule",
    "solver.eta_schedule": "sqrt | constant",
    "solver.adaptive_rho": "residual balancing of ρ",
    "search.mode": "lagrangian (c a multiplier, one solve) | binary (paper)",
    "search.iterations": "ADMM iterations of the solve (binary: of each step)",
    "search.track_every": "test the candidate for success every N iterations",
    "search.rescue_iterations": "more iterations for examples with no success yet",
    "search.mu": "lagrangian: c += mu·(margin + κ) at every check",
    "search.mu_growth": "lagrangian: mu ×= this where the margin stalls (rescue)",
    "search.mu_growth_limit": "lagrangian: mu grows to at most mu × this",
    "search.steps": "binary: solves per example over the constant c",
    "search.growth": "binary: multiply c by this until a success bounds it",
    "search.warm_start": "binary: start each solve from the best success so far",
    "search.patience_tol": "binary: stop when a success improves by < this",
    "search.budget": "most gradient evaluations per example, all stages",
    "search.start": "auto (pgd if eps) | zero | pgd: start from PGD",
    "search.start_steps": "pgd start: PGD steps (cross-entropy, random start)",
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
        out += [_line(p, v, f"terms.params.{p}", t["kind"]) for p, v in t["params"].items()]
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
                "# [refine]"] + [f"# {k} = {toml_value(v)}"
                                 for k, v in attrs.asdict(RefineSpec()).items()]
    return "\n".join(out) + "\n"


# -- reading ------------------------------------------------------------------------------------
def example_specs() -> Dict[str, Path]:
    """Name (file stem) -> path of every shipped ``*.toml`` spec, sorted by name."""
    return {p.stem: p for p in sorted(SPEC_DIR.glob("*.toml"))}


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
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise SpecError(f"cannot read spec file {path}: not UTF-8 text ({e.reason})") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None


def read_spec(source: Union[Path, str]) -> AttackSpec:
    """A spec from a TOML file (a :class:`Path`) or from TOML text (a ``str``)."""
    if isinstance(source, Path):
        data, label = read_toml(source), str(source)
    else:
        try:
            data, label = tomllib.loads(source), "spec"
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"not valid TOML: {e}") from None
    try:
        return spec_from_dict(data)
    except SpecError as e:
        raise SpecError(f"{label}: {e}") from None


@attrs.frozen
class LoadedSpec:
    """A spec found by name, with where it came from and the overrides applied to it."""

    spec: AttackSpec
    origin: str          # "builtin:strattack", "example:<name>" or the file path
    overrides: Tuple[str, ...] = ()
    path: Union[Path, None] = None   # the file read, for example specs and files


def _source(name: str) -> Tuple[Dict[str, Any], str, str, Union[Path, None]]:
    """(data, origin, label for errors, file) of a spec name or path."""
    looks_like_path = name.endswith(".toml") or "/" in name or "\\" in name
    if not looks_like_path:
        if name in BUILTIN:
            return (spec_to_dict(builtin_spec(name)), f"builtin:{name}", f"built-in spec {name}",
                    None)
        examples = example_specs()
        if name in examples:
            path = examples[name]
            return read_toml(path), f"example:{name}", str(path), path
        if not Path(name).is_file():
            raise SpecError(
                f"unknown spec {name!r}: expected a built-in name ({', '.join(BUILTIN)}), a "
                f"shipped example ({', '.join(examples) or 'none'}) or a path to a .toml file")
    path = Path(name).expanduser()
    return read_toml(path), str(path), str(path), path


def load_spec(name: str, overrides: Iterable[str] = ()) -> LoadedSpec:
    """The validated spec named by ``name`` (a built-in, a shipped example or a TOML file)
    with ``KEY=VALUE`` ``overrides`` applied; every error is a :class:`SpecError` naming the
    file and the key."""
    overrides = tuple(overrides)
    data, origin, label, path = _source(name)
    data = apply_overrides(data, overrides)
    try:
        spec = spec_from_dict(data)
    except SpecError as e:
        via = " (after --set)" if overrides else ""
        raise SpecError(f"{label}{via}: {e}") from None
    return LoadedSpec(spec, origin, overrides, path)


def rewrite_toml(text: str, overrides: Iterable[str]) -> str:
    """``text`` (a spec's TOML) with ``KEY=VALUE`` ``overrides`` applied in place: the user's
    comments, order and layout are kept (tomlkit), only the values set change. The result is
    validated like any spec file."""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as e:
        raise SpecError(f"not valid TOML: {e}") from None
    doc = apply_overrides(doc, overrides)
    spec_from_dict(doc.unwrap())
    return tomlkit.dumps(doc)
