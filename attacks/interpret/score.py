"""The interpretability score (eq. 23) and the curve of its mean against the percentile ν.

    IS(δ) = ||B ∘ δ||₂ / ||δ||₂

IS → 1 when the region B (the most sensitive pixels by ASM, or the most discriminative region
by CAM) holds all of the perturbation, → 0 when the perturbation lies outside it. IS is NaN
where δ = 0 (a failed attack returns δ = 0: it has no perturbation to interpret).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Dict, Mapping, Sequence

import attrs
import torch
from torch import Tensor

from attacks.interpret.cam import gap_cam, grad_cam
from attacks.interpret.saliency import adversarial_saliency_map, percentile_mask

DEFAULT_NUS = tuple(range(30, 91, 10))  # paper Fig. 3(a): 30th to 90th percentile
MAPS = ("asm", "cam-true", "cam-target", "gradcam-true", "gradcam-target")
REFERENCE = "uniform δ (reference)"


def example_maps(model, x0: Tensor, labels: Tensor, targets: Tensor, map: str, *,
                 layer=None, head=None) -> Tensor:
    """The map B is cut from, at the clean images ``x0`` (B, C, H, W): ``"asm"`` (eq. 61, of
    (labels, targets); (B, C, H, W)), ``"cam-true"``/``"cam-target"`` (CAM of the label or
    the target for a GAP model, ``head`` from ``find_gap_head``; (B, H, W)) or
    ``"gradcam-true"``/``"gradcam-target"`` (Grad-CAM at ``layer``; (B, H, W))."""
    if map not in MAPS:
        raise ValueError(f"map must be one of {', '.join(MAPS)}; got {map!r}")
    if map == "asm":
        return adversarial_saliency_map(model, x0, labels, targets)
    classes = labels if map.endswith("-true") else targets
    if map.startswith("cam"):
        return gap_cam(model, x0, classes, head=head)
    return grad_cam(model, x0, classes, layer=layer)


def _broadcast_mask(mask: Tensor, delta: Tensor) -> Tensor:
    """A (B, H, W) map (CAM) covers every channel of (B, C, H, W)."""
    if mask.ndim == delta.ndim - 1:
        mask = mask.unsqueeze(1)
    try:
        return torch.broadcast_to(mask, delta.shape)
    except RuntimeError:
        raise ValueError(f"mask {tuple(mask.shape)} does not fit delta {tuple(delta.shape)}"
                         ) from None


def interpretability_score(delta: Tensor, mask: Tensor) -> Tensor:
    """IS(δ) = ||B ∘ δ||₂ / ||δ||₂ per example (eq. 23): (B,), NaN where δ = 0.

    ``delta``: (B, C, H, W); ``mask``: Boolean or {0, 1} of the same shape, or (B, H, W) (a
    spatial map such as B_CAM, applied to every channel).
    """
    m = _broadcast_mask(mask, delta).to(delta.dtype)
    num = (m * delta).flatten(1).norm(dim=1)
    den = delta.flatten(1).norm(dim=1)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)),
                       torch.full_like(den, math.nan))


def mean_score(scores: Tensor) -> float:
    """The mean over the examples that have a score (NaN entries are left out)."""
    return float(scores.double().nanmean()) if (~scores.isnan()).any() else math.nan


@attrs.frozen
class ISCurve:
    """Mean IS against ν for several perturbations of the same examples, under one map.

    per_example[name]: (B, len(nus)), NaN where the example does not count; mean[name]:
    (len(nus),), the mean over the counted examples; count: the examples counted per attack.
    """

    map: str
    nus: Tensor
    per_example: Dict[str, Tensor]
    mean: Dict[str, Tensor]
    count: Dict[str, int]
    strict: bool = True

    def rows(self):
        """One dict per (attack, ν): map, rule, nu, attack, mean_is, examples."""
        rule = "score > q_nu" if self.strict else "score >= q_nu"
        return [{"map": self.map, "rule": rule, "nu": float(nu), "attack": name,
                 "mean_is": float(self.mean[name][j]), "examples": self.count[name]}
                for name in self.mean for j, nu in enumerate(self.nus.tolist())]


def is_curve(deltas: Mapping[str, Tensor], scores: Tensor, nus: Sequence[float] = DEFAULT_NUS,
             *, valid=None, strict: bool = True,
             map_name: str = "map") -> ISCurve:
    """Mean IS of each perturbation in ``deltas`` (name -> (B, C, H, W)) against ν.

    ``scores``: the map B is thresholded from, (B, C, H, W) (ASM) or (B, H, W) (CAM), one per
    example and shared by all perturbations; B at ν is :func:`percentile_mask` (per example).
    ``valid``: (B,) Boolean, examples to count (default: all), or a mapping name -> (B,) for
    one set per perturbation; examples with δ = 0 never count.
    """
    nus_t = torch.as_tensor([float(v) for v in nus], dtype=torch.float64)
    masks = [percentile_mask(scores, float(v), strict=strict) for v in nus_t.tolist()]
    per, mean, count = {}, {}, {}
    for name, d in deltas.items():
        if d.shape[0] != scores.shape[0]:
            raise ValueError(f"{name}: {d.shape[0]} perturbations for {scores.shape[0]} maps")
        s = torch.stack([interpretability_score(d.double(), m) for m in masks], dim=1)
        v = valid.get(name) if isinstance(valid, Mapping) else valid
        if v is not None:
            s = s.masked_fill(~v.view(-1, 1).to(s.device), math.nan)
        per[name] = s
        ok = ~s[:, 0].isnan()
        count[name] = int(ok.sum())
        mean[name] = (s[ok].mean(0) if ok.any()
                      else torch.full_like(nus_t, math.nan))
    return ISCurve(map_name, nus_t, per, mean, count, strict)


def check_aligned(results: Mapping) -> tuple:
    names = list(results)
    if not names:
        raise ValueError("no results given")
    first = results[names[0]]
    for n in names[1:]:
        r = results[n]
        for f in ("source_index", "labels", "targets"):
            if not torch.equal(getattr(r, f).cpu(), getattr(first, f).cpu()):
                raise ValueError(f"results {names[0]!r} and {n!r} differ in {f}: the curve "
                                 "compares attacks on the same examples (images and targets)")
    return first.source_index, first.labels, first.targets


def result_maps(model, images: Tensor, results: Mapping, map: str = "asm", *,
                layer=None) -> Tensor:
    """The map (one of :data:`MAPS`, see :func:`example_maps`) of each example of
    ``results`` (aligned AttackResults), computed at the clean images ``images[source_index]``.
    ASM uses (true label, target); CAM and Grad-CAM the true or the target label."""
    if map not in MAPS:
        raise ValueError(f"map must be one of {', '.join(MAPS)}; got {map!r}")
    idx, labels, targets = check_aligned(results)
    x0 = images.index_select(0, idx.to(images.device))
    dev = x0.device
    return example_maps(model, x0, labels.to(dev), targets.to(dev), map, layer=layer)


def results_is_curve(model, images: Tensor, results: Mapping, map: str = "asm",
                     nus: Sequence[float] = DEFAULT_NUS, *, strict: bool = True,
                     common: bool = True, layer=None, reference: bool = False) -> ISCurve:
    """The IS curve of several attacks' results on the same images (paper Fig. 3(a)).

    ``results``: name -> AttackResult, all with the same source_index, labels and targets
    (e.g. every attack run with the same explicit targets). ``common=True`` counts only the
    examples on which every attack succeeded (so all curves average the same examples);
    ``common=False`` counts each attack's own successes. ``reference=True`` adds the curve of
    a perturbation spread evenly over every pixel (:data:`REFERENCE`, IS = sqrt(|B|/d)): the
    score of a perturbation that ignores the map, counted on the examples every attack fooled.
    """
    scores = result_maps(model, images, results, map, layer=layer)
    success = {n: r.success.to(scores.device) for n, r in results.items()}
    valid = torch.stack(list(success.values())).all(0) if common else success
    deltas = {n: r.delta.to(scores.device) for n, r in results.items()}
    if reference:
        if REFERENCE in deltas:
            raise ValueError(f"{REFERENCE!r} is the name of the reference curve")
        deltas[REFERENCE] = torch.ones_like(next(iter(deltas.values())))
        all_ok = torch.stack(list(success.values())).all(0)
        valid = valid if common else {**valid, REFERENCE: all_ok}
    return is_curve(deltas, scores, nus, valid=valid, strict=strict, map_name=map)


def write_csv(path, curves: Sequence[ISCurve]) -> Path:
    """All curves' rows (see :meth:`ISCurve.rows`) in one CSV file."""
    path = Path(path)
    rows = [r for c in curves for r in c.rows()]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["map", "rule", "nu", "attack", "mean_is", "examples"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "mean_is": f"{r['mean_is']:.6f}"})
    return path
