"""Reader for the IDX format of the original MNIST files (``*-idx3-ubyte[.gz]``).

The header is two zero bytes, a type code, the number of dimensions, then one big-endian
uint32 per dimension; the data follow, big-endian. Everything is validated: a truncated,
oversized or mislabelled file raises ``ValueError`` naming the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch

from attacks.data._common import check_n, to_image_tensor, to_label_tensor

# type code -> (numpy dtype, big-endian)
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MNIST_IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dimensions
MNIST_LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dimension

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the suffix
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt gzip stream ({exc})") from exc
    return raw


def read_idx(path: Union[str, Path], *, expected_magic: Optional[int] = None) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array of its declared shape."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    zero, type_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file (magic number 0x{magic:08x})")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(
            f"{path}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[type_code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header declares shape {tuple(dims)} ({expected} data bytes) "
            f"but the file holds {len(raw) - header} data bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):  # last: some mirrors
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"MNIST file {stem}.gz (or uncompressed {stem}) not found in {root}")


def find_mnist_files(root: Union[str, Path], split: str) -> Tuple[Path, Path]:
    if split not in MNIST_FILES:
        raise ValueError(f"split must be one of {sorted(MNIST_FILES)}, got {split!r}")
    root = Path(root)
    img_stem, lbl_stem = MNIST_FILES[split]
    return _find(root, img_stem), _find(root, lbl_stem)


def read_mnist_pair(
    images_path: Union[str, Path], labels_path: Union[str, Path], *, n: Optional[int] = None,
    num_classes: int = 10
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Read an images/labels pair of MNIST-style IDX files -> ((B, 1, H, W) in [0, 1], (B,)
    int64)."""
    n = check_n(n)
    images = read_idx(images_path, expected_magic=MNIST_IMAGES_MAGIC)
    labels = read_idx(labels_path, expected_magic=MNIST_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise ValueError(f"{labels_path}: label {int(labels.max())} outside 0..{num_classes - 1}")
    if n is not None:
        images, labels = images[:n], labels[:n]
    return to_image_tensor(images), to_label_tensor(labels)


def load_mnist_idx(
    root: Union[str, Path], split: str = "test", *, n: Optional[int] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """MNIST (or Fashion-MNIST: same file names) from a directory holding the standard IDX files."""
    images_path, labels_path = find_mnist_files(root, split)
    images, labels = read_mnist_pair(images_path, labels_path, n=n)
    if images.shape[1:] != (1, 28, 28):
        raise ValueError(f"{images_path}: MNIST images must be 28x28, got "
                         f"{tuple(images.shape[2:])}")
    return images, labels
