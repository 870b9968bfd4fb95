"""The result of an attack: images, perturbations, an explicit success mask, and per-example
metrics. Failed examples are returned as the clean image (δ = 0) and their distortions are NaN,
so they can never be averaged in as successes. ``save``/``load`` use the CLI's file formats
(attacks.result_io)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Optional

import attrs
import torch
from torch import Tensor


@attrs.frozen
class AttackResult:
    """All per-example fields are batched over the examples attacked (B,)."""

    attack: str
    adversarial: Tensor        # (B, C, H, W), the verified image; x0 on failure
    delta: Tensor              # (B, C, H, W), adversarial − x0 (zero on failure)
    success: Tensor            # (B,) bool, verified by a fresh forward pass
    labels: Tensor             # (B,) true labels
    targets: Tensor            # (B,) targets (== labels for untargeted examples)
    targeted: Tensor           # (B,) bool
    source_index: Tensor       # (B,) index of the clean image each example came from
    metrics: Dict[str, Tensor]  # l0, l1, l2, linf, groups_nonzero, groups_fraction: NaN on failure
    c: Tensor                  # (B,) the loss constant of the returned example (NaN if failed)
    gradient_evals: Tensor     # (B,) gradient evaluations spent on the example
    forward_evals: Tensor      # (B,) forward-only evaluations (success checks)
    refined: Optional[Tensor] = None  # (B,) bool: the refine stage improved the answer
    grid: bool = False         # adversarial examples lie on the 8-bit grid (attacks.grid)
    # (B,) bool: the model's logits were NaN/inf for the example: it failed because the model
    # is broken, not because it is robust; counted apart in summary()
    nonfinite: Optional[Tensor] = None

    def __len__(self) -> int:
        return self.success.shape[0]

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())

    def summary(self) -> Dict[str, float]:
        """ASR (%) and the mean of every metric over the successful examples."""
        ok = self.success
        out = {"examples": len(self), "successes": int(ok.sum()),
               "asr": 100.0 * self.success_rate, "grid": self.grid}
        for k, v in self.metrics.items():
            out[k] = float(v[ok].double().mean()) if ok.any() else math.nan
        out["gradient_evals"] = float(self.gradient_evals.double().mean())
        out["nonfinite"] = int(self.nonfinite.sum()) if self.nonfinite is not None else 0
        return out

    def to(self, device) -> "AttackResult":
        move = lambda v: v.to(device) if isinstance(v, Tensor) else v
        return attrs.evolve(self, **{f.name: move(getattr(self, f.name))
                                     for f in attrs.fields(AttackResult)
                                     if isinstance(getattr(self, f.name), Tensor)},
                            metrics={k: move(v) for k, v in self.metrics.items()})

    def save(self, path) -> Path:
        """Write a results directory in the CLI's formats (batches/*.npz, adversarial.npz,
        metrics.csv, summary.json; see attacks.result_io); returns its path."""
        from attacks import result_io
        return result_io.save(self, path)

    @staticmethod
    def load(path) -> "AttackResult":
        """Read a directory written by :meth:`save` or by ``admm-attack solve`` (on the CPU)."""
        from attacks import result_io
        return result_io.load(path)

    def equals(self, other: "AttackResult") -> bool:
        """Same attack, grid flag and per-example fields (shape, dtype and values; NaN equals
        NaN; a missing ``refined`` counts as all False)."""
        def same(a: Tensor, b: Tensor) -> bool:
            a, b = a.cpu(), b.cpu()
            if a.shape != b.shape or a.dtype != b.dtype:
                return False
            both_nan = (a.isnan() & b.isnan()) if a.is_floating_point() else False
            return bool(((a == b) | both_nan).all())
        flag = lambda r, k="refined": (getattr(r, k) if getattr(r, k) is not None
                                       else torch.zeros_like(r.success))
        fields = [f.name for f in attrs.fields(AttackResult)
                  if f.name not in ("attack", "grid", "metrics", "refined", "nonfinite")]
        return (isinstance(other, AttackResult) and self.attack == other.attack
                and self.grid == other.grid and set(self.metrics) == set(other.metrics)
                and all(same(getattr(self, k), getattr(other, k)) for k in fields)
                and same(flag(self), flag(other))
                and same(flag(self, "nonfinite"), flag(other, "nonfinite"))
                and all(same(v, other.metrics[k]) for k, v in self.metrics.items()))

    @staticmethod
    def concat(parts) -> "AttackResult":
        parts = list(parts)
        first = parts[0]
        cat = lambda name: torch.cat([getattr(p, name) for p in parts])
        fields = {f.name: cat(f.name) for f in attrs.fields(AttackResult)
                  if isinstance(getattr(first, f.name), Tensor)}
        fields["metrics"] = {k: torch.cat([p.metrics[k] for p in parts]) for k in first.metrics}
        return AttackResult(attack=first.attack, grid=first.grid, **fields)


def build_result(name: str, x0: Tensor, index: Tensor, tg, outcome, groups,
                 grid: bool = False) -> AttackResult:
    """Assemble a result from an engine ``Outcome``; distortions of failures become NaN."""
    from attacks.metrics import distortions
    fail = ~outcome.success
    delta = outcome.adversarial - x0
    metrics = {k: v.masked_fill(fail, float("nan"))
               for k, v in distortions(delta, groups).items()}
    return AttackResult(attack=name, adversarial=outcome.adversarial, delta=delta,
                        success=outcome.success, labels=tg.labels, targets=tg.targets,
                        targeted=tg.targeted, source_index=index, metrics=metrics, c=outcome.c,
                        gradient_evals=outcome.gradient_evals,
                        forward_evals=outcome.forward_evals, refined=outcome.refined,
                        grid=grid, nonfinite=outcome.nonfinite if outcome.nonfinite is not None
                        else torch.zeros_like(outcome.success))
