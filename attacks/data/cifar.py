"""Reader for the *binary* version of CIFAR-10 (``data_batch_{1..5}.bin``, ``test_batch.bin``).

Each record is 3073 bytes: one label byte, then 1024 red, 1024 green and 1024 blue pixels,
row-major. The python (pickle) version of the data set is deliberately not supported: this
project never unpickles files from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

from attacks.data._common import check_n, to_image_tensor, to_label_tensor

RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
CIFAR10_SUBDIR = "cifar-10-batches-bin"


def read_cifar_binary(
    paths: Union[str, Path, List[Union[str, Path]], Tuple[Union[str, Path], ...]],
    *,
    n: Optional[int] = None,
    num_classes: int = 10,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Read one or more CIFAR-10 binary batch files -> ((B, 3, 32, 32) in [0, 1], (B,) int64).

    With ``n``, only the first ``n`` records (across the files, in order) are read.
    """
    n = check_n(n)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    chunks = []
    remaining = n
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR-10 binary file not found: {path}")
        size = path.stat().st_size
        if size == 0 or size % RECORD_BYTES:
            raise ValueError(
                f"{path}: {size} bytes is not a whole number of {RECORD_BYTES}-byte CIFAR-10 "
                "records (is this the binary version of CIFAR-10?)"
            )
        count = size // RECORD_BYTES if remaining is None else min(remaining, size // RECORD_BYTES)
        records = np.fromfile(path, dtype=np.uint8, count=count * RECORD_BYTES)
        records = records.reshape(count, RECORD_BYTES)
        bad = records[:, 0] >= num_classes
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{path}: record {i} has label {int(records[i, 0])}, outside 0..{num_classes - 1}"
            )
        chunks.append(records)
        if remaining is not None:
            remaining -= count
            if remaining == 0:
                break
    records = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return to_image_tensor(images), to_label_tensor(records[:, 0])


def find_cifar10_files(root: Union[str, Path], split: str) -> List[Path]:
    """The batch files of ``split`` under ``root`` or ``root/cifar-10-batches-bin``."""
    if split not in CIFAR10_FILES:
        raise ValueError(f"split must be one of {sorted(CIFAR10_FILES)}, got {split!r}")
    root = Path(root)
    for base in (root, root / CIFAR10_SUBDIR):
        files = [base / name for name in CIFAR10_FILES[split]]
        if all(f.is_file() for f in files):
            return files
    raise FileNotFoundError(
        f"CIFAR-10 binary files {', '.join(CIFAR10_FILES[split])} not found in {root} "
        f"or {root / CIFAR10_SUBDIR}"
    )


def load_cifar10_binary(
    root: Union[str, Path], split: str = "test", *, n: Optional[int] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 from a directory holding the binary batch files."""
    return read_cifar_binary(find_cifar10_files(root, split), n=n)
