"""The dict codec of attack specs: check a nested dict (a parsed TOML document) and build the
spec from it, write a spec back as one, and apply ``KEY=VALUE`` overrides to one.

The layout mirrors the value types: top-level ``name``/``description``/``eps``/``decision``,
tables ``[loss]``, ``[solver]``, ``[search]`` (with one sub-table per search,
:data:`attacks.search_spec.SECTIONS`), ``[refine]`` (absent: no refine) and an array
``[[terms]]`` (``kind``, ``role``, ``name``, a ``params`` table and, for grouped kinds, a
``groups`` table). Keys and their types are read off the attrs classes, so a field added to a
spec class is known here without edits. This module knows the value types below it
(:mod:`attacks.spec_values`, :mod:`attacks.search_spec`), never the whole spec: the caller
passes the class to build (:meth:`attacks.spec.AttackSpec.from_dict`).

:func:`spec_from_dict` checks the structure and the types of the data, so every error names the
key (``solver.rho``, ``terms.groups.params.weight``), what was expected and what was found; the
rules of a term are the term's own (:func:`attacks.spec_values.check_term`).

Overrides (:func:`apply_overrides`) follow the TOML layout: ``eps``, ``decision``,
``loss.kappa``, ``solver.rho``, ``search.iterations``, ``search.binary.steps``,
``refine.iterations``, ``terms.<name or index>.role``, ``terms.<name>.params.<parameter>``,
``terms.<name>.groups.<key>``. ``refine=false`` removes the refine stage, ``refine=true`` adds
one with default settings. Values are TOML scalars (``2``, ``0.5``, ``true``, ``"l2"``); a
value that is not valid TOML is taken as a string (``decision=l2``).

The flat search keys of the older layout (``search.mu``, ``search.steps``: now
``search.lagrangian.mu``, ``search.binary.steps``) are still read, in files and in overrides,
with a :class:`attacks.spec_values.DeprecatedSpecKey` warning naming the new key.
"""

from __future__ import annotations

import copy
import tomllib
import warnings
from typing import Any, Dict, Iterable, List, Tuple

import attrs

from attacks.errors import suggest
from attacks.search_spec import SECTIONS, SearchSpec
from attacks.spec_values import (DeprecatedSpecKey, GroupSpec, LossSpec, RefineSpec,
                                 SolverSpec, SpecError, TermSpec, describe)
from attacks.terms import TERM_KINDS

TABLES = {"loss": LossSpec, "solver": SolverSpec, "search": SearchSpec, "refine": RefineSpec}
TOP_KEYS = ("name", "description", "eps", "decision")
TERM_KEYS = ("name", "kind", "role", "scale", "params", "groups")
_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}
#: how deep a spec document nests: top level > [[terms]] > a term > params > value is 4
MAX_DEPTH = 8
_ARTICLE = {"number": "a number", "integer": "an integer", "boolean": "true or false",
            "string": "a string", "table": "a table"}


def value_type(cls, name: str) -> str:
    """"number" | "integer" | "boolean" | "string": the TOML type of field ``name`` of ``cls``."""
    declared = attrs.fields_dict(cls)[name].type  # a string under postponed annotations
    annotation = (declared.__name__ if isinstance(declared, type) else str(declared)) \
        .replace("typing.", "")
    if annotation.startswith("Optional[") and annotation.endswith("]"):
        annotation = annotation[len("Optional["):-1]
    return _TYPES.get(annotation, "string")


def field_names(cls) -> List[str]:
    """The keys of ``cls``'s table: its fields (a search's sub-tables, see :func:`table_keys`)."""
    return [f.name for f in attrs.fields(cls) if f.name != "sections"]


def table_keys(name: str) -> List[str]:
    """Every key of the top-level table ``name``: ``[search]`` also holds a sub-table per
    registered search."""
    return field_names(TABLES[name]) + (list(SECTIONS) if name == "search" else [])


def check_type(key: str, value: Any, kind: str) -> None:
    ok = {"number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "integer": isinstance(value, int) and not isinstance(value, bool),
          "boolean": isinstance(value, bool),
          "string": isinstance(value, str),
          "table": isinstance(value, dict)}[kind]
    if not ok:
        raise SpecError(f"{key}: expected {_ARTICLE[kind]}, found {describe(value)}")


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


def _table(prefix: str, cls, data: Any, built: Dict[str, Any] = None):
    """Build ``cls`` from a TOML table after checking keys and types (``built``: entries
    already built from its sub-tables)."""
    check_type(prefix, data, "table")
    names = field_names(cls)
    allowed = names + list(built or ())
    for k, v in data.items():
        if k not in names:
            if k not in (built or ()):
                raise _unknown(prefix, k, allowed, v)
            continue
        check_type(f"{prefix}.{k}", v, value_type(cls, k))
    try:
        return cls(**{k: v for k, v in data.items() if k in names}, **(built or {}))
    except SpecError as e:
        raise _rekey(prefix, cls, e) from None


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; write {new} (the key of its search's own table)",
                  DeprecatedSpecKey, stacklevel=4)


