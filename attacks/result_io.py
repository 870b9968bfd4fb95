"""Attack results as arrays and files, in the run-directory formats the CLI writes.

A results directory (what :meth:`AttackResult.save` writes; a finished ``admm-attack solve``
run directory has the same files plus provenance.json and spec.toml)::

    batches/batch-NNNNN.npz   every per-example field (metrics as ``metric_<name>``), lossless
    adversarial.npz           adversarial, delta, original, success, source_index, labels,
                              targets, targeted
    metrics.csv               one row per example (distortions and c are ``nan`` on failure)
    summary.json              ASR, mean distortions over successes, counts, attack, grid

:func:`load` reads the batches back (they are the complete record) with the attack's name and
``grid`` from summary.json, or from provenance.json for a run that has not finished.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

from attacks.result import AttackResult

METRICS = ("l0", "l1", "l2", "linf", "groups_nonzero", "groups_fraction")
CSV_COLUMNS = ("index", "source_index", "label", "target", "success", *METRICS, "c",
               "gradient_evals", "refined", "targeted", "forward_evals")
FIELDS = ("adversarial", "delta", "success", "labels", "targets", "targeted", "source_index",
          "c", "gradient_evals", "forward_evals", "refined")
EXAMPLES = ("adversarial", "delta", "original", "success", "source_index", "labels", "targets",
            "targeted")
SUMMARY, PROVENANCE, BATCHES = "summary.json", "provenance.json", "batches"


# -- arrays ----------------------------------------------------------------------------------
def to_arrays(r: AttackResult) -> Dict[str, np.ndarray]:
    """Every per-example field of ``r`` as a NumPy array (metrics as ``metric_<name>``;
    a missing ``refined`` as all False)."""
    refined = r.refined if r.refined is not None else torch.zeros_like(r.success)
    out = {name: (refined if name == "refined" else getattr(r, name)).detach().cpu().numpy()
           for name in FIELDS}
    out.update({f"metric_{k}": v.detach().cpu().numpy() for k, v in r.metrics.items()})
    return out


def from_arrays(arrays: Dict[str, np.ndarray], attack: str, grid: bool = False) -> AttackResult:
    """The :class:`AttackResult` (on the CPU) that :func:`to_arrays` flattened."""
    missing = [k for k in FIELDS if k not in arrays]
    if missing:
        raise ValueError(f"result arrays lack {', '.join(missing)}")
    t = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}
    metrics = {k[len("metric_"):]: v for k, v in t.items() if k.startswith("metric_")}
    return AttackResult(attack=attack, metrics=metrics, grid=bool(grid),
                        **{k: t[k] for k in FIELDS})


def concat_arrays(parts: List[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Batches' arrays concatenated key by key, in the given order."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def summary(r: AttackResult) -> Dict[str, Any]:
    """:meth:`AttackResult.summary` plus the attack, failure, targeted, refined and image
    counts (the CLI adds its run counts: batches, resumed, seconds)."""
    s = dict(r.summary())
    s.update(attack=r.attack, failures=len(r) - int(s["successes"]),
             images=int(torch.unique(r.source_index).numel()),
             targeted=int(r.targeted.sum()),
             refined=int(r.refined.sum()) if r.refined is not None else 0)
    return s


# -- files -----------------------------------------------------------------------------------
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
    """Strict-JSON form: non-finite floats become null, tuples lists, NumPy scalars Python."""
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(json_ready(obj), indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write(path, (text + "\n").encode("utf-8"))


def npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def read_npz(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _column(values: np.ndarray) -> List[str]:
    """One CSV column as text: ``true``/``false``, integers, ``repr`` floats or ``nan``."""
    if values.dtype == np.bool_:
        return ["true" if v else "false" for v in values.tolist()]
    if np.issubdtype(values.dtype, np.floating):
        return ["nan" if math.isnan(v) else repr(v) for v in values.tolist()]
    return [str(v) for v in values.tolist()]


def csv_bytes(a: Dict[str, np.ndarray]) -> bytes:
    """metrics.csv: one row per example in :data:`CSV_COLUMNS` order."""
    n = a["success"].shape[0]
    nan = np.full(n, np.nan, dtype=np.float32)
    named = {"index": np.arange(n), "label": a["labels"], "target": a["targets"],
             **{m: a.get(f"metric_{m}", nan) for m in METRICS}}
    columns = [_column(named[c] if c in named else a[c]) for c in CSV_COLUMNS]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(zip(*columns))
    return buf.getvalue().encode("utf-8")


def write_results(root: Path, a: Dict[str, np.ndarray], originals: np.ndarray,
                  summ: Dict[str, Any]) -> None:
    """metrics.csv, summary.json and adversarial.npz of a results directory."""
    atomic_write(root / "metrics.csv", csv_bytes(a))
    write_json(root / SUMMARY, summ)
    examples = {**a, "original": originals}
    atomic_write(root / "adversarial.npz", npz_bytes({k: examples[k] for k in EXAMPLES}))


def save(result: AttackResult, path) -> Path:
    """Write ``result`` as a results directory at ``path`` (see the module docstring);
    ``original`` is ``adversarial − delta``. Overwrites an earlier :func:`save` there; refuses
    a CLI run directory (it holds provenance.json)."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"path {root}: exists and is not a directory")
    if (root / PROVENANCE).exists():
        raise ValueError(f"path {root}: holds a CLI run (provenance.json); save elsewhere")
    for old in (root / BATCHES).glob("batch-*.npz"):
        old.unlink()
    a = to_arrays(result)
    atomic_write(root / BATCHES / "batch-00000.npz", npz_bytes(a))
    write_results(root, a, a["adversarial"] - a["delta"], summary(result))
    return root


def load(path) -> AttackResult:
    """The result in a results directory: one written by :func:`save`, or a CLI run directory
    (finished, or interrupted: then the batches stored so far)."""
    root = Path(path)
    parts = sorted((root / BATCHES).glob("batch-*.npz"))
    if not parts:
        raise FileNotFoundError(f"path {root}: no {BATCHES}/batch-*.npz (not a results "
                                "directory, or a run with no finished batch)")
    if (root / SUMMARY).is_file():
        info = json.loads((root / SUMMARY).read_text(encoding="utf-8"))
        attack, grid = info.get("attack"), info.get("grid", False)
    elif (root / PROVENANCE).is_file():
        key = json.loads((root / PROVENANCE).read_text(encoding="utf-8")).get("resume_key", {})
        attack, grid = key.get("spec", {}).get("name"), key.get("grid", False)
    else:
        raise FileNotFoundError(f"path {root}: neither {SUMMARY} nor {PROVENANCE} (which name "
                                "the attack)")
    return from_arrays(concat_arrays([read_npz(p) for p in parts]), attack or "unknown",
                       grid=bool(grid))
