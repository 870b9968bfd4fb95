"""Results as arrays and the files ``solve`` writes from them (CSV, JSON summary, npz)."""

from __future__ import annotations

import csv
import io
import math
from typing import Dict

import numpy as np
import torch

from attacks.result import AttackResult
from attacks.runs.store import RunDir, npz_bytes

METRICS = ("l0", "l1", "l2", "linf", "groups_nonzero", "groups_fraction")
CSV_COLUMNS = ("index", "source_index", "label", "target", "success", *METRICS, "c",
               "gradient_evals", "refined", "targeted", "forward_evals", "nonfinite")
_FIELDS = ("adversarial", "delta", "success", "labels", "targets", "targeted", "source_index",
           "c", "gradient_evals", "forward_evals", "refined", "nonfinite")
#: optional flags: all False when a result (or an older file) lacks them
_FLAGS = ("refined", "nonfinite")


def result_arrays(r: AttackResult) -> Dict[str, np.ndarray]:
    """Every per-example field of ``r`` as a NumPy array (metrics as ``metric_<name>``)."""
    out = {}
    for name in _FIELDS:
        v = getattr(r, name)
        if v is None:  # an optional flag
            v = torch.zeros_like(r.success)
        out[name] = v.detach().cpu().numpy()
    for k, v in r.metrics.items():
        out[f"metric_{k}"] = v.detach().cpu().numpy()
    return out


def to_result(arrays: Dict[str, np.ndarray], attack: str, grid: bool = False) -> AttackResult:
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
    for flag in _FLAGS:  # batches written before a flag existed
        t.setdefault(flag, torch.zeros_like(t["success"]))
    metrics = {k[len("metric_"):]: v for k, v in t.items() if k.startswith("metric_")}
    return AttackResult(attack=attack, metrics=metrics, grid=grid,
                        **{k: t[k] for k in _FIELDS})


def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else repr(float(v))
    return str(int(v)) if isinstance(v, (int, np.integer)) else str(v)


def csv_bytes(a: Dict[str, np.ndarray]) -> bytes:
    """metrics.csv: one row per example; distortions and c are ``nan`` for failed examples."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    n = a["success"].shape[0]
    nan = np.full(n, np.nan, dtype=np.float32)
    cols = {"index": np.arange(n), "source_index": a["source_index"], "label": a["labels"],
            "target": a["targets"], **{m: a.get(f"metric_{m}", nan) for m in METRICS}}
    for i in range(n):
        w.writerow([_cell((cols[c] if c in cols else a[c])[i]) for c in CSV_COLUMNS])
    return buf.getvalue().encode("utf-8")


def summary(result: AttackResult, *, images: int, batches: int, resumed: int,
            seconds: float) -> Dict[str, object]:
    """``AttackResult.summary()`` plus the counts of the run."""
    s = dict(result.summary())
    # a broken model's examples (NaN/inf logits) are counted apart, never as failures
    s.update(attack=result.attack,
             failures=int(len(result)) - int(s["successes"]) - int(s["nonfinite"]),
             images=images, targeted=int(result.targeted.sum()),
             refined=int(result.refined.sum()) if result.refined is not None else 0,
             batches=batches, batches_resumed=resumed, batches_computed=batches - resumed,
             seconds_this_run=round(seconds, 3))
    return s


def write_outputs(run: RunDir, a: Dict[str, np.ndarray], originals: np.ndarray,
                  summ: Dict[str, object]) -> None:
    """metrics.csv, summary.json and adversarial.npz of a finished run."""
    run.write("metrics.csv", csv_bytes(a))
    run.write_json("summary.json", summ)
    run.write("adversarial.npz", npz_bytes({
        "adversarial": a["adversarial"], "delta": a["delta"], "original": originals,
        "success": a["success"], "source_index": a["source_index"], "labels": a["labels"],
        "targets": a["targets"], "targeted": a["targeted"]}))


def write_pngs(run: RunDir, a: Dict[str, np.ndarray]) -> None:
    """Every adversarial example as a lossless 8-bit PNG (grid runs only: then the file *is*
    the example the model was verified on). Names carry index, label, target and success."""
    from PIL import Image
    for i, img in enumerate(a["adversarial"]):
        pixels = np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
        ok = "ok" if a["success"][i] else "failed"
        name = f"{i:05d}_label{int(a['labels'][i])}_target{int(a['targets'][i])}_{ok}.png"
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        run.write(f"png/{name}", buf.getvalue())
