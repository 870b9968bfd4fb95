"""The result of an attack: images, perturbations, an explicit success mask, and per-example
metrics. Failed examples are returned as the clean image (δ = 0) and their distortions are NaN,
so they can never be averaged in as successes.

Each per-example field is declared once (:func:`attacks.result_io.per_example`): concatenation,
``to``, ``equals`` and the file formats (batch files, metrics.csv, adversarial.npz; see
:mod:`attacks.result_io`) derive from the declarations. Adding a per-example field is one
declaration here plus the code that fills it (a field of :class:`attacks.verify.Outcome` of the
same name is carried over by :func:`build_result`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

import attrs
import torch
from torch import Tensor

from attacks import indicators, result_io
from attacks.metrics import NAMES as METRICS
from attacks.metrics import distortions
from attacks.result_io import declared, per_example


@attrs.frozen(kw_only=True)
class AttackResult:
    """All per-example fields are batched over the examples attacked (B,)."""

    attack: str
    # (B, C, H, W), the verified image; x0 on failure
    adversarial: Tensor = per_example(npz=0)
    delta: Tensor = per_example(npz=1)           # (B, C, H, W), adversarial − x0 (0 on failure)
    success: Tensor = per_example(csv=(4, "success"), npz=3)  # (B,) bool, by a fresh forward
    labels: Tensor = per_example(csv=(2, "label"), npz=5)     # (B,) true labels
    # (B,) targets (== labels for untargeted examples)
    targets: Tensor = per_example(csv=(3, "target"), npz=6)
    targeted: Tensor = per_example(csv=(9, "targeted"), npz=7)  # (B,) bool
    # (B,) index of the clean image each example came from
    source_index: Tensor = per_example(csv=(1, "source_index"), npz=4)
    # (B,) the loss constant of the returned example (NaN if failed)
    c: Tensor = per_example(csv=(6, "c"))
    # (B,) gradient evaluations spent on the example
    gradient_evals: Tensor = per_example(csv=(7, "gradient_evals"))
    # (B,) forward-only evaluations (success checks)
    forward_evals: Tensor = per_example(csv=(10, "forward_evals"))
    # (B,) bool: the refine stage improved the answer
    refined: Optional[Tensor] = per_example(csv=(8, "refined"), missing=torch.bool)
    # (B,) bool: the flags hold the reason "nonfinite" (NaN/inf logits or gradients): the
    # example failed because the model is broken, not because it is robust
    nonfinite: Optional[Tensor] = per_example(csv=(11, "nonfinite"), missing=torch.bool)
    # l0, l1, l2, linf, groups_nonzero, groups_fraction: NaN on failure
    metrics: Dict[str, Tensor] = per_example(csv=(5, METRICS), prefix="metric_")
    # (B,) int32: the reasons (bits) of attacks.indicators; in metrics.csv as the example's
    # status (success, failed, not judged) and reason; an older file: from nonfinite alone
    flags: Optional[Tensor] = per_example(csv=(12, ("status", "reason")), npz=8,
                                          missing=torch.int32, derive=indicators.csv_columns)
    grid: bool = False         # adversarial examples lie on the 8-bit grid (attacks.grid)

    def __attrs_post_init__(self) -> None:
        if self.flags is None and self.nonfinite is not None:  # a file before the flags
            object.__setattr__(self, "flags", self.nonfinite.int() * indicators.NONFINITE)
        if self.nonfinite is None and self.flags is not None:
            object.__setattr__(self, "nonfinite", (self.flags & indicators.NONFINITE) != 0)
        for name, meta in declared(type(self)):   # an optional field not given: all zeros
            if meta.missing is not None and getattr(self, name) is None:
                object.__setattr__(self, name, torch.zeros(
                    self.success.shape, dtype=meta.missing, device=self.success.device))

    def __len__(self) -> int:
        return self.success.shape[0]

    @property
    def status(self) -> List[str]:
        """Per example: "success" (verified), "failed" or "not judged" (attacks.indicators)."""
        return indicators.status_names(self.flags.cpu(), self.success.cpu()).tolist()

    @property
    def reasons(self) -> List[str]:
        """Per example: its reasons (names of attacks.indicators.REASONS joined by "+"), ""
        for none."""
        return indicators.reason_names(self.flags.cpu()).tolist()

    @property
    def judged(self) -> Tensor:
        """(B,) bool: the examples that are a success or a failure (not "not judged")."""
        return ~indicators.not_judged(self.flags)

    @property
    def success_rate(self) -> float:
        """Successes over the judged examples (NaN when none is judged)."""
        judged = self.judged
        n = int(judged.sum())
        return float((self.success & judged).sum()) / n if n else math.nan

    def summary(self) -> Dict[str, object]:
        """ASR (%, over the judged examples: an example not judged is no failure), the mean of
        every metric over the (judged) successful examples, and the counts per status and per reason
        (:func:`attacks.indicators.counts`)."""
        ok = self.success & self.judged
        out = {"examples": len(self), **indicators.counts(self.flags, ok),
               "asr": 100.0 * self.success_rate, "grid": self.grid}
        for k, v in self.metrics.items():
            out[k] = float(v[ok].double().mean()) if ok.any() else math.nan
        out["gradient_evals"] = float(self.gradient_evals.double().mean())
        out["nonfinite"] = int(self.nonfinite.sum())
        return out

    def _map(self, fn) -> Dict[str, object]:
        """``fn`` applied to every per-example tensor (each entry of a dict field)."""
        return {name: ({k: fn(v) for k, v in getattr(self, name).items()} if meta.prefix
                       else fn(getattr(self, name))) for name, meta in declared(type(self))}

    def to(self, device) -> "AttackResult":
        return attrs.evolve(self, **self._map(lambda v: v.to(device)))

    def save(self, path) -> Path:
        """Write a results directory in the CLI's formats (batches/*.npz, adversarial.npz,
        metrics.csv, summary.json; see attacks.result_io); returns its path."""
        return result_io.save(self, path)

    @classmethod
    def load(cls, path) -> "AttackResult":
        """Read a directory written by :meth:`save` or by ``admm-attack solve`` (on the CPU)."""
        return result_io.load(cls, path)

    def equals(self, other: "AttackResult") -> bool:
        """Same class, attack, grid flag and compared per-example fields (shape, dtype and
        values; NaN equals NaN; a dict field: same keys)."""
        def same(a: Tensor, b: Tensor) -> bool:
            a, b = a.cpu(), b.cpu()
            if a.shape != b.shape or a.dtype != b.dtype:
                return False
            both_nan = (a.isnan() & b.isnan()) if a.is_floating_point() else False
            return bool(((a == b) | both_nan).all())

        def same_field(name: str, meta: result_io.PerExample) -> bool:
            a, b = getattr(self, name), getattr(other, name)
            if meta.prefix:
                return set(a) == set(b) and all(same(v, b[k]) for k, v in a.items())
            return same(a, b)

        per = dict(declared(type(self)))
        return (type(other) is type(self)
                and all(getattr(self, f.name) == getattr(other, f.name)
                        for f in attrs.fields(type(self)) if f.name not in per)
                and all(same_field(k, meta) for k, meta in per.items() if meta.compare))

    @staticmethod
    def concat(parts) -> "AttackResult":
        """The results ``parts`` (of one attack, same class) one after the other."""
        parts = list(parts)
        first = parts[0]
        fields = {}
        for name, meta in declared(type(first)):
            values = [getattr(p, name) for p in parts]
            fields[name] = ({k: torch.cat([v[k] for v in values]) for k in values[0]}
                            if meta.prefix else torch.cat(values))
        return attrs.evolve(first, **fields)


def build_result(name: str, x0: Tensor, index: Tensor, tg, outcome, groups,
                 grid: bool = False) -> AttackResult:
    """Assemble a result from an engine ``Outcome`` (every per-example field the outcome
    carries, under the same name); distortions of failures become NaN."""
    fail = ~outcome.success
    delta = outcome.adversarial - x0
    metrics = {k: v.masked_fill(fail, float("nan"))
               for k, v in distortions(delta, groups).items()}
    carried = {f: getattr(outcome, f) for f, _ in declared(AttackResult) if hasattr(outcome, f)}
    return AttackResult(attack=name, **carried, delta=delta, labels=tg.labels,
                        targets=tg.targets, targeted=tg.targeted, source_index=index,
                        metrics=metrics, grid=grid)
