"""Find, read, override and validate an attack spec given on the command line.

``--spec`` is a built-in name (``strattack``...), a shipped example (``sparse-group-lasso``...)
or a path to a TOML file. Every failure is a :class:`cli.errors.UserError` that names the
file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

import attrs

from attacks.builtin import BUILTIN, builtin_spec
from attacks.spec import AttackSpec, SpecError
from cli.errors import UserError
from cli.overrides import apply_overrides
from cli.spec_dict import spec_from_dict, spec_to_dict
from cli.specs import example_specs
from cli.tomlcompat import tomllib


@attrs.frozen
class LoadedSpec:
    spec: AttackSpec
    origin: str          # "builtin:strattack", "example:<path>" or the file path
    overrides: Tuple[str, ...] = ()


def read_toml(path: Path) -> Dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"spec file not found: {path}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read spec file {path}: {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None


def _source(name: str) -> Tuple[Dict[str, Any], str, str]:
    """(data, origin, label for errors) of a spec name or path."""
    looks_like_path = name.endswith(".toml") or "/" in name or "\\" in name
    if not looks_like_path:
        if name in BUILTIN:
            return spec_to_dict(builtin_spec(name)), f"builtin:{name}", f"built-in spec {name}"
        examples = example_specs()
        if name in examples:
            path = examples[name]
            return read_toml(path), f"example:{name}", str(path)
        if not Path(name).is_file():
            raise UserError(
                f"unknown spec {name!r}: expected a built-in name ({', '.join(BUILTIN)}), a "
                f"shipped example ({', '.join(examples) or 'none'}) or a path to a .toml file")
    path = Path(name).expanduser()
    return read_toml(path), str(path), str(path)


def load_spec(name: str, overrides: Iterable[str] = ()) -> LoadedSpec:
    """The validated spec named by ``name`` with ``--set`` ``overrides`` applied."""
    overrides = tuple(overrides)
    data, origin, label = _source(name)
    try:
        data = apply_overrides(data, overrides)
    except SpecError as e:
        raise UserError(str(e)) from None
    try:
        spec = spec_from_dict(data)
    except SpecError as e:
        via = " (after --set)" if overrides else ""
        raise UserError(f"{label}{via}: {e}") from None
    return LoadedSpec(spec, origin, overrides)


def attack_sets(sets: List[str], names: List[str]) -> List[List[str]]:
    """The ``--set`` overrides of each attack: ``KEY=VALUE`` applies to every attack,
    ``NAME:KEY=VALUE`` only to the attack given as NAME in --attacks."""
    per: List[List[str]] = [[] for _ in names]
    for item in sets:
        key = item.partition("=")[0]
        if ":" not in key:
            for p in per:
                p.append(item)
            continue
        who, _, rest = item.partition(":")
        if who.strip() not in names:
            raise UserError(f"--set {item}: no attack {who.strip()!r} in --attacks "
                            f"({', '.join(names)}); NAME:KEY=VALUE sets KEY of attack NAME only")
        for i, name in enumerate(names):
            if name == who.strip():
                per[i].append(rest)
    return per
