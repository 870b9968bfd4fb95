"""Count host-device synchronisations, so a test can check that a loop never waits on the device.

On a GPU, a synchronisation is any operation whose result the host needs before it can go on:
reading a value (``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()``, ``.cpu()``, printing),
an output whose *shape* depends on the data (``nonzero``, boolean-mask indexing, ``unique``,
``masked_select``) or a comparison returning a Python bool (``torch.equal``).

:class:`SyncCounter` counts them anywhere:

* on the CPU (the default) it patches those functions and tensor methods for the duration of
  the ``with`` block and records every call made from outside (calls they make themselves,
  e.g. ``repr`` reading values with ``tolist``, count once);
* with ``device="cuda"`` it uses torch's own detector, ``torch.cuda.set_sync_debug_mode``,
  which catches every synchronisation the CUDA backend makes.

Each event is attributed to a *call* and a *step* within it: ``scope=(cls, "method")`` numbers
the calls of that method (1, 2, ...; events outside any fall in call 0) and
``step_on=(cls, "method")`` starts a new step at every call of that method (step 0: before the
first). With the solver's own methods, ``(call, k)`` is iteration ``k`` of the call-th solve
(from its x-steps to the next iteration's, its checks and callback included):

    with SyncCounter(scope=(LinearizedADMM, "solve"), step_on=(LinearizedADMM, "x_steps")) as sync:
        LinearizedADMM().solve(problem, z0)
    assert max(sync.per_step().values(), default=0) <= 1, sync.report()

Not counted on the CPU: ``.to(device)`` (a no-op copy there, a sync only towards the host on
a GPU) and synchronisations inside C++ operators; use ``device="cuda"`` for the full picture.
"""

from __future__ import annotations

import functools
import threading
import traceback
import warnings
from collections import Counter
from typing import Dict, List, Optional, Tuple

import attrs
import torch
from torch import Tensor

#: Tensor methods that hand a value to the host.
SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__",
                "__index__", "__complex__", "__format__", "__repr__", "__str__", "nonzero",
                "argwhere", "unique", "unique_consecutive", "masked_select", "equal")
#: ``torch`` functions of the same kind.
SYNC_FUNCTIONS = ("nonzero", "argwhere", "unique", "unique_consecutive", "masked_select",
                  "equal", "allclose", "is_nonzero")

_MISSING = object()


@attrs.frozen
class SyncEvent:
    """One synchronisation: what forced it, the call and step it fell in, and the caller's
    ``file:line`` (the innermost frame outside torch and this module)."""

    name: str
    call: int
    step: int
    where: str


