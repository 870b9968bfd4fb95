"""The one error a caller can fix: it names the argument (or spec key), what was expected and
what was found. The command line prints it as one line and exits with status 2.

:func:`lookup` is the one way a name is looked up in a registry (built-in specs, baselines,
zoo models, datasets, searches, term kinds), so every "unknown name" reads alike.
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping, Type, TypeVar

V = TypeVar("V")


class UserError(ValueError):
    """Bad input from the user: a file, a name, an option or a spec value."""


def suggest(key: str, allowed) -> str:
    """`` (did you mean 'rho'?)`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def lookup(registry: Mapping[str, V], name: Any, what: str, *, where: str = "",
           error: Type[UserError] = UserError) -> V:
    """``registry[name]``; else ``error("[where: ]unknown WHAT 'name' (did you mean 'x'?);
    expected one of a, b, c")`` with the registry's names sorted."""
    if isinstance(name, str) and name in registry:
        return registry[name]
    hint = suggest(name, registry) if isinstance(name, str) else ""
    raise error(f"{where + ': ' if where else ''}unknown {what} {name!r}{hint}; expected one of "
                f"{', '.join(sorted(registry))}")
