"""The spec schema: :class:`AttackSpec` <-> the nested dict of its TOML file, and ``--set``
overrides on that dict.

The layout mirrors :class:`attacks.spec.AttackSpec`: top-level ``name``/``description``/``eps``/
``decision``, tables ``[loss]``, ``[solver]``, ``[search]``, ``[refine]`` (absent: no refine)
and an array ``[[terms]]`` (``kind``, ``role``, ``name``, a ``params`` table and, for grouped
kinds, a ``groups`` table). Keys and their types are read off the attrs classes, so a field
added to a spec class is known here without edits.

:func:`spec_from_dict` checks the data before building the spec, so every error names the key
(``solver.rho``, ``terms.groups.params.weight``), what was expected and what was found.
Term kinds, their parameters and whether they take groups come from
:data:`attacks.terms.TERM_KINDS`.

Overrides (:func:`apply_overrides`) follow the TOML layout: ``eps``, ``decision``,
``loss.kappa``, ``solver.rho``, ``search.iterations``, ``refine.iterations``,
``terms.<name or index>.role``, ``terms.<name>.params.<parameter>``,
``terms.<name>.groups.<key>``. ``refine=false`` removes the refine stage, ``refine=true`` adds
one with default settings. Values are TOML scalars (``2``, ``0.5``, ``true``, ``"l2"``); a
value that is not valid TOML is taken as a string (``decision=l2``).
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from typing import Any, Dict, Iterable, List, Tuple

import attrs

from attacks.spec import (ROLES, AttackSpec, GroupSpec, LossSpec, RefineSpec, SearchSpec,
                          SolverSpec, SpecError, TermSpec)
from attacks.terms import TERM_KINDS

TABLES = {"loss": LossSpec, "solver": SolverSpec, "search": SearchSpec, "refine": RefineSpec}
TOP_KEYS = ("name", "description", "eps", "decision")
TERM_KEYS = ("name", "kind", "role", "params", "groups")
_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}
_ARTICLE = {"number": "a number", "integer": "an integer", "boolean": "true or false",
            "string": "a string", "table": "a table"}


def value_type(cls, name: str) -> str:
    """"number" | "integer" | "boolean" | "string": the TOML type of field ``name`` of ``cls``."""
    annotation = str(attrs.fields_dict(cls)[name].type).replace("typing.", "")
    if annotation.startswith("Optional[") and annotation.endswith("]"):
        annotation = annotation[len("Optional["):-1]
    return _TYPES.get(annotation, "string")


def field_names(cls) -> List[str]:
    return [f.name for f in attrs.fields(cls)]


def describe(value: Any) -> str:
    """A found value for an error message: ``'abc' (a string)``, ``a table``, ``2.5``."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def check_type(key: str, value: Any, kind: str) -> None:
    ok = {"number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "integer": isinstance(value, int) and not isinstance(value, bool),
          "boolean": isinstance(value, bool),
          "string": isinstance(value, str),
          "table": isinstance(value, dict)}[kind]
    if not ok:
        raise SpecError(f"{key}: expected {_ARTICLE[kind]}, found {describe(value)}")


def suggest(key: str, allowed) -> str:
    """`` (did you mean 'rho'?)`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(where: str, key: str, allowed, value=None) -> SpecError:
    what = "table" if isinstance(value, dict) else "key"
    shown = f"[{key}]" if what == "table" and where == "top level" else repr(key)
    return SpecError(f"{where}: unknown {what} {shown}{suggest(key, allowed)}; expected one of "
                     f"{', '.join(allowed)}")


def _rekey(prefix: str, cls, err: SpecError) -> SpecError:
    """Prefix an attrs validator's message (``rho: ...``) with its table (``solver.rho: ...``)."""
    msg = str(err)
    head = msg.split(":", 1)[0]
    if head.startswith(prefix + ".") or head.startswith(prefix + " "):
        return SpecError(msg)
    if head in field_names(cls):
        return SpecError(f"{prefix}.{msg}")
    return SpecError(f"{prefix}: {msg}")


def _table(prefix: str, cls, data: Any):
    """Build ``cls`` from a TOML table after checking keys and types."""
    check_type(prefix, data, "table")
    names = field_names(cls)
    for k, v in data.items():
        if k not in names:
            raise _unknown(prefix, k, names, v)
        check_type(f"{prefix}.{k}", v, value_type(cls, k))
    try:
        return cls(**data)
    except SpecError as e:
        raise _rekey(prefix, cls, e) from None


def term_label(i: int, term: Any) -> str:
    """How errors and ``--set`` address a term: ``terms.<name>``, else ``terms.<index>``."""
    name = term.get("name") if isinstance(term, dict) else None
    return f"terms.{name}" if isinstance(name, str) and name else f"terms.{i}"


