"""The paper's evaluation protocol (appendix F): targeted attacks, summarised per image as a
best, an average and a worst case.

Every image is attacked towards the other K−1 classes; then, per image,

- **best case**: the easiest target — the successful one with the smallest distortion
  (``rank_by``, ℓ2 by default); the image counts as a success when any target succeeded;
- **average case**: one target drawn at random per image (seeded; the same draw as
  ``targets="random"`` with that seed);
- **worst case**: the hardest target — the one with the largest distortion; the image counts
  only when *every* target succeeded.

An image is *not judged* in a case when the examples that decide it are not judged
(:mod:`attacks.indicators`): the best case of an image without a success where some target is
not judged, the worst case of one where no target failed and some is not judged, the average
case of an unjudged target. ASR is the share of the judged images that count (an image not
judged is no failure); the distortions are averaged over those images. The
per-image choice is computed from a (N, K) table of the attacked (image, target) pairs, so any
layout of the examples works (all targets, only the random ones, shards in any order).
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, Mapping, Optional

import attrs
import torch
from torch import Tensor

from attacks.result import AttackResult
from attacks.targets import expand_targets

CASES = ("best", "average", "worst")
DISTORTIONS = ("l0", "l1", "l2", "linf")


@attrs.frozen
class CaseResult:
    """One case of one attack, per image (N,): whether it counts, which example was chosen
    (row of the result, −1 for none), that example's distortions (NaN where it does not
    count) and whether the image is judged (default: all)."""

    case: str
    success: Tensor
    chosen: Tensor
    metrics: Dict[str, Tensor]
    judged: Optional[Tensor] = None

    def summary(self) -> Dict[str, float]:
        ok = self.success
        judged = int(ok.numel()) if self.judged is None else int(self.judged.sum())
        out = {"images": int(ok.numel()), "successes": int(ok.sum()), "judged": judged,
               "not_judged": int(ok.numel()) - judged,
               "asr": 100.0 * int(ok.sum()) / judged if judged else math.nan}
        for k, v in self.metrics.items():
            out[k] = float(v[ok].double().mean()) if ok.any() else math.nan
        return out


def average_case_targets(labels: Tensor, num_classes: int, seed: int) -> Tensor:
    """The average case's target of each image, (N,): ``targets="random"`` with ``seed``."""
    return expand_targets(labels, num_classes, "random", seed)[1].targets


def _table(result: AttackResult, num_images: int, num_classes: int, rank_by: str):
    """Per (image, target): row index (−1 if not attacked), success (judged), judged and the
    ``rank_by`` value."""
    if not bool(result.targeted.all()):
        raise ValueError("the evaluation protocol needs targeted examples; got untargeted ones")
    if rank_by not in result.metrics:
        raise ValueError(f"rank_by must be one of {sorted(result.metrics)}; got {rank_by!r}")
    src, tgt = result.source_index.long(), result.targets.long()
    if src.numel() and (int(src.max()) >= num_images or int(src.min()) < 0):
        raise ValueError(f"source_index out of range for num_images={num_images}")
    cell = src * num_classes + tgt
    row = torch.full((num_images * num_classes,), -1, dtype=torch.long)
    row[cell] = torch.arange(src.numel())
    if int((row >= 0).sum()) != src.numel():
        raise ValueError("an (image, target) pair is attacked more than once")
    row = row.view(num_images, num_classes)
    present = row >= 0
    safe = row.clamp_min(0)
    judged = present & result.judged[safe]
    success = judged & result.success[safe]
    score = torch.where(success, result.metrics[rank_by][safe].double(),
                        torch.tensor(math.nan, dtype=torch.float64))
    return row, present, success, judged, score


def evaluate_cases(result: AttackResult, labels: Tensor, num_classes: int, *, seed: int = 0,
                   rank_by: str = "l2", cases: Iterable[str] = CASES,
                   metrics: Iterable[str] = DISTORTIONS) -> Dict[str, CaseResult]:
    """Best / average / worst case per image of a targeted ``result`` on images with the
    true ``labels`` (N,).

    The best and worst cases need every other class attacked for every image; the average
    case needs the seeded random target of each image (``seed`` as in ``targets="random"``).
    """
    cases = tuple(cases)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise ValueError(f"cases must be among {CASES}; got {unknown}")
    labels = labels.cpu().long()
    n = labels.shape[0]
    result = result.to("cpu")
    row, present, success, judged, score = _table(result, n, num_classes, rank_by)
    others = torch.ones(n, num_classes, dtype=torch.bool)
    others[torch.arange(n), labels] = False
    out = {}
    for case in cases:
        if case == "average":
            t = average_case_targets(labels, num_classes, seed)
            if not bool(present[torch.arange(n), t].all()):
                raise ValueError("the average case needs each image's seeded random target; "
                                 f"attack with targets='random' (seed {seed}) or 'all'")
            pick, ok = t, success[torch.arange(n), t]
            known = judged[torch.arange(n), t]
        else:
            if not bool((present | ~others).all()):
                raise ValueError(f"the {case} case needs every image attacked towards every "
                                 "other class (targets='all')")
            if case == "best":
                pick = torch.where(success, score, math.inf).argmin(1)
                ok = success.any(1)
                known = ok | (judged | ~others).all(1)  # no success: every failure judged
            else:
                pick = torch.where(success, score, -math.inf).argmax(1)
                ok = (success | ~others).all(1)
                known = ok | (judged & ~success & others).any(1)  # a judged failure decides
        chosen = torch.where(ok, row[torch.arange(n), pick], -1)
        safe = chosen.clamp_min(0)
        nan = torch.tensor(math.nan)
        values = {m: torch.where(ok, result.metrics[m][safe].float(), nan) for m in metrics}
        out[case] = CaseResult(case=case, success=ok, chosen=chosen, metrics=values,
                               judged=known)
    return out


def threshold_to_l0(delta: Tensor, l0: Tensor) -> Tensor:
    """Keep the ``l0`` (B,) largest-magnitude entries of each perturbation, zero the rest —
    the paper's check of whether a dense attack (C&W) thresholded down to StrAttack's
    sparsity stays adversarial (section 5: 6.7% did)."""
    b = delta.shape[0]
    flat = delta.flatten(1)
    k = l0.round().long().clamp(0, flat.shape[1]).view(b, 1)
    order = flat.abs().argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1], device=delta.device).expand(b, -1))
    return torch.where(rank < k, flat, torch.zeros_like(flat)).view_as(delta)


def summary_rows(results: Mapping[str, Mapping[str, CaseResult]]):
    """Long-format rows ``{attack, case, images, successes, asr, l0, ...}`` for tables."""
    rows = []
    for attack, per_case in results.items():
        for case, cr in per_case.items():
            rows.append({"attack": attack, "case": case, **cr.summary()})
    return rows
