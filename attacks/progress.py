"""Progress of a long attack: rich columns (batches done, live ASR, mean ℓ0 / ℓ2, elapsed and
remaining time) on stderr, or a callback of the user's own; the one progress bar of the
Python API, the run layer and the adapters.

Shown by default only where a person is watching (:func:`watched`: stderr is an interactive
terminal, or the code runs in a Jupyter notebook), so scripts, logs and tests stay quiet;
``verbose=True`` / ``False`` decides it explicitly. One bar at a time: a bar opened while
another is showing (an attack called inside an adapter's ``save``) stays hidden.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

import torch

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from attacks.result import AttackResult

#: ``callback(done, total, part)`` after each batch: batches done, batches in all, the batch's
#: result.
ProgressCallback = Callable[[int, int, AttackResult], None]

COLUMNS = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=16),
           MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
           TimeRemainingColumn())


def watched() -> bool:
    """Whether a person is watching this process: stderr is an interactive terminal, or the
    code runs in a Jupyter notebook (an IPython kernel)."""
    isatty = getattr(sys.stderr, "isatty", None)
    if isatty is not None and isatty():
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell" or "google.colab" in str(type(shell))


def check_verbose(verbose: Optional[bool]) -> None:
    if verbose is not None and not isinstance(verbose, bool):
        raise ValueError(f"verbose must be True, False or None (progress where a person is "
                         f"watching); got {verbose!r}")


def shows_progress(verbose: Optional[bool]) -> bool:
    """``verbose`` as given; None (the default everywhere) means "if :func:`watched`"."""
    check_verbose(verbose)
    return watched() if verbose is None else verbose


class LiveStats:
    """Running ASR and mean ℓ0 / ℓ2 over the successes of the batches seen so far."""

    def __init__(self):
        self.examples = self.successes = 0
        self.l0 = self.l2 = 0.0

    def add(self, success, l0, l2) -> None:
        """A batch's success mask and ℓ0, ℓ2 (B,) each (tensors or arrays)."""
        ok = torch.as_tensor(success)
        self.examples += int(ok.numel())
        self.successes += int(ok.sum())
        if ok.any():
            self.l0 += float(torch.as_tensor(l0)[ok].double().sum())
            self.l2 += float(torch.as_tensor(l2)[ok].double().sum())

    def __str__(self) -> str:
        if not self.examples:
            return "ASR –"
        text = (f"ASR {100.0 * self.successes / self.examples:5.1f}% "
                f"({self.successes}/{self.examples})")
        if self.successes:
            text += f"  mean ℓ0 {self.l0 / self.successes:.1f}  ℓ2 {self.l2 / self.successes:.3f}"
        return text


class BatchProgress:
    """``with BatchProgress(label, total, verbose, callback) as p: ... p.advance(part)``.

    ``verbose`` draws a rich progress bar on stderr (None: if :func:`watched`), unless another
    bar is showing; ``callback`` is called after every batch. Neither: nothing is shown.
    ``done`` batches are counted as finished from the start (their statistics go in
    :attr:`stats` before entering).
    """

    #: bars showing now (at most one: a nested bar stays hidden)
    showing = 0

    def __init__(self, label: str, total: Optional[int], verbose: Optional[bool] = False,
                 callback: Optional[ProgressCallback] = None, done: int = 0):
        self.total, self.done, self.callback = total, done, callback
        self.stats = LiveStats()
        self._show = shows_progress(verbose)
        self._label = label

    def __enter__(self) -> "BatchProgress":
        self._show = self._show and not BatchProgress.showing
        BatchProgress.showing += self._show
        self._bar = Progress(*COLUMNS, console=Console(stderr=True), disable=not self._show)
        self._bar.__enter__()
        self._task = self._bar.add_task(self._label, total=self.total, completed=self.done,
                                        stats=str(self.stats))
        return self

    def __exit__(self, *exc) -> None:
        BatchProgress.showing -= self._show
        self._bar.__exit__(*exc)

    def advance(self, part: Optional[AttackResult]) -> None:
        """One more batch done; ``part`` (its result, if any) feeds the live statistics."""
        self.done += 1
        if part is not None:
            self.stats.add(part.success, part.metrics["l0"], part.metrics["l2"])
        self._bar.update(self._task, advance=1, stats=str(self.stats))
        if self.callback is not None:
            self.callback(self.done, self.total, part)


