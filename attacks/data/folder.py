"""Load a folder of PNG/JPEG images with labels.

Two conventions (checked in this order):

1. ``labels.csv`` in the folder (UTF-8, with or without a byte-order mark): one
   ``filename,label`` row per image (a first row ``filename,label`` is treated as a header);
   filenames are relative to the folder, labels are integers. Images are returned in the
   file's row order.
2. Class sub-folders: ``<folder>/<class>/<image>``. If every sub-folder name is an integer,
   that integer is the label (``3/cat01.png`` -> 3); otherwise the sorted sub-folder names
   are numbered 0, 1, ... (the torchvision ``ImageFolder`` rule). Images are sorted by
   (label, file name).

Either way an image must lie inside the folder: a name or a symbolic link (an image's, or a
class sub-folder's) that leads out of it is refused. All images must have the same size.
They are returned with 1 channel if every image is greyscale, else as RGB (an alpha channel
is dropped). 16-bit greyscale PNGs keep their depth (pixel / 65535: such images are not on
the 8-bit grid); an image larger than :data:`MAX_PIXELS` is refused before it is decoded.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from attacks.data._common import check_n, to_image_tensor, to_label_tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LABELS_FILE = "labels.csv"
#: the largest image read (pixels): 64 Mpx, well above ImageNet-sized inputs
MAX_PIXELS = 1 << 26
#: the largest label accepted (labels are class indices)
MAX_LABEL = 1 << 31
GREY_MODES = ("L", "1", "I;16", "I;16B", "I;16L", "I")
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I")  # 16-bit greyscale (Pillow reads some as "I")


def _inside(folder: Path, file: Path, label: str) -> Path:
    """``file`` resolved, refused (``label`` names it) when it leads outside ``folder``: a
    name with ``..`` or a symbolic link out of it."""
    resolved = file.resolve()
    if folder.resolve() not in resolved.parents:
        raise ValueError(f"{label} points outside {folder}")
    return resolved


def _read_labels_csv(folder: Path) -> List[Tuple[Path, int]]:
    path = folder / LABELS_FILE
    items = []
    with open(path, newline="", encoding="utf-8-sig") as fh:   # a byte-order mark is skipped
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{lineno}: expected 'filename,label', got {row!r}")
            name, label = row[0].strip(), row[1].strip()
            if lineno == 1 and name.lower() == "filename" and label.lower() == "label":
                continue
            shown = label if len(label) <= 24 else f"{label[:20]}... ({len(label)} characters)"
            if label.lstrip("+-").isdigit() and len(label) > 18:   # beyond any class index
                raise ValueError(f"{path}:{lineno}: label {shown} is not a class index "
                                 f"(expected 0 <= label < {MAX_LABEL})")
            try:
                value = int(label)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: label {shown!r} is not an integer") \
                    from None
            if value < 0:
                raise ValueError(f"{path}:{lineno}: negative label {value}")
            if value >= MAX_LABEL:
                raise ValueError(f"{path}:{lineno}: label {value} is not a class index "
                                 f"(expected 0 <= label < {MAX_LABEL})")
            items.append((_inside(folder, folder / name, f"{path}:{lineno}: {name!r}"), value))
    if not items:
        raise ValueError(f"{path}: no 'filename,label' rows")
    return items


def _scan_class_dirs(folder: Path) -> List[Tuple[Path, int]]:
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise ValueError(
            f"{folder}: no {LABELS_FILE} and no class sub-folders; expected either "
            f"'{LABELS_FILE}' with 'filename,label' rows or '<class>/<image>.png' sub-folders"
        )
    names = [p.name for p in subdirs]
    if all(n.isdigit() for n in names):
        labels = {p: int(p.name) for p in subdirs}
    else:
        labels = {p: i for i, p in enumerate(subdirs)}
    items = []
    for d in sorted(subdirs, key=lambda p: labels[p]):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        items.extend((_inside(folder, f, str(f)), labels[d]) for f in files)
    if not items:
        raise ValueError(f"{folder}: class sub-folders hold no {'/'.join(IMAGE_SUFFIXES)} images")
    return items


def load_image_folder(
    folder: Union[str, Path], *, n: Optional[int] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of a folder following one of the conventions of this module."""
    n = check_n(n)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    items = (_read_labels_csv(folder) if (folder / LABELS_FILE).is_file()
             else _scan_class_dirs(folder))
    if n is not None:
        items = items[:n]
    pictures = []
    for file, _ in items:
        if not file.is_file():
            raise FileNotFoundError(f"image listed for {folder} not found: {file}")
        pictures.append(_read_image(file))
    grey = all(im.mode in GREY_MODES for im in pictures)
    deep = grey and any(im.mode in DEEP_MODES for im in pictures)
    arrays = []
    for (file, _), im in zip(items, pictures):
        if im.size != pictures[0].size:
            raise ValueError(
                f"{file}: size {im.size[0]}x{im.size[1]} differs from "
                f"{pictures[0].size[0]}x{pictures[0].size[1]} of {items[0][0].name}; "
                "all images of a folder must have the same size"
            )
        if deep:  # 16 bits per pixel (8-bit images of the same folder are scaled up exactly)
            arr = (np.asarray(im, dtype=np.float64) / 65535.0 if im.mode in DEEP_MODES
                   else np.asarray(im.convert("L"), dtype=np.float64) / 255.0)
            arrays.append(arr)
            continue
        arr = np.asarray(im.convert("L" if grey else "RGB"), dtype=np.uint8)
        arrays.append(arr if grey else arr.transpose(2, 0, 1))
    images = np.stack(arrays)
    labels = to_label_tensor([label for _, label in items])
    if deep:
        if images.max() > 1:
            raise ValueError(f"{folder}: 16-bit pixel values above 65535; not a PNG this "
                             "loader understands")
        return torch.from_numpy(images.astype(np.float32))[:, None], labels
    return to_image_tensor(images), labels


def _read_image(file: Path) -> Image.Image:
    """The decoded image, refusing one above :data:`MAX_PIXELS` before decoding it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ValueError(f"{file}: {w}x{h} pixels: too large for this loader "
                                     f"(at most {MAX_PIXELS:,} pixels); resize it first")
                im.load()
                return im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"{file}: too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{file}: not a readable PNG/JPEG image ({exc})") from exc