def legacy_search_key(key: str, mode: Any) -> str:
    """The section a flat ``[search]`` key of the older layout belongs to (``mu`` ->
    ``lagrangian``), preferring the search ``mode`` runs; ``""`` when none has it."""
    owners = [n for n, cls in SECTIONS.items() if key in field_names(cls)]
    return mode if mode in owners else (owners[0] if owners else "")


def _search(data: Any) -> SearchSpec:
    """``[search]``: its own keys, one sub-table per search, and the flat keys of the older
    layout moved into their search's sub-table (with a :class:`DeprecatedSpecKey` warning)."""
    check_type("search", data, "table")
    data = dict(data)
    for key in [k for k in data if k not in field_names(SearchSpec) and k not in SECTIONS]:
        owner = legacy_search_key(key, data.get("mode", SearchSpec().mode))
        if owner:
            section = data.setdefault(owner, {})
            if isinstance(section, dict) and key in section:
                raise SpecError(f"search.{key}: set twice, also as search.{owner}.{key}; keep "
                                "the second")
            _deprecated(f"search.{key}", f"search.{owner}.{key}")
            data[owner] = {**section, key: data.pop(key)} if isinstance(section, dict) \
                else section
    sections = {name: _table(f"search.{name}", cls, data[name])
                for name, cls in SECTIONS.items() if name in data}
    return _table("search", SearchSpec, {k: v for k, v in data.items() if k not in sections},
                  {"sections": sections} if sections else {})


def term_label(i: int, term: Any) -> str:
    """How errors and ``--set`` address a term: ``terms.<name>``, else ``terms.<index>``."""
    name = term.get("name") if isinstance(term, dict) else None
    return f"terms.{name}" if isinstance(name, str) and name else f"terms.{i}"


def _term(i: int, data: Any) -> TermSpec:
    """The layout of one ``[[terms]]`` table; its rules are the term's own (TermSpec)."""
    label = term_label(i, data)
    check_type(label, data, "table")
    kind = data.get("kind")
    if kind is None:
        raise SpecError(f"{label}.kind: missing; expected one of {', '.join(sorted(TERM_KINDS))}")
    check_type(f"{label}.kind", kind, "string")
    params = TERM_KINDS[kind].params if kind in TERM_KINDS else {}
    for k, v in data.items():
        if k not in TERM_KEYS:
            if k in params:
                raise SpecError(f"{label}: unknown key {k!r}; parameters of {kind} go in its "
                                "params table ([terms.params])")
            raise _unknown(label, k, TERM_KEYS, v)
    for k in ("name", "role", "scale"):
        if k in data:
            check_type(f"{label}.{k}", data[k], "string")
    check_type(f"{label}.params", data.get("params", {}), "table")
    groups = data.get("groups")
    if groups is not None and kind in TERM_KINDS and TERM_KINDS[kind].grouped:
        groups = _table(f"{label}.groups", GroupSpec, groups)
    term = dict(kind=kind, role=data.get("role", "regularizer"),
                params=dict(data.get("params", {})), groups=groups, name=data.get("name", ""),
                scale=data.get("scale", "none"))
    try:
        return TermSpec(**term)
    except SpecError as e:  # TermSpec names itself terms.<name or kind>; here: <name or index>
        own = TermSpec.label_of(term["name"], kind)
        raise SpecError(label + str(e).removeprefix(own)) from None


