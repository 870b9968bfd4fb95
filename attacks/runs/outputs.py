"""What a run writes besides the result's own formats: every example as a PNG (grid runs).

The result's formats (batch arrays, metrics.csv, adversarial.npz, summary.json) live below the
run layer, in :mod:`attacks.result_io`; the names here bind them to :class:`AttackResult`.
"""

from __future__ import annotations

import io
from typing import Dict

import numpy as np
from PIL import Image

from attacks import result_io
from attacks.result import AttackResult
from attacks.result_io import summary
from attacks.result_io import to_arrays as result_arrays
from attacks.store import RunDir

__all__ = ["CSV_COLUMNS", "csv_bytes", "result_arrays", "summary", "to_result",
           "write_outputs", "write_pngs"]

CSV_COLUMNS = result_io.csv_columns(AttackResult)


def to_result(arrays: Dict[str, np.ndarray], attack: str, grid: bool = False) -> AttackResult:
    return result_io.from_arrays(AttackResult, arrays, attack, grid=grid)


def csv_bytes(a: Dict[str, np.ndarray]) -> bytes:
    return result_io.csv_bytes(AttackResult, a)


def write_outputs(run: RunDir, a: Dict[str, np.ndarray], originals: np.ndarray,
                  summ: Dict[str, object]) -> None:
    result_io.write_outputs(run, AttackResult, a, originals, summ)


def write_pngs(run: RunDir, a: Dict[str, np.ndarray]) -> None:
    """Every adversarial example as a lossless 8-bit PNG (grid runs only: then the file *is*
    the example the model was verified on). Names carry index, label, target and success."""
    for i, img in enumerate(a["adversarial"]):
        pixels = np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
        ok = "ok" if a["success"][i] else "failed"
        name = f"{i:05d}_label{int(a['labels'][i])}_target{int(a['targets'][i])}_{ok}.png"
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        run.write(f"png/{name}", buf.getvalue())