def _bool_index(index) -> bool:
    """Whether an index (or any part of a tuple index) is a boolean tensor: a data-dependent
    shape, computed with ``nonzero``."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, Tensor) and p.dtype == torch.bool for p in parts)


def _caller() -> str:
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename.replace("\\", "/")
        if "/torch/" not in path and not path.endswith("admmkit/testing/sync.py"):
            return f"{path}:{frame.lineno}"
    return "?"


class SyncCounter:
    """Context manager counting host-device synchronisations (see the module docstring).

    ``device``: ``"cpu"`` (patch torch, the default) or ``"cuda"`` (torch's sync debug mode).
    ``scope``: ``(owner, "method")`` whose calls are numbered (not re-entrant).
    ``step_on``: ``(owner, "method")`` whose every call starts a new step.
    ``where``: record each event's caller (``file:line``; costs a stack walk per event).
    After the block, ``steps[c]`` is the number of steps call ``c`` made.
    """

    def __init__(self, device: str = "cpu", scope: Optional[Tuple[object, str]] = None,
                 step_on: Optional[Tuple[object, str]] = None, where: bool = True):
        if torch.device(device).type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")
        self.device = torch.device(device).type
        self.scope, self.step_on, self.where = scope, step_on, where
        self.events: List[SyncEvent] = []
        self.steps: List[int] = [0]  # per call; call 0 is outside the scope
        self.call = 0
        self._local = threading.local()
        self._undo: List[Tuple[object, str, object]] = []

    # -- what was counted -------------------------------------------------------------------
    @property
    def count(self) -> int:
        self._drain_warnings()
        return len(self.events)

    def step(self) -> None:
        """Start the next step of the current call: later events are attributed to it."""
        self._drain_warnings()
        self.steps[self.call] += 1

    def per_step(self) -> Dict[Tuple[int, int], int]:
        """Events per ``(call, step)`` (those without any are left out)."""
        self._drain_warnings()
        return dict(Counter((e.call, e.step) for e in self.events))

    def report(self, limit: int = 20) -> str:
        """The events grouped by (what, where), most frequent first: for assertion messages."""
        self._drain_warnings()
        groups = Counter((e.name, e.where) for e in self.events)
        lines = [f"{len(self.events)} synchronisation(s) over {sum(self.steps)} step(s) in "
                 f"{len(self.steps) - 1} call(s):"]
        lines += [f"  {n:5d} × {name} at {where}" for (name, where), n in groups.most_common(limit)]
        return "\n".join(lines)

    # -- recording ------------------------------------------------------------------------
    def _record(self, name: str, where: Optional[str] = None) -> None:
        where = where or (_caller() if self.where else "")
        self.events.append(SyncEvent(name, self.call, self.steps[self.call], where))

    def _counting(self, name: str, fn, *, only_if=None):
        """``fn`` wrapped to record one event per outermost call (nested calls, e.g. those
        ``repr`` makes, and calls made while recording are not counted again)."""
        local = self._local

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if getattr(local, "busy", False):
                return fn(*args, **kwargs)
            local.busy = True
            try:
                if only_if is None or only_if(*args, **kwargs):
                    self._record(name)
                return fn(*args, **kwargs)
            finally:
                local.busy = False
        return wrapper

    def _patch(self, owner, name: str, new) -> None:
        self._undo.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, new)

    def _stepping(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            self.step()
            return fn(*args, **kwargs)
        return wrapper

    def _scoped(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            self._drain_warnings()
            self.steps.append(0)
            self.call = len(self.steps) - 1
            try:
                return fn(*args, **kwargs)
            finally:
                self._drain_warnings()
                self.call = 0
        return wrapper

    def _drain_warnings(self) -> None:
        records = getattr(self, "_warnings", None)
        while records:
            w = records.pop(0)
            if "synchroniz" in str(w.message):
                self._record("cuda sync", f"{w.filename}:{w.lineno}" if self.where else "")

    # -- the context ------------------------------------------------------------------------
    def __enter__(self) -> "SyncCounter":
        for spec, wrap in ((self.scope, self._scoped), (self.step_on, self._stepping)):
            if spec is not None:
                owner, name = spec
                self._patch(owner, name, wrap(getattr(owner, name)))
        if self.device == "cuda":
            self._catch = warnings.catch_warnings(record=True)
            self._warnings = self._catch.__enter__()
            warnings.simplefilter("always")
            self._mode = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("warn")
            return self
        for name in SYNC_METHODS:
            self._patch(torch.Tensor, name, self._counting(f"Tensor.{name}",
                                                           getattr(torch.Tensor, name)))
        for name in SYNC_FUNCTIONS:
            self._patch(torch, name, self._counting(f"torch.{name}", getattr(torch, name)))
        for name in ("__getitem__", "__setitem__"):
            self._patch(torch.Tensor, name, self._counting(
                f"Tensor.{name}[bool]", getattr(torch.Tensor, name),
                only_if=lambda t, index, *rest: _bool_index(index)))
        return self

    def __exit__(self, *exc) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode(self._mode)
            self._drain_warnings()
            self._catch.__exit__(*exc)
            self._warnings = None
        for owner, name, old in reversed(self._undo):
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)
        self._undo.clear()