def spec_from_dict(cls, data: Dict[str, Any]):
    """Check ``data`` (a parsed TOML document) and build the spec ``cls`` (an
    :class:`attacks.spec.AttackSpec`) from it.

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
            check_type(k, data[k], value_type(cls, k))
    terms = data.get("terms")
    if terms is None:
        raise SpecError("terms: missing; expected at least one [[terms]] table")
    if isinstance(terms, dict):
        raise SpecError("terms: expected an array of tables ([[terms]]), found a table ([terms])")
    if not isinstance(terms, list) or not terms:
        raise SpecError(f"terms: expected at least one [[terms]] table, found {describe(terms)}")
    built = {k: data[k] for k in TOP_KEYS if k in data}
    built["terms"] = [_term(i, t) for i, t in enumerate(terms)]
    for name, table in TABLES.items():
        if name in data:
            built[name] = _search(data[name]) if name == "search" else \
                _table(name, table, data[name])
    return cls(**built)  # its own errors name top-level keys (eps, decision, terms)


def _plain(obj) -> Dict[str, Any]:
    return {name: getattr(obj, name) for name in field_names(type(obj))
            if getattr(obj, name) is not None}


def spec_to_dict(spec) -> Dict[str, Any]:
    """The TOML document of ``spec`` (absent optional values are left out; term parameters and
    every search's section are written in full, defaults included, so they can be edited)."""
    out: Dict[str, Any] = {"name": spec.name, "description": spec.description}
    if spec.eps is not None:
        out["eps"] = spec.eps
    out["decision"] = spec.decision
    out["loss"] = _plain(spec.loss)
    terms = []
    for t in spec.terms:
        defaults = TERM_KINDS[t.kind].defaults
        d = {"name": t.name} if t.name else {}
        d.update(kind=t.kind, role=t.role, scale=t.scale, params={**defaults, **t.params})
        if t.groups is not None:
            d["groups"] = _plain(t.groups)
        terms.append(d)
    out["terms"] = terms
    out["solver"] = _plain(spec.solver)
    out["search"] = {**_plain(spec.search),
                     **{name: _plain(spec.search.section(name)) for name in SECTIONS}}
    if spec.refine is not None:
        out["refine"] = _plain(spec.refine)
    return out


# -- TOML text ---------------------------------------------------------------------------
def loads_toml(text: str) -> Dict[str, Any]:
    """``tomllib.loads(text)`` (its ``TOMLDecodeError`` passes through); what else it cannot
    take — an integer beyond Python's digit limit, values nested beyond the recursion limit —
    and a document nested deeper than :data:`MAX_DEPTH` are a :class:`SpecError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except RecursionError:
        data = None
    except ValueError as e:  # int() of more digits than sys.get_int_max_str_digits()
        raise SpecError(f"not valid TOML: {str(e).split(';')[0]}") from None
    stack = [(data, 0)]
    while stack:  # iterative: deep documents are what this refuses
        value, depth = stack.pop()
        if depth > MAX_DEPTH or (value is None and depth == 0):
            raise SpecError(f"nested deeper than {MAX_DEPTH} levels; not a spec")
        inner = value.values() if isinstance(value, dict) else \
            value if isinstance(value, list) else ()
        stack.extend((v, depth + 1) for v in inner)
    return data


# -- overrides ---------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A TOML scalar, or the raw text when it is not one."""
    try:
        return loads_toml(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_override(item: str) -> Tuple[str, Any]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. --set solver.rho=2")
    try:
        return key, parse_value(value)
    except SpecError as e:
        raise SpecError(f"--set {key}: {e}") from None


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


def _known_key(key: str, name: str, where: str, names: List[str]) -> None:
    if name not in names:
        raise SpecError(f"--set {key}: unknown key {name!r}{suggest(name, names)} "
                        f"in [{where}]; expected one of {', '.join(names)}")


def _set_key(data: Dict[str, Any], tables: List[str], key: str, value: Any,
             names: List[str]) -> None:
    """Set ``data[tables...][name] = value``, the last part of ``key``, among ``names``."""
    where = ".".join(tables)
    _known_key(key, key.rsplit(".", 1)[1], where, names)
    for table in tables:
        data = data.setdefault(table, {})
        if not isinstance(data, dict):
            raise SpecError(f"--set {key}: [{where}] is not a table")
    data[key.rsplit(".", 1)[1]] = value


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
    elif head == "search" and len(parts) == 2 and parts[1] not in field_names(SearchSpec) \
            and legacy_search_key(parts[1], data.get("search", {}).get("mode")):
        owner = legacy_search_key(parts[1], data.get("search", {}).get("mode"))
        _deprecated(f"--set {key}", f"--set search.{owner}.{parts[1]}")
        apply_override(data, f"search.{owner}.{parts[1]}", value)
    elif head in TABLES and len(parts) == 2:
        if head == "refine" and "refine" not in data:
            _known_key(key, parts[1], head, field_names(RefineSpec))
            raise SpecError(f"--set {key}: this spec has no refine stage; add it with "
                            "--set refine=true (or a [refine] table)")
        _set_key(data, [head], key, value, field_names(TABLES[head]))
    elif head == "search" and len(parts) == 3 and parts[1] in SECTIONS:
        _set_key(data, parts[:2], key, value, field_names(SECTIONS[parts[1]]))
    elif head == "terms":
        _set_term(data, parts, key, value)
    else:
        known = list(TOP_KEYS) + [f"{t}.<key>" for t in TABLES] + [
            f"search.{name}.<key>" for name in SECTIONS] + ["refine", "terms.<name>.<key>"]
        raise SpecError(f"--set {key}: unknown key; expected one of {', '.join(known)}")


def apply_overrides(data: Dict[str, Any], items: Iterable[str]) -> Dict[str, Any]:
    """A copy of ``data`` with every ``KEY=VALUE`` of ``items`` applied in order."""
    data = copy.deepcopy(data)
    for item in items:
        apply_override(data, *parse_override(item))
    return data