def _term(i: int, data: Any) -> TermSpec:
    label = term_label(i, data)
    check_type(label, data, "table")
    kinds = sorted(TERM_KINDS)
    kind = data.get("kind")
    if kind is None:
        raise SpecError(f"{label}.kind: missing; expected one of {', '.join(kinds)}")
    check_type(f"{label}.kind", kind, "string")
    if kind not in TERM_KINDS:
        raise SpecError(f"{label}.kind: unknown kind {kind!r}{suggest(kind, kinds)}; expected "
                        f"one of {', '.join(kinds)}")
    defaults, grouped = TERM_KINDS[kind].params, TERM_KINDS[kind].grouped
    for k, v in data.items():
        if k not in TERM_KEYS:
            if k in defaults:
                raise SpecError(f"{label}: unknown key {k!r}; parameters of {kind} go in its "
                                "params table ([terms.params])")
            raise _unknown(label, k, TERM_KEYS, v)
    for k in ("name", "role"):
        if k in data:
            check_type(f"{label}.{k}", data[k], "string")
    role = data.get("role", "regularizer")
    if role not in ROLES:
        raise SpecError(f"{label}.role: expected one of {', '.join(ROLES)}, found {role!r}")
    params = data.get("params", {})
    check_type(f"{label}.params", params, "table")
    for p, v in params.items():
        if p not in defaults:
            raise SpecError(f"{label}.params: unknown parameter {p!r}{suggest(p, defaults)} "
                            f"for kind {kind}; expected among {', '.join(sorted(defaults))}")
        check_type(f"{label}.params.{p}", v, "number")
        if not v >= 0 or v == float("inf"):
            raise SpecError(f"{label}.params.{p}: expected a finite number >= 0, found {v!r}")
    groups = None
    if "groups" in data:
        if not grouped:
            raise SpecError(f"{label}.groups: kind {kind} acts on single pixels and takes no "
                            "groups table; remove it (group kinds: "
                            f"{', '.join(k for k in kinds if TERM_KINDS[k].grouped)})")
        groups = _table(f"{label}.groups", GroupSpec, data["groups"])
    elif grouped:
        raise SpecError(f"{label}.groups: missing; kind {kind} needs a groups table "
                        "([terms.groups], may be empty for the dataset defaults)")
    try:
        return TermSpec(kind=kind, role=role, params=dict(params), groups=groups,
                        name=data.get("name", ""))
    except SpecError as e:
        raise SpecError(f"{label}: {e}") from None


def spec_from_dict(data: Dict[str, Any]) -> AttackSpec:
    """Check ``data`` (a parsed TOML document) and build the :class:`AttackSpec`.

    Raises :class:`SpecError` naming the key, the expectation and what was found.
    """
    check_type("spec", data, "table")
    allowed = list(TOP_KEYS) + ["loss", "terms", "solver", "search", "refine"]
    for k, v in data.items():
        if k not in allowed:
            raise _unknown("top level", k, allowed, v)
    if "name" not in data:
        raise SpecError('name: missing; every spec needs a name (name = "my-attack")')
    for k in TOP_KEYS:
        if k in data:
            check_type(k, data[k], value_type(AttackSpec, k))
    terms = data.get("terms")
    if terms is None:
        raise SpecError("terms: missing; expected at least one [[terms]] table")
    if isinstance(terms, dict):
        raise SpecError("terms: expected an array of tables ([[terms]]), found a table ([terms])")
    if not isinstance(terms, list) or not terms:
        raise SpecError(f"terms: expected at least one [[terms]] table, found {describe(terms)}")
    built = {k: data[k] for k in TOP_KEYS if k in data}
    built["terms"] = [_term(i, t) for i, t in enumerate(terms)]
    for name, cls in TABLES.items():
        if name in data:
            built[name] = _table(name, cls, data[name])
    return AttackSpec(**built)  # its own errors name top-level keys (eps, decision, terms)


def _plain(obj) -> Dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in attrs.fields(type(obj))
            if getattr(obj, f.name) is not None}


def spec_to_dict(spec: AttackSpec) -> Dict[str, Any]:
    """The TOML document of ``spec`` (absent optional values are left out; term parameters are
    written in full, defaults included, so they can be edited)."""
    out: Dict[str, Any] = {"name": spec.name, "description": spec.description}
    if spec.eps is not None:
        out["eps"] = spec.eps
    out["decision"] = spec.decision
    out["loss"] = _plain(spec.loss)
    terms = []
    for t in spec.terms:
        defaults = TERM_KINDS[t.kind].defaults
        d = {"name": t.name} if t.name else {}
        d.update(kind=t.kind, role=t.role, params={**defaults, **t.params})
        if t.groups is not None:
            d["groups"] = _plain(t.groups)
        terms.append(d)
    out["terms"] = terms
    out["solver"] = _plain(spec.solver)
    out["search"] = _plain(spec.search)
    if spec.refine is not None:
        out["refine"] = _plain(spec.refine)
    return out


