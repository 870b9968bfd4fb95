"""``--set KEY=VALUE`` overrides, applied to a spec's TOML data before validation.

Keys follow the TOML layout: ``eps``, ``decision``, ``loss.kappa``, ``solver.rho``,
``search.iterations``, ``refine.iterations``, ``terms.<name or index>.role``,
``terms.<name>.params.<parameter>``, ``terms.<name>.groups.<key>``. ``refine=false`` removes
the refine stage, ``refine=true`` adds one with default settings. Values are TOML scalars
(``2``, ``0.5``, ``true``, ``"l2"``); a value that is not valid TOML is taken as a string
(``decision=l2``).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, Tuple

from attacks.spec import TERM_KINDS, GroupSpec, SpecError
from cli.spec_dict import TABLES, TERM_KEYS, TOP_KEYS, field_names, suggest
from cli.tomlcompat import tomllib


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
        allowed = sorted(TERM_KINDS[kind][1]) if kind in TERM_KINDS else None
        if allowed is not None and rest[0] not in allowed:
            raise SpecError(f"--set {key}: kind {kind} has no parameter {rest[0]!r}"
                            f"{suggest(rest[0], allowed)}; parameters: {', '.join(allowed)}")
    else:
        if rest[0] not in field_names(GroupSpec):
            raise SpecError(f"--set {key}: unknown groups key {rest[0]!r}; expected one of "
                            f"{', '.join(field_names(GroupSpec))}")
        if "groups" not in term and not (kind in TERM_KINDS and TERM_KINDS[kind][2]):
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
