"""Indicators of attack failure (Pintor et al., NeurIPS 2022): whether a failed attack says
anything about the model.

A success is verified by a fresh forward pass; a failure is only worth something when the attack
could work. Every example therefore gets a **status**: ``success`` (verified), ``failed`` (the
attack ran properly and found nothing within its budget) or ``not judged``, with the
**reasons** (one bit each of a (B,) int32 ``flags`` tensor, :data:`REASONS`):

- ``nonfinite``: NaN or infinite logits, loss values or gradients at any point of the search
  (a check, an iteration, the solver's non-finite guard, the verification);
- ``no_gradient``: the loss gradient w.r.t. the input was numerically zero,
  ``‖∇f‖₂ ≤ GRADIENT_RTOL·|f|``, on more than :data:`NO_GRADIENT_SHARE` of the iterations where
  the loss was active (margin + κ > 0: the hinge and the augmented Lagrangian are flat, with a
  legitimately zero gradient, only where the constraint holds) — input quantisation,
  thresholding, a model that detaches its input;
- ``unstable``: two evaluations of the same final example or clean image disagree on the class
  (a randomised model, dropout left on);
- ``silent_success``: the search judged a candidate adversarial and the verification did not;
- ``incomplete`` (a mark on a failure, which stays judged): the solve spent its whole budget and
  the violation margin + κ still reached a new low in its last :data:`RECENT` of iterations.

The evidence is gathered where it arises, on the device, without a host sync per iteration
(:class:`Evidence` per example of a batch, :class:`SolveWatch` per ADMM solve,
:func:`unstable` at the finish: two extra forward passes of the final and the clean images,
not counted in ``forward_evals`` — they are the evaluation's audit, not the attack's cost), and
decided once, by :meth:`Evidence.verdict`: a success keeps only ``unstable`` (a verified example
the model does not repeat is not a success), a failure keeps all its reasons.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional

import attrs
import numpy as np
import torch
from torch import Tensor

#: ``‖∇f‖₂ ≤ GRADIENT_RTOL·|f|`` on an active iteration: the gradient is numerically zero
GRADIENT_RTOL = 1e-6
#: ``no_gradient`` when more than this share of the active iterations had a zero gradient
NO_GRADIENT_SHARE = 0.5
#: a violation counts as a new low when it is below the lowest so far by this share
IMPROVE_RTOL = 1e-3
#: ``incomplete``: a new low in this last share of the solve's iterations
RECENT = 0.1


@attrs.frozen
class Reason:
    """One indicator: its name (the metrics.csv ``reason`` word), its bit in ``flags``, whether
    the example stays judged (a mark on a failure) and what it means."""

    name: str
    bit: int
    judged: bool
    text: str


REASONS = (
    Reason("nonfinite", 1, False, "NaN or infinite logits or gradients: a broken model"),
    Reason("no_gradient", 2, False, "the loss gradient w.r.t. the input was zero on most "
           "iterations: quantised, thresholded or detached input"),
    Reason("unstable", 4, False, "the model's class changed between two evaluations of the "
           "same image: a randomised model"),
    Reason("silent_success", 8, False, "a candidate the search found adversarial was not on "
           "re-verification"),
    Reason("incomplete", 16, True, "the budget ran out while the violation was still "
           "decreasing"),
)
BY_NAME: Dict[str, Reason] = {r.name: r for r in REASONS}
NONFINITE, NO_GRADIENT, UNSTABLE, SILENT_SUCCESS, INCOMPLETE = (r.bit for r in REASONS)
#: the reasons that make an example "not judged"
NOT_JUDGED = sum(r.bit for r in REASONS if not r.judged)

STATUSES = ("success", "failed", "not judged")


def not_judged(flags: Tensor) -> Tensor:
    """(B,) bool: examples whose ``flags`` (as :meth:`Evidence.verdict` leaves them) hold a
    reason not to judge them."""
    return (flags & NOT_JUDGED) != 0


def status_names(flags, success) -> np.ndarray:
    """The status of every example (B,) as text (:data:`STATUSES`); arrays or tensors."""
    flags, success = np.asarray(flags), np.asarray(success, dtype=bool)
    return np.where((flags & NOT_JUDGED) != 0, STATUSES[2],
                    np.where(success, STATUSES[0], STATUSES[1]))


def reason_names(flags) -> np.ndarray:
    """The reasons of every example (B,) as text: names joined by ``+``, "" for none."""
    flags = np.asarray(flags)
    out = [""] * flags.shape[0]
    for r in REASONS:
        for i in np.flatnonzero(flags & r.bit):
            out[i] = f"{out[i]}+{r.name}" if out[i] else r.name
    return np.asarray(out, dtype=str)


def csv_columns(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """metrics.csv's ``status`` and ``reason`` columns, from the ``flags`` and ``success``
    arrays of a result."""
    return {"status": status_names(arrays["flags"], arrays["success"]),
            "reason": reason_names(arrays["flags"])}


def counts(flags: Tensor, success: Tensor) -> Dict[str, object]:
    """The summary's counts: per status (``successes``, ``failures``, ``not_judged``, and
    ``judged``) and per reason (``reasons``: name -> examples)."""
    skip = not_judged(flags)
    return {"successes": int((success & ~skip).sum()), "failures": int((~success & ~skip).sum()),
            "not_judged": int(skip.sum()), "judged": int((~skip).sum()),
            "reasons": {r.name: int(((flags & r.bit) != 0).sum()) for r in REASONS}}


def reasons_text(reasons: Dict[str, int]) -> str:
    """``nonfinite 3 (what it means); …``: the reasons not to judge of a ``reasons`` count."""
    return "; ".join(f"{r.name} {reasons[r.name]} ({r.text})" for r in REASONS
                     if not r.judged and reasons.get(r.name))


def unjudged_line(summary: Dict[str, object]) -> Optional[str]:
    """One line on the examples of ``summary`` (:meth:`AttackResult.summary`) that are not
    judged, with the count and the meaning of each reason; None when every one is judged."""
    n = int(summary.get("not_judged", 0))
    if not n:
        return None
    return (f"{n} of {summary['examples']} examples not judged: "
            f"{reasons_text(summary.get('reasons', {}))}; they count neither as successes "
            "nor as failures (robust)")


def combine(summaries: Iterable[Dict[str, object]]) -> Dict[str, object]:
    """The ``examples``, ``not_judged`` and ``reasons`` counts of several summaries (an eval's
    attacks) added up."""
    out: Dict[str, object] = {"examples": 0, "not_judged": 0, "reasons": {}}
    for s in summaries:
        out["examples"] += int(s["examples"])
        out["not_judged"] += int(s.get("not_judged", 0))
        for k, v in dict(s.get("reasons", {})).items():
            out["reasons"][k] = out["reasons"].get(k, 0) + int(v)
    return out


def nothing_judged(summary: Dict[str, object]) -> Optional[str]:
    """Where no example of ``summary`` (one run's, or :func:`combine`'s) is judged, what to
    say: one line naming the reasons (nothing was measured). Else None."""
    n = int(summary["examples"])
    if not n or int(summary.get("not_judged", 0)) < n:
        return None
    return (f"none of the {n} examples could be judged: "
            f"{reasons_text(dict(summary.get('reasons', {})))}; the attack's failures say "
            "nothing about robustness (status and reason per example in metrics.csv)")


# -- evidence ------------------------------------------------------------------------------------
def _put(t: Tensor, rows: Optional[Tensor], value: Tensor) -> Tensor:
    """``t`` with rows ``rows`` (None: all) replaced by ``value``."""
    return value if rows is None else t.index_copy(0, rows, value)


def _rows(t: Tensor, rows: Optional[Tensor]) -> Tensor:
    return t if rows is None else t.index_select(0, rows)


class Evidence:
    """The indicators of every example of a batch, (B,) each: ``flags`` (the reasons seen), and
    the counts of ``active`` iterations and of those with a zero gradient (``flat``). Updated in
    place on the device; :meth:`verdict` decides."""

    def __init__(self, b: int, device):
        self.flags = torch.zeros(b, dtype=torch.int32, device=device)
        self.active = torch.zeros(b, dtype=torch.long, device=device)
        self.flat = torch.zeros(b, dtype=torch.long, device=device)

    def flag(self, bit: int, mask: Tensor, rows: Optional[Tensor] = None) -> None:
        """Add the reason ``bit`` to the examples ``mask`` (of the rows ``rows``; None: all)."""
        self.flags = _put(self.flags, rows, _rows(self.flags, rows) | (mask.int() * bit))

    def mark(self, bit: int, mask: Tensor, rows: Optional[Tensor] = None) -> None:
        """Set the reason ``bit`` to ``mask`` on the rows ``rows`` (the latest word counts)."""
        self.flags = _put(self.flags, rows, (_rows(self.flags, rows) & ~bit) | (mask.int() * bit))

    def observe_gradient(self, grad: Tensor, value: Tensor, active: Tensor,
                         rows: Optional[Tensor] = None) -> None:
        """One gradient evaluation of the loss ``value`` (b,) of the rows ``rows``: ``grad``
        (b, ...) non-finite (or ``value``) flags ``nonfinite``; where ``active`` (the loss is
        not flat there by design) it counts, and counts as flat when numerically zero."""
        norm = grad.flatten(1).norm(dim=1)
        self.flag(NONFINITE, ~(torch.isfinite(norm) & torch.isfinite(value)), rows)
        flat = active & (norm <= GRADIENT_RTOL * value.abs())
        if rows is None:
            self.active += active
            self.flat += flat
        else:
            self.active.index_add_(0, rows, active.long())
            self.flat.index_add_(0, rows, flat.long())

    def verdict(self, success: Tensor) -> Tensor:
        """The final flags, (B,) int32: ``no_gradient`` decided from the counts; a success
        keeps ``unstable`` only, a failure every reason."""
        none = (self.active > 0) & (self.flat > NO_GRADIENT_SHARE * self.active)
        flags = self.flags | (none.int() * NO_GRADIENT)
        return torch.where(success, flags & UNSTABLE, flags)


class SolveWatch:
    """The evidence of one ADMM solve over the examples ``idx`` of the batch (n rows), read
    from the solver's :class:`admmkit.solver.IterationInfo` — the gradient ``info.grad``, the
    loss ``info.smooth_value`` and, as ``info.aux``, the violation margin + κ (n,) of the loss
    term (:func:`attacks.problems.loss_term`) — at every iteration, in place on per-row
    tensors (a few small operations, no sync), and handed to ``evidence`` by :meth:`report`:
    the non-finite rows, the active and flat iterations, and per row the lowest violation and
    the iteration it was reached at (``incomplete``)."""

    def __init__(self, evidence: Evidence, idx: Tensor):
        self.evidence, self.idx = evidence, idx
        n, device = idx.shape[0], idx.device
        self.bad = torch.zeros(n, dtype=torch.bool, device=device)
        self.active = torch.zeros(n, dtype=torch.long, device=device)
        self.flat = torch.zeros(n, dtype=torch.long, device=device)
        self.lowest: Optional[Tensor] = None  # in the violation's dtype, from the first
        self.lowest_at = torch.zeros(n, dtype=torch.long, device=device)

    def around(self, callback: Callable) -> Callable:
        """The solver's callback: observe, then run ``callback`` (the solve's tracker)."""
        def observed(info):
            self.observe(info)
            return callback(info)
        return observed

    def observe(self, info) -> None:
        excess, value = info.aux, info.smooth_value
        if info.grad is None or excess is None:
            return
        if info.rows is not None:  # a compacted batch: the rows of the solve it holds
            return self._observe_rows(info, info.rows)
        norm = info.grad.flatten(1).norm(dim=1)
        ran = info.state.active
        active = ran & (excess > 0)
        self.bad.logical_or_(~torch.isfinite(norm * value))
        self.active.add_(active)
        self.flat.add_(active & (norm <= GRADIENT_RTOL * value.abs()))
        if self.lowest is None:
            self.lowest = torch.full_like(excess, float("inf"))
        lower = ran & (self.lowest - excess > IMPROVE_RTOL * excess.abs())
        self.lowest = torch.where(lower, excess, self.lowest)
        self.lowest_at = torch.where(lower, info.state.iterations, self.lowest_at)

    def _observe_rows(self, info, rows: Tensor) -> None:
        """:meth:`observe` of a compacted batch, through whole-solve views of its rows."""
        whole = SolveWatch(self.evidence, rows)
        if self.lowest is None:
            self.lowest = torch.full(self.idx.shape, float("inf"), dtype=info.aux.dtype,
                                     device=self.idx.device)
        names = ("bad", "active", "flat", "lowest", "lowest_at")
        for name in names:
            setattr(whole, name, getattr(self, name).index_select(0, rows))
        whole.observe(attrs.evolve(info, rows=None))
        for name in names:
            getattr(self, name).index_copy_(0, rows, getattr(whole, name))

    def report(self, result, cap: Tensor) -> None:
        """At the end of the solve, to ``evidence``: non-finite rows (with the solver's guard,
        ``result.diverged``), the gradient counts, and ``incomplete`` (the cap reached and a new
        low in the last :data:`RECENT` of the iterations)."""
        it, e = result.iterations, self.evidence
        recent = self.lowest_at > (1 - RECENT) * it
        e.flag(NONFINITE, self.bad | result.diverged, self.idx)
        e.mark(INCOMPLETE, (it >= cap) & (it > 0) & recent, self.idx)
        e.active.index_add_(0, self.idx, self.active)
        e.flat.index_add_(0, self.idx, self.flat)


def unstable(model: Callable[[Tensor], Tensor], final: Tensor, x0: Tensor) -> Tensor:
    """(B,) bool: two evaluations of the final examples and the clean images (one batch of
    both, twice) disagree on the class of either."""
    both = torch.cat([final, x0])
    with torch.no_grad():
        first, second = model(both).argmax(1), model(both).argmax(1)
    return (first != second).view(2, -1).any(0)


__all__ = ["BY_NAME", "Evidence", "INCOMPLETE", "NONFINITE", "NOT_JUDGED", "NO_GRADIENT",
           "REASONS", "Reason", "SILENT_SUCCESS", "STATUSES", "SolveWatch", "UNSTABLE",
           "combine", "counts", "csv_columns", "not_judged", "nothing_judged", "reason_names",
           "reasons_text", "status_names", "unjudged_line", "unstable"]
