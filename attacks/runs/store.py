"""The run directory of ``solve``: atomic files, per-batch results, resume checks.

Layout (``--out DIR``)::

    provenance.json   what produced the run (resume key, options, versions, history)
    spec.toml         the resolved spec (runnable: --spec DIR/spec.toml)
    batches/          one batch-NNNNN.npz per finished batch (written atomically)
    metrics.csv  summary.json  adversarial.npz  figures/*.png   (merged at the end)
    png/              every adversarial example as an 8-bit PNG (grid runs)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from attacks.errors import UserError

PROVENANCE = "provenance.json"
OUTPUTS = ("metrics.csv", "summary.json", "adversarial.npz", "spec.toml", PROVENANCE)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then ``os.replace`` it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_ready(obj: Any) -> Any:
    """NaN/inf become null so the file is strict JSON; tuples become lists."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_ready(obj.item())
    return obj


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(json_ready(obj), indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write(path, (text + "\n").encode("utf-8"))


def npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    import io
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def merge(parts: List[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Batches' arrays concatenated key by key, in the given order."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class RunDir:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.batches = self.root / "batches"
        self.figures = self.root / "figures"

    def path(self, name: str) -> Path:
        return self.root / name

    # -- starting / resuming ------------------------------------------------------------------
    def stored_provenance(self) -> Optional[Dict[str, Any]]:
        p = self.path(PROVENANCE)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"--out {self.root}: cannot read {p.name} ({e}); use another --out "
                            "or --restart") from None

    def check_resume(self, key: Dict[str, Any]) -> bool:
        """True when DIR holds the same run (resume); False when it holds none yet.

        A different stored run (spec/model/data/targets/seed/batch size) is a user error.
        """
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out {self.root}: exists and is not a directory")
        stored = self.stored_provenance()
        if stored is None:
            if any(self.batches.glob("batch-*.npz")):
                raise UserError(f"--out {self.root}: holds batch files but no {PROVENANCE}; "
                                "use another --out or --restart")
            return False
        old = stored.get("resume_key", {})
        new = json_ready(key)
        differ = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if differ:
            raise UserError(f"--out {self.root} holds a different run ({', '.join(differ)} "
                            "differ); use another --out, or --restart to discard it")
        return True

    def clear(self) -> None:
        """Delete what ``solve`` writes here (and nothing else)."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out {self.root}: exists and is not a directory")
        for name in OUTPUTS:
            self.path(name).unlink(missing_ok=True)
        for d, pattern in ((self.batches, "batch-*.npz"), (self.figures, "example-*.png"),
                           (self.path("png"), "*.png*")):
            for f in d.glob(pattern):
                f.unlink()
            for f in d.glob(".*.tmp"):
                f.unlink()

    # -- batches ----------------------------------------------------------------------------
    def batch_path(self, i: int) -> Path:
        return self.batches / f"batch-{i:05d}.npz"

    def save_batch(self, i: int, arrays: Dict[str, np.ndarray]) -> None:
        atomic_write(self.batch_path(i), npz_bytes(arrays))

    def load_batch(self, i: int, source_index: np.ndarray, targets: np.ndarray
                   ) -> Optional[Dict[str, np.ndarray]]:
        """The stored batch ``i`` if it exists, reads, and covers these examples; else None."""
        p = self.batch_path(i)
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return None
        same = (np.array_equal(arrays.get("source_index"), source_index)
                and np.array_equal(arrays.get("targets"), targets))
        return arrays if same else None

    def examples(self) -> Dict[str, np.ndarray]:
        """Every stored batch's arrays concatenated in batch order (``source_index``,
        ``targets``, ``labels``, ``success``, ``delta``, ``adversarial``, ``metric_*``...):
        what experiments read back from a finished (or partly finished) run."""
        parts = sorted(self.batches.glob("batch-*.npz"))
        if not parts:
            raise UserError(f"{self.root}: no finished batches (run the attack first)")
        arrays = []
        for p in parts:
            with np.load(p) as z:
                arrays.append({k: z[k] for k in z.files})
        return merge(arrays)