# -- overrides ---------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A TOML scalar, or the raw text when it is not one."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_override(item: str) -> Tuple[str, Any]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. --set solver.rho=2")
    return key, parse_value(value)


def _find_term(terms: list, ref: str, key: str) -> Dict[str, Any]:
    for t in terms:
        if isinstance(t, dict) and t.get("name") == ref:
            return t
    if ref.isdigit() and int(ref) < len(terms):
        return terms[int(ref)]
    names = [t.get("name") for t in terms if isinstance(t, dict) and t.get("name")]
    raise SpecError(f"--set {key}: no term {ref!r}; terms are addressed by name "
                    f"({', '.join(names) or 'none named'}) or index (0..{len(terms) - 1})")


def _set_term(data: Dict[str, Any], parts: list, key: str, value: Any) -> None:
    terms = data.get("terms")
    if not isinstance(terms, list) or not terms:
        raise SpecError(f"--set {key}: the spec has no [[terms]]")
    if len(parts) < 3:
        raise SpecError(f"--set {key}: expected terms.<name>.<key>, <key> among "
                        f"{', '.join(TERM_KEYS)}")
    term = _find_term(terms, parts[1], key)
    field, rest = parts[2], parts[3:]
    if field not in TERM_KEYS:
        raise SpecError(f"--set {key}: unknown term key {field!r}; expected one of "
                        f"{', '.join(TERM_KEYS)}")
    if field in ("params", "groups") and len(rest) != 1:
        raise SpecError(f"--set {key}: expected terms.<name>.{field}.<key>")
    if field not in ("params", "groups"):
        if rest:
            raise SpecError(f"--set {key}: {field} is a value, not a table")
        term[field] = value
        return
    kind = term.get("kind")
    if field == "params":
        allowed = sorted(TERM_KINDS[kind].params) if kind in TERM_KINDS else None
        if allowed is not None and rest[0] not in allowed:
            raise SpecError(f"--set {key}: kind {kind} has no parameter {rest[0]!r}"
                            f"{suggest(rest[0], allowed)}; parameters: {', '.join(allowed)}")
    else:
        if rest[0] not in field_names(GroupSpec):
            raise SpecError(f"--set {key}: unknown groups key {rest[0]!r}; expected one of "
                            f"{', '.join(field_names(GroupSpec))}")
        if "groups" not in term and not (kind in TERM_KINDS and TERM_KINDS[kind].grouped):
            raise SpecError(f"--set {key}: term {parts[1]} ({kind}) has no groups")
    table = term.setdefault(field, {})
    if not isinstance(table, dict):
        raise SpecError(f"--set {key}: {field} of term {parts[1]} is not a table")
    table[rest[0]] = value


def apply_override(data: Dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (dotted) to ``value`` in ``data`` in place; SpecError if no such key."""
    parts = key.split(".")
    head = parts[0]
    if head in TOP_KEYS and len(parts) == 1:
        data[head] = value
    elif head == "refine" and len(parts) == 1:
        if value is False:
            data.pop("refine", None)
        elif value is True:
            data.setdefault("refine", {})
        else:
            raise SpecError(f"--set refine: expected true or false, found {value!r} "
                            "(or set refine.<key>)")
    elif head in TABLES and len(parts) == 2:
        names = field_names(TABLES[head])
        if parts[1] not in names:
            raise SpecError(f"--set {key}: unknown key {parts[1]!r}{suggest(parts[1], names)} "
                            f"in [{head}]; expected one of {', '.join(names)}")
        if head == "refine" and "refine" not in data:
            raise SpecError(f"--set {key}: this spec has no refine stage; add it with "
                            "--set refine=true (or a [refine] table)")
        table = data.setdefault(head, {})
        if not isinstance(table, dict):
            raise SpecError(f"--set {key}: [{head}] is not a table")
        table[parts[1]] = value
    elif head == "terms":
        _set_term(data, parts, key, value)
    else:
        known = list(TOP_KEYS) + [f"{t}.<key>" for t in TABLES] + ["refine",
                                                                   "terms.<name>.<key>"]
        raise SpecError(f"--set {key}: unknown key; expected one of {', '.join(known)}")


def apply_overrides(data: Dict[str, Any], items: Iterable[str]) -> Dict[str, Any]:
    """A copy of ``data`` with every ``KEY=VALUE`` of ``items`` applied in order."""
    data = copy.deepcopy(data)
    for item in items:
        apply_override(data, *parse_override(item))
    return data
