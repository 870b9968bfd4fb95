"""``tomllib`` (Python >= 3.11), or the ``tomli`` backport on Python 3.10."""

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["tomllib"]
