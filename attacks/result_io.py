"""Per-example fields and the file formats derived from their declaration.

A result class (:class:`attacks.result.AttackResult`) declares each per-example field once
with :func:`per_example`: where it goes in metrics.csv and adversarial.npz, whether ``equals``
compares it, how a file that lacks it is read. Every format here is derived from those
declarations (the class is passed in, so this module imports nothing above it):

    batches/batch-00000.npz   every per-example field, in declaration order (a dict field as
                              ``<prefix><key>``), lossless
    adversarial.npz           the fields with an ``npz`` position, plus ``original``
    metrics.csv               ``index`` then the fields with a ``csv`` position (distortions and
                              c are ``nan`` on failure)
    summary.json              ASR, mean distortions over successes, counts, attack, grid

A results directory (what :func:`save` writes; a finished ``admm-attack solve`` run directory
has the same files plus provenance.json and spec.toml) is a run directory like any other
(marker, manifest, lock): :func:`save` claims it (new, empty or an earlier save, whose files it
replaces) and refuses anything else. :func:`load` reads the batches back (the complete record)
with the attack's name and ``grid`` from summary.json, or from provenance.json for a CLI run
that has not finished.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import attrs
import numpy as np
import torch

from attacks.errors import UserError
from attacks.filenames import ADVERSARIAL, METRICS_CSV, PROVENANCE, SUMMARY
from attacks.store import RunDir, npz_bytes, read_json_file, run_fingerprint

_KEY = "per_example"
#: adversarial.npz's own array (not a field of the result): the clean image, at this position
ORIGINAL = (2, "original")


@attrs.frozen
class PerExample:
    """How one per-example field (a (B,…) tensor, or a dict of (B,) tensors) is stored.

    ``csv``: (position, column) in metrics.csv, for a dict field (position, its columns: keys
    it may lack are ``nan``); ``npz``: position in adversarial.npz; ``compare``: ``equals``
    compares it; ``missing``: an optional field, ``None`` and a file that lacks it read as
    zeros of this dtype; ``prefix``: a dict field, stored as the arrays ``<prefix><key>``;
    ``derive``: the field's metrics.csv columns are computed, ``derive(arrays)`` -> column ->
    (B,) array, from the result's arrays (the field itself is not a column)."""

    csv: Optional[Tuple[int, Union[str, Tuple[str, ...]]]] = None
    npz: Optional[int] = None
    compare: bool = True
    missing: Optional[torch.dtype] = None
    prefix: Optional[str] = None
    derive: Optional[Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]]] = None


def per_example(*, csv: Optional[Tuple[int, Union[str, Tuple[str, ...]]]] = None,
                npz: Optional[int] = None, compare: bool = True,
                missing: Optional[torch.dtype] = None, prefix: Optional[str] = None,
                derive: Optional[Callable] = None) -> Any:
    """Declare a per-example field of a result class (an ``attrs`` field; see
    :class:`PerExample`). An optional field (``missing``) defaults to ``None``."""
    meta = PerExample(csv=csv, npz=npz, compare=compare, missing=missing, prefix=prefix,
                      derive=derive)
    return attrs.field(metadata={_KEY: meta}, **({} if missing is None else {"default": None}))


def declared(cls) -> List[Tuple[str, PerExample]]:
    """The per-example fields of ``cls`` (name, declaration), in declaration order."""
    return [(f.name, f.metadata[_KEY]) for f in attrs.fields(cls) if _KEY in f.metadata]


# -- arrays (the batch files) ------------------------------------------------------------------
def to_arrays(result) -> Dict[str, np.ndarray]:
    """Every per-example field of ``result`` as a NumPy array (a dict field's entries as
    ``<prefix><key>``), in declaration order."""
    out = {}
    for name, meta in declared(type(result)):
        value = getattr(result, name)
        entries = ({f"{meta.prefix}{k}": v for k, v in value.items()} if meta.prefix
                   else {name: value})
        out.update({k: v.detach().cpu().numpy() for k, v in entries.items()})
    return out


def from_arrays(cls, arrays: Dict[str, np.ndarray], attack: str, grid: bool = False):
    """The ``cls`` result whose :func:`to_arrays` are ``arrays`` (an older file's missing
    optional fields read as zeros)."""
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
    fields = {}
    for name, meta in declared(cls):
        if meta.prefix:
            fields[name] = {k[len(meta.prefix):]: v for k, v in t.items()
                            if k.startswith(meta.prefix)}
        elif name in t or meta.missing is not None:
            fields[name] = t.get(name)
        else:
            raise ValueError(f"arrays: no {name!r} array (not the arrays of a result)")
    return cls(attack=attack, grid=grid, **fields)


# -- metrics.csv and adversarial.npz -------------------------------------------------------------
def _csv_layout(cls) -> List[Tuple[str, str]]:
    """(column, array name) of every metrics.csv column after ``index``, in position order."""
    cols = []
    for name, meta in declared(cls):
        if meta.csv is not None:
            at, columns = meta.csv
            if meta.prefix or meta.derive:  # several columns: arrays by prefix or derived
                cols += [(at, c, f"{meta.prefix or ''}{c}") for c in columns]
            else:
                cols.append((at, columns, name))
    return [(c, a) for _, c, a in sorted(cols, key=lambda col: col[0])]


