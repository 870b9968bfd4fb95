"""The catalogue of attack specs: find one by name — a built-in (:mod:`attacks.builtin`), a
shipped example (``attacks/specs/*.toml``: formulations that are none of the built-ins, written
only as TOML) or a TOML file — with ``KEY=VALUE`` overrides applied, and rewrite a spec file
with overrides keeping its comments. The top of the spec layers: it imports the spec, its
codec and its TOML reader, nothing imports it back."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

import attrs
import tomlkit

from attacks.builtin import BUILTIN, builtin_spec
from attacks.schema import apply_overrides, spec_from_dict
from attacks.spec import AttackSpec
from attacks.spec_toml import read_toml
from attacks.spec_values import SpecError

SPEC_DIR = Path(__file__).resolve().parent / "specs"


def example_specs() -> Dict[str, Path]:
    """Name (file stem) -> path of every shipped ``*.toml`` spec, sorted by name."""
    return {p.stem: p for p in sorted(SPEC_DIR.glob("*.toml"))}


@attrs.frozen
class LoadedSpec:
    """A spec found by name, with where it came from and the overrides applied to it."""

    spec: AttackSpec
    origin: str          # "builtin:strattack", "example:<name>" or the file path
    overrides: Tuple[str, ...] = ()
    path: Optional[Path] = None   # the file read, for example specs and files


def _looks_like_path(name: str) -> bool:
    return name.endswith(".toml") or "/" in name or "\\" in name


def _file(name: str) -> Tuple[Path, str]:
    """(file, origin) of a spec name that is not a built-in."""
    if not _looks_like_path(name):
        examples = example_specs()
        if name in examples:
            return examples[name], f"example:{name}"
        if not Path(name).is_file():
            raise SpecError(
                f"unknown spec {name!r}: expected a built-in name ({', '.join(BUILTIN)}), a "
                f"shipped example ({', '.join(examples) or 'none'}) or a path to a .toml file")
    path = Path(name).expanduser()
    return path, str(path)


def load_spec(name: str, overrides: Iterable[str] = ()) -> LoadedSpec:
    """The validated spec named by ``name`` (a built-in, a shipped example or a TOML file)
    with ``KEY=VALUE`` ``overrides`` applied; every error is a :class:`SpecError` naming the
    file and the key. A built-in without overrides is the built-in itself (no round trip)."""
    overrides = tuple(overrides)
    if name in BUILTIN:
        if not overrides:
            return LoadedSpec(builtin_spec(name), f"builtin:{name}")
        data, origin, label, path = (builtin_spec(name).to_dict(), f"builtin:{name}",
                                     f"built-in spec {name}", None)
    else:
        path, origin = _file(name)
        data, label = read_toml(path), str(path)
    data = apply_overrides(data, overrides)
    try:
        spec = spec_from_dict(AttackSpec, data)
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
    spec_from_dict(AttackSpec, doc.unwrap())
    return tomlkit.dumps(doc)
