"""Shared helpers of the benchmarks: device set-up, synchronised timing, a model wrapper that
counts what the model computed, the examples every benchmark attacks, and the report format
(one JSON line per row and per ratio, then a plain table)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from attacks.data import load_dataset
from attacks.targets import expand_targets


def setup(device: str, threads: int = 1) -> torch.device:
    """Pin the intra-op threads (the benchmarks' CPU figures use 1) and check the device."""
    if not isinstance(threads, int) or threads <= 0:
        raise ValueError(f"threads must be a positive integer; got {threads!r}")
    torch.set_num_threads(threads)
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"{device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"CUDA is not available (torch {torch.__version__}, "
                         f"{'built without CUDA' if torch.version.cuda is None else 'no GPU found'})")
    return dev


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> Tuple[object, float, float]:
    """``(fn(), seconds, wall seconds)``, synchronising the device before and after.

    ``seconds`` is this process's CPU time on a CPU device (with one intra-op thread it equals
    the wall time of an idle machine, and other processes sharing the cores barely change it)
    and the wall time on a GPU, whose work the CPU clock does not see."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    sync(device)
    wall, start = time.perf_counter(), clock()
    out = fn()
    sync(device)
    return out, clock() - start, time.perf_counter() - wall


class CountingModel(nn.Module):
    """Wraps a classifier and counts the rows it evaluated: ``grad_rows`` with autograd on
    (a forward+backward in every attack here), ``rows`` in all. Counting happens on the host
    from shapes only, so it adds no device synchronisation. The wrapper takes the model's
    train/eval mode: libraries that restore "the mode they were given" (torchattacks) would
    otherwise switch the model's dropout on.

    ``model_seconds``: the time spent in the model, its forward passes and the backward passes
    through it (from the gradient reaching its output to the gradient of its input), measured
    with CUDA events on a GPU (read at the end: no synchronisation while running) and this
    process's CPU time on a CPU."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.train(model.training)  # a fresh Module is in training mode; mirror the model's
        self.reset()

    def reset(self) -> None:
        self.rows = 0
        self.grad_rows = 0
        self._spans: List[list] = []  # [start, end] marks of forward and backward passes

    def _mark(self, device: torch.device):
        if device.type != "cuda":
            return time.process_time()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _timed_backward(self, out: Tensor, x: Tensor) -> None:
        """Mark the backward pass through the model: it starts when the output's gradient is
        ready and ends with the input's."""
        span: list = []

        def start(_):
            span[:] = [self._mark(x.device)]

        def end(_):
            if span:
                span.append(self._mark(x.device))
                self._spans.append(span)
        out.register_hook(start)
        x.register_hook(end)

    def forward(self, x: Tensor) -> Tensor:
        self.rows += x.shape[0]
        if torch.is_grad_enabled():
            self.grad_rows += x.shape[0]
        begin = self._mark(x.device)
        out = self.model(x)
        self._spans.append([begin, self._mark(x.device)])
        if out.requires_grad and x.requires_grad:
            self._timed_backward(out, x)
        return out

    @property
    def model_seconds(self) -> float:
        """Seconds in the model's forward and backward passes since :meth:`reset`."""
        spans = [s for s in self._spans if len(s) == 2]
        if spans and isinstance(spans[0][0], torch.cuda.Event):
            torch.cuda.synchronize()
            return sum(a.elapsed_time(b) for a, b in spans) / 1e3
        return sum(b - a for a, b in spans)


COMPAT = Path(__file__).resolve().parent.parent / ".cache" / "compat"
COMPAT_VERSIONS = {"torchattacks": "3.5.1", "foolbox": "3.3.4"}


@contextlib.contextmanager
def compat_libraries(folder: Optional[Path] = None, versions: Optional[Dict[str, str]] = None
                     ) -> Iterator[Tuple[Optional[SimpleNamespace], str]]:
    """The libraries of ``versions`` (name: pinned version; default :data:`COMPAT_VERSIONS`,
    torchattacks and foolbox) imported from ``folder`` (default :data:`COMPAT`, filled by
    ``python tools/fetch_compat.py``), never from the venv, as tests/conftest.py's ``compat``
    fixture does. Yields ``(namespace, "")``, or ``(None, why)`` when the folder is missing,
    an import fails or a version is not the pinned one. Use them inside the ``with`` block
    only: they import lazily (eagerpy's ``norms``), so the folder stays on ``sys.path`` until
    the block ends; then it and every module imported from it are removed again."""
    folder = folder or COMPAT
    versions = versions or COMPAT_VERSIONS
    if not folder.is_dir():
        yield None, f"{folder} is absent (`python tools/fetch_compat.py`)"
        return
    sys.path.insert(0, str(folder))
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # foolbox.zoo imports GitPython
    try:
        try:
            libs = {name: importlib.import_module(name) for name in versions}
        except ImportError as e:
            libs, why = None, f"cannot import from {folder}: {e}"
        else:
            wrong = {n: getattr(m, "__version__", None) for n, m in libs.items()
                     if getattr(m, "__version__", None) != versions[n]}
            why = f"{folder} holds {wrong}, expected {versions}" if wrong else ""
        yield (SimpleNamespace(**libs), "") if libs and not why else (None, why)
    finally:
        sys.path.remove(str(folder))
        for name, mod in list(sys.modules.items()):
            if str(getattr(mod, "__file__", None) or "").startswith(str(folder) + os.sep):
                del sys.modules[name]


def examples(data: str, n: int, device: torch.device, seed: int = 0):
    """The first ``n`` images of ``data`` with one seeded random target class each:
    ``(images, labels, targets)`` on ``device``. Every attack of a benchmark gets these."""
    x, y = load_dataset(data, n=n)
    _, tg = expand_targets(y, 10, "random", seed)
    return x.to(device), y.to(device), tg.targets.to(device)


def warm_up(model: nn.Module, x: Tensor) -> None:
    """One forward+backward, so one-off kernel set-up is not timed."""
    z = x[:1].clone().requires_grad_(True)
    model(z).sum().backward()


def targeted_success(model: nn.Module, adv: Tensor, targets: Tensor) -> Tensor:
    """A fresh forward pass: did each image reach its target class? (B,) bool."""
    with torch.no_grad():
        return model(adv).argmax(1) == targets


def distortion(x: Tensor, adv: Tensor, success: Tensor) -> Dict[str, float]:
    """Mean ℓ2 and ℓ0 of ``adv − x`` over the successful examples (NaN if none)."""
    d = (adv - x).flatten(1)
    if not success.any():
        return {"l2": math.nan, "l0": math.nan}
    d = d[success]
    return {"l2": float(d.norm(dim=1).mean()),
            "l0": float((d.abs() > 1e-7).sum(1).double().mean())}


def provenance(device: torch.device, threads: int) -> dict:
    return {"torch": torch.__version__, "device": str(device), "threads": threads,
            "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


# -- report ---------------------------------------------------------------------------------
def _round(v):
    if isinstance(v, float):  # NaN/inf become null: the lines stay strict JSON
        return round(v, 4 if abs(v) < 100 else 1) if math.isfinite(v) else None
    return v


def jsonable(obj):
    """``obj`` with non-finite floats as None: strict JSON."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def parser(doc: Optional[str], *, full: Optional[str] = "", device: bool = True,
           threads: bool = True) -> argparse.ArgumentParser:
    """A benchmark's command line: its module ``doc`` as the description and the options
    they share, ``--full`` (with the help ``full``; None: no such option), ``--device``
    (default cpu) and ``--threads`` (default 1)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    if full is not None:
        p.add_argument("--full", action="store_true", help=full or None)
    if device:
        p.add_argument("--device", default="cpu")
    if threads:
        p.add_argument("--threads", type=int, default=1)
    return p


def emit(report: dict, columns: Sequence[str]) -> None:
    """Print a report ``{"benchmark", "rows", "ratios", "notes"}`` (or one that says why it
    was ``skipped``): JSON lines, then a table."""
    name = report["benchmark"]
    if report.get("skipped"):
        print(json.dumps({"benchmark": name, "skipped": report["skipped"]}))
        print(f"{name}: skipped: {report['skipped']}\n", flush=True)
        return
    for row in report["rows"]:
        print(json.dumps({"benchmark": name, **{k: _round(v) for k, v in row.items()}}))
    print(json.dumps({"benchmark": name, "ratios": {k: _round(v)
                                                     for k, v in report["ratios"].items()}}))
    print(table(report["rows"], columns))
    for k, v in report["ratios"].items():
        print(f"  {k}: {_round(v)}")
    for note in report.get("notes", []):
        print(f"  note: {note}")
    print(flush=True)


def table(rows: List[dict], columns: Sequence[str]) -> str:
    """A plain aligned text table of ``columns`` of ``rows``."""
    cell = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else (
        f"{v:.4g}" if isinstance(v, float) else str(v))
    grid = [list(columns)] + [[cell(r.get(c, "")) for c in columns] for r in rows]
    width = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    lines = ["  ".join(s.rjust(w) for s, w in zip(line, width)) for line in grid]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines)