def csv_columns(cls) -> Tuple[str, ...]:
    return ("index", *(c for c, _ in _csv_layout(cls)))


def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else repr(float(v))
    return str(int(v)) if isinstance(v, (int, np.integer)) else str(v)


def csv_bytes(cls, a: Dict[str, np.ndarray]) -> bytes:
    """metrics.csv of the arrays ``a``: one row per example; a column whose array ``a`` lacks
    (a metric the attack does not compute) is ``nan``."""
    layout = _csv_layout(cls)
    for _, meta in declared(cls):
        if meta.derive is not None:
            a = {**a, **meta.derive(a)}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(csv_columns(cls))
    n = a["success"].shape[0]
    nan = np.full(n, np.nan, dtype=np.float32)
    cols = [np.arange(n)] + [a.get(array, nan) for _, array in layout]
    for i in range(n):
        w.writerow([_cell(col[i]) for col in cols])
    return buf.getvalue().encode("utf-8")


def adversarial_arrays(cls, a: Dict[str, np.ndarray], originals: np.ndarray
                       ) -> Dict[str, np.ndarray]:
    """adversarial.npz: the fields with an ``npz`` position, and the clean images."""
    entries = [(meta.npz, name, a[name]) for name, meta in declared(cls) if meta.npz is not None]
    entries.append((*ORIGINAL, originals))
    return {name: v for _, name, v in sorted(entries, key=lambda e: e[0])}


def summary(result, *, images: int, batches: int, resumed: int,
            seconds: float) -> Dict[str, object]:
    """``result.summary()`` plus the counts of the run (summary.json)."""
    s = dict(result.summary())
    s.update(attack=result.attack, images=images, targeted=int(result.targeted.sum()),
             refined=int(result.refined.sum()),
             batches=batches, batches_resumed=resumed, batches_computed=batches - resumed,
             seconds_this_run=round(seconds, 3))
    return s


def write_outputs(run: RunDir, cls, a: Dict[str, np.ndarray], originals: np.ndarray,
                  summ: Dict[str, object]) -> None:
    """metrics.csv, summary.json and adversarial.npz of a finished run (``cls``'s formats)."""
    run.write(METRICS_CSV, csv_bytes(cls, a))
    run.write_json(SUMMARY, summ)
    run.write(ADVERSARIAL, npz_bytes(adversarial_arrays(cls, a, originals)))


# -- a results directory -----------------------------------------------------------------------
def save(result, path) -> Path:
    """Write ``result`` as a results directory at ``path`` (see the module docstring);
    ``original`` is ``adversarial − delta``. Replaces an earlier :func:`save` there; refuses a
    CLI run directory (it holds provenance.json) and any other non-empty directory."""
    run = RunDir(Path(path), fingerprint=run_fingerprint({"saved": result.attack}))
    if run.path(PROVENANCE).exists():
        raise ValueError(f"path {run.root}: holds a CLI run ({PROVENANCE}); save elsewhere")
    run.claim(restart=True)
    try:
        a = to_arrays(result)
        run.own([run.batch_name(0)])
        run.save_batch(0, a)
        summ = summary(result, images=int(result.source_index.unique().numel()), batches=1,
                       resumed=0, seconds=0.0)
        write_outputs(run, type(result), a, a["adversarial"] - a["delta"],
                      {**summ, "grid": result.grid})
    finally:
        run.unlock()
    return run.root


def load(cls, path):
    """The ``cls`` result in a results directory: one written by :func:`save`, or a CLI run
    directory (finished, or interrupted: then the batches stored so far). Every batch must be
    a regular file of this run (its fingerprint: of the provenance's resume key, or of a
    save's attack) and match its checksum; anything else is one :class:`UserError`."""
    run = RunDir(Path(path))
    if not any(run.batches.glob("batch-*.npz")):
        raise FileNotFoundError(f"path {run.root}: no batches/batch-*.npz (not a results "
                                "directory, or a run with no finished batch)")
    provenance = run.stored_provenance()
    info = read_json_file(run.path(SUMMARY), f"path {run.root}")
    if info is not None and not isinstance(info, dict):
        raise UserError(f"path {run.root}: {SUMMARY} is not a JSON object (not a summary of "
                        "a run)")
    if provenance is not None:
        key = provenance.get("resume_key")
        key = key if isinstance(key, dict) else {}
        spec = key.get("spec")
        attack = (info or {}).get("attack") or (spec.get("name") if isinstance(spec, dict)
                                                else None)
        grid, run.fingerprint = (info or key).get("grid", False), run_fingerprint(key)
    elif info is not None:
        attack, grid = info.get("attack"), info.get("grid", False)
        run.fingerprint = run_fingerprint({"saved": attack})
    else:
        raise FileNotFoundError(f"path {run.root}: neither {SUMMARY} nor {PROVENANCE} (which "
                                "name the attack)")
    return from_arrays(cls, run.examples(), str(attack or "unknown"), grid=bool(grid))
