"""Opt-in download of the standard MNIST / CIFAR-10 files, verified by SHA-256.

Nothing here runs unless a caller asks for it (``load_dataset(..., download=True)`` or
:func:`fetch_mnist` / :func:`fetch_cifar10`). Every file is streamed into a temporary file
next to its destination, hashed on the way, and moved into place only when its SHA-256
matches; on a mismatch or any error the temporary file is removed, so the cache never holds
a partial or corrupt file. The base URLs can be overridden (a mirror, or a local test server).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Optional, Union

from attacks.data._common import default_cache_dir
from attacks.data.cifar import CIFAR10_FILES, CIFAR10_SUBDIR
from attacks.data.idx import MNIST_FILES

MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
CIFAR10_BASE_URL = "https://www.cs.toronto.edu/~kriz/"

# SHA-256 of the standard files (the same bytes on every MNIST mirror).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_SHA256 = {
    CIFAR10_ARCHIVE: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
}

_CHUNK = 1 << 20


class DownloadError(OSError):
    """The file could not be fetched (network error, HTTP error, bad URL)."""


class ChecksumError(ValueError):
    """The fetched bytes do not have the expected SHA-256; nothing was written to the cache."""


def sha256_file(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _join(base_url: str, name: str) -> str:
    return base_url if base_url.endswith(name) else base_url.rstrip("/") + "/" + name


def download_file(url: str, dest: Union[str, Path], sha256: str, *, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` if the bytes hash to ``sha256``; return ``dest``.

    Raises :class:`ChecksumError` on a mismatch and :class:`DownloadError` on a network or
    HTTP error; in both cases no file is left at ``dest`` nor beside it.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"url must be http:// or https://, got {url!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    for chunk in iter(lambda: resp.read(_CHUNK), b""):
                        h.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as exc:
                raise DownloadError(f"could not download {url}: {exc}") from exc
        digest = h.hexdigest()
        if digest != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {url}: expected SHA-256 {sha256.lower()}, got {digest}; "
                f"the file was discarded (nothing written to {dest.parent})"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _data_dir(cache_dir: Optional[Union[str, Path]], name: str) -> Path:
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir() / "data") / name


def mnist_dir(cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """Where downloaded MNIST files live: ``<cache_dir or <cache>/data>/mnist``."""
    return _data_dir(cache_dir, "mnist")


def cifar10_dir(cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """Where downloaded CIFAR-10 files live: ``<cache_dir or <cache>/data>/cifar10``."""
    return _data_dir(cache_dir, "cifar10")


def fetch_mnist(
    split: Optional[str] = None,
    *,
    cache_dir: Optional[Union[str, Path]] = None,
    base_url: Optional[str] = None,
    timeout: float = 60.0,
) -> Path:
    """Download the MNIST IDX files (both splits, or one) into the cache; return the directory.

    Files already in the cache are kept (they only ever get there after verification).
    """
    splits = [split] if split is not None else list(MNIST_FILES)
    root = mnist_dir(cache_dir)
    for s in splits:
        if s not in MNIST_FILES:
            raise ValueError(f"split must be one of {sorted(MNIST_FILES)}, got {s!r}")
        for stem in MNIST_FILES[s]:
            name = stem + ".gz"
            if not (root / name).is_file():
                download_file(
                    _join(base_url or MNIST_BASE_URL, name), root / name, MNIST_SHA256[name],
                    timeout=timeout,
                )
    return root


def _extract_cifar(archive: Path, root: Path) -> None:
    """Copy only the expected regular ``*.bin`` members out of the tarball (no path tricks)."""
    wanted = {name for names in CIFAR10_FILES.values() for name in names}
    out_dir = root / CIFAR10_SUBDIR
    out_dir.mkdir(parents=True, exist_ok=True)
    found = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                p = PurePosixPath(member.name)
                if not (member.isfile() and p.name in wanted and p.parent.name == CIFAR10_SUBDIR):
                    continue
                src = tar.extractfile(member)
                fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{p.name}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
                    os.replace(tmp_name, out_dir / p.name)
                except BaseException:
                    Path(tmp_name).unlink(missing_ok=True)
                    raise
                found.add(p.name)
    except (tarfile.TarError, EOFError) as exc:
        raise ValueError(f"{archive}: not a readable tar.gz archive ({exc})") from exc
    missing = wanted - found
    if missing:
        raise ValueError(f"{archive}: missing members {sorted(missing)} under {CIFAR10_SUBDIR}/")


def fetch_cifar10(
    *,
    cache_dir: Optional[Union[str, Path]] = None,
    base_url: Optional[str] = None,
    timeout: float = 600.0,
    keep_archive: bool = False,
) -> Path:
    """Download and unpack the CIFAR-10 binary archive (~163 MB) into the cache; return the
    directory that holds ``cifar-10-batches-bin/``. The archive is deleted after unpacking
    unless ``keep_archive``."""
    root = cifar10_dir(cache_dir)
    out_dir = root / CIFAR10_SUBDIR
    wanted = [name for names in CIFAR10_FILES.values() for name in names]
    if all((out_dir / name).is_file() for name in wanted):
        return root
    archive = root / CIFAR10_ARCHIVE
    if not archive.is_file():
        download_file(
            _join(base_url or CIFAR10_BASE_URL, CIFAR10_ARCHIVE), archive,
            CIFAR10_SHA256[CIFAR10_ARCHIVE], timeout=timeout,
        )
    _extract_cifar(archive, root)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return root
