"""Compare several attacks' perturbations of the same examples through the interpretability
maps, and write the files of ``admm-attack explain`` (also used by
``examples/interpretability.py``):

    is_curve.csv         map, rule, ν, attack, mean IS, examples counted
    is_per_example.csv   every example's IS per map, ν and attack (empty where it does not count)
    is_curve.png         mean IS against ν, one panel per map (paper Fig. 3(a))
    figures/example-NNNN.png   overlays of one example (paper Figs. 3(b)-(c), A2)
    summary.json         mean IS per map / attack / ν, counts, paired differences

Means are over the examples that *every* attack fooled (so each curve averages the same
examples); the reference curve is a perturbation spread evenly over the image.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import attrs
import torch
from torch import Tensor, nn

from attacks.store import write_json
from attacks.interpret.cam import default_cam_layer, find_gap_head, module_name
from attacks.interpret.score import (DEFAULT_NUS, MAPS, REFERENCE, ISCurve, check_aligned,
                                     example_maps, is_curve, write_csv)

MAP_DESCRIPTIONS = {
    "asm": "adversarial saliency map ASM(x0, t), eq. 61",
    "cam-true": "CAM (GAP head) of the true label t0",
    "cam-target": "CAM (GAP head) of the target label t",
    "gradcam-true": "Grad-CAM of the true label t0",
    "gradcam-target": "Grad-CAM of the target label t",
}


@attrs.frozen(eq=False)
class Comparison:
    """Several attacks' perturbations of the same examples.

    ``x0`` (B, C, H, W) the clean images; ``labels``, ``targets``, ``source_index`` (B,);
    ``deltas``: attack name -> δ (B, C, H, W); ``success``: attack name -> (B,) Boolean.
    A failed example has δ = 0 and never counts.
    """

    x0: Tensor
    labels: Tensor
    targets: Tensor
    source_index: Tensor
    deltas: Dict[str, Tensor]
    success: Dict[str, Tensor]

    def __attrs_post_init__(self):
        b = self.x0.shape[0]
        if self.x0.ndim != 4:
            raise ValueError(f"x0 must be (B, C, H, W); got {tuple(self.x0.shape)}")
        if not self.deltas or set(self.deltas) != set(self.success):
            raise ValueError("deltas and success must name the same, non-empty set of attacks")
        for name in ("labels", "targets", "source_index"):
            if tuple(getattr(self, name).shape) != (b,):
                raise ValueError(f"{name} must have shape ({b},)")
        for n in self.deltas:
            if self.deltas[n].shape != self.x0.shape or tuple(self.success[n].shape) != (b,):
                raise ValueError(f"attack {n!r}: delta {tuple(self.deltas[n].shape)} and "
                                 f"success {tuple(self.success[n].shape)} do not fit x0 "
                                 f"{tuple(self.x0.shape)}")

    @classmethod
    def from_results(cls, images: Tensor, results: Mapping) -> "Comparison":
        """From AttackResults of the same examples (same source_index, labels, targets)."""
        idx, labels, targets = check_aligned(results)
        cpu = lambda t: t.detach().cpu()
        return cls(cpu(images).index_select(0, cpu(idx)), cpu(labels), cpu(targets), cpu(idx),
                   {n: cpu(r.delta) for n, r in results.items()},
                   {n: cpu(r.success).bool() for n, r in results.items()})

    @property
    def names(self) -> List[str]:
        return list(self.deltas)

    @property
    def common(self) -> Tensor:
        """(B,) Boolean: the examples every attack fooled."""
        return torch.stack([s.bool() for s in self.success.values()]).all(0)

    def __len__(self) -> int:
        return int(self.x0.shape[0])


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    if p is None:
        p = next(iter(model.buffers()), torch.empty(0))
    return p.device


@attrs.frozen
class MapSettings:
    """What the maps need beyond the model: the Grad-CAM layer, the GAP head (for CAM)."""

    layer: Optional[nn.Module] = None
    head: Any = None

    def describe(self, model: nn.Module) -> Dict[str, str]:
        out = {}
        if self.layer is not None:
            out["gradcam_layer"] = module_name(model, self.layer)
        if self.head is not None:
            where = "input" if self.head.use_input else "output"
            out["cam_features"] = f"{where} of {module_name(model, self.head.module)}"
            out["cam_classifier"] = module_name(model, self.head.linear)
        return out


def map_settings(model: nn.Module, x: Tensor, maps: Sequence[str] = (), *,
                 required: bool = True) -> MapSettings:
    """Resolve, once, what ``maps`` need (Grad-CAM layer, GAP head): ValueError if the model
    lacks it. ``required=False``: resolve whatever the model offers, never raise (figures)."""
    x = x[:2].to(_device(model))
    layer = head = None
    if not required:
        try:
            head = find_gap_head(model, x)
            layer = default_cam_layer(model, x)
        except ValueError:  # TorchScript, no conv layer: no CAM panels then
            pass
        return MapSettings(layer, head)
    if any(m.startswith("gradcam") for m in maps):
        layer = default_cam_layer(model, x)
    if any(m.startswith("cam") for m in maps):
        head = find_gap_head(model, x)
        if head is None:
            raise ValueError("CAM needs a model whose logits are one linear layer applied to "
                             "the global average pooling of a feature map (a GAP head); this "
                             "model has none: use gradcam-true/gradcam-target")
    return MapSettings(layer, head)


def compute_maps(model: nn.Module, comp: Comparison, maps: Sequence[str],
                 settings: Optional[MapSettings] = None, *, batch_size: int = 64,
                 index: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """Each map of ``maps`` at the clean images (on CPU), computed on the model's device in
    chunks of ``batch_size``; ``index`` selects examples (default: all)."""
    for m in maps:
        if m not in MAPS:
            raise ValueError(f"map must be one of {', '.join(MAPS)}; got {m!r}")
    settings = settings if settings is not None else map_settings(model, comp.x0, maps)
    dev = _device(model)
    idx = torch.arange(len(comp)) if index is None else torch.as_tensor(index).long()
    out = {}
    for m in maps:
        parts = []
        for chunk in idx.split(batch_size):
            x = comp.x0[chunk].to(dev)
            parts.append(example_maps(model, x, comp.labels[chunk].to(dev),
                                      comp.targets[chunk].to(dev), m, layer=settings.layer,
                                      head=settings.head).cpu())
        out[m] = torch.cat(parts) if parts else torch.empty(0)
    return out


def comparison_curves(comp: Comparison, maps: Mapping[str, Tensor],
                      nus: Sequence[float] = DEFAULT_NUS, *, strict: bool = True,
                      reference: bool = True) -> List[ISCurve]:
    """One IS curve per map, over the examples every attack fooled; ``reference`` adds the
    curve of a perturbation spread evenly over the image (IS = sqrt(|B|/d))."""
    if REFERENCE in comp.deltas:
        raise ValueError(f"{REFERENCE!r} is the name of the reference curve")
    deltas = dict(comp.deltas)
    if reference:
        deltas[REFERENCE] = torch.ones_like(comp.x0)
    return [is_curve(deltas, scores, nus, valid=comp.common, strict=strict, map_name=m)
            for m, scores in maps.items()]


def paired_differences(curve: ISCurve, base: str) -> Dict[str, Dict[str, List[float]]]:
    """For every other attack a: the mean over the counted examples of IS_a − IS_base per ν,
    its standard error, and the fraction of examples with IS_a > IS_base."""
    out = {}
    b = curve.per_example[base]
    for name, s in curve.per_example.items():
        if name in (base, REFERENCE):
            continue
        ok = ~(s[:, 0].isnan() | b[:, 0].isnan())
        d = (s - b)[ok]
        n = int(ok.sum())
        se = (d.std(0, correction=1) / math.sqrt(n) if n > 1
              else torch.full_like(curve.nus, math.nan))
        out[f"{name} - {base}"] = {
            "mean": d.mean(0).tolist() if n else [math.nan] * len(curve.nus),
            "stderr": se.tolist(),
            "fraction_higher": (d > 0).double().mean(0).tolist() if n else
            [math.nan] * len(curve.nus),
            "examples": n}
    return out


def write_per_example_csv(path, comp: Comparison, curves: Sequence[ISCurve]) -> Path:
    """One row per (map, ν, attack, example): ``is`` empty where the example does not count
    (an attack failed on it)."""
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["map", "nu", "attack", "example", "source_index", "label", "target",
                    "success", "is"])
        for c in curves:
            for name in comp.names:
                per = c.per_example[name]
                for i in range(per.shape[0]):
                    for j, nu in enumerate(c.nus.tolist()):
                        v = float(per[i, j])
                        w.writerow([c.map, f"{nu:g}", name, i, int(comp.source_index[i]),
                                    int(comp.labels[i]), int(comp.targets[i]),
                                    "true" if comp.success[name][i] else "false",
                                    "" if math.isnan(v) else f"{v:.6f}"])
    return path


def pick_figures(comp: Comparison, count: int) -> List[int]:
    """Up to ``count`` examples: those every attack fooled first, in order, then the rest."""
    common = comp.common
    order = torch.cat([torch.nonzero(common).flatten(), torch.nonzero(~common).flatten()])
    return [int(i) for i in order[:max(count, 0)]]


def draw_examples(folder, model: nn.Module, comp: Comparison, indices: Sequence[int],
                  settings: MapSettings, *, nu: float = 90,
                  class_names: Optional[Sequence[str]] = None, title: str = "") -> List[Path]:
    """``example-NNNN.png`` per index: image, ASM and B_ASM ∘ δ per attack; CAM (or Grad-CAM
    when the model has no GAP head) of t0 and t with each δ. Nothing else is needed."""
    from attacks.interpret.figures import plot_example
    if not indices:
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kind = "cam" if settings.head is not None else (
        "gradcam" if settings.layer is not None else None)
    wanted = ["asm"] + ([f"{kind}-true", f"{kind}-target"] if kind else [])
    idx = torch.as_tensor(list(indices))
    maps = compute_maps(model, comp, wanted, settings, index=idx)
    paths = []
    for k, i in enumerate(indices):
        fooled = ", ".join(f"{n}: {'fooled' if comp.success[n][i] else 'FAILED'}"
                           for n in comp.names)
        head = f"{title}, " if title else ""
        paths.append(plot_example(
            folder / f"example-{i:04d}.png", comp.x0[i], maps["asm"][k],
            {n: comp.deltas[n][i] for n in comp.names},
            maps[f"{kind}-true"][k] if kind else None,
            maps[f"{kind}-target"][k] if kind else None,
            label=int(comp.labels[i]), target=int(comp.targets[i]), nu=nu,
            class_names=class_names, cam_name="CAM" if kind == "cam" else "Grad-CAM",
            title=f"{head}example {i} (image {int(comp.source_index[i])}; {fooled})"))
    return paths


def curves_summary(comp: Comparison, curves: Sequence[ISCurve]) -> Dict[str, Any]:
    """The numbers of the curves: ν, examples, counts, mean IS and paired differences."""
    base = comp.names[0]
    return {
        "nus": curves[0].nus.tolist() if curves else [],
        "rule": ("B = map > its ν-th percentile" if not curves or curves[0].strict
                 else "B = map >= its ν-th percentile"),
        "examples": len(comp),
        "fooled": {n: int(s.sum()) for n, s in comp.success.items()},
        "counted": int(comp.common.sum()),
        "maps": {c.map: MAP_DESCRIPTIONS.get(c.map, c.map) for c in curves},
        "mean_is": {c.map: {n: [round(float(v), 6) for v in m] for n, m in c.mean.items()}
                    for c in curves},
        "paired": {c.map: paired_differences(c, base) for c in curves},
    }


def write_report(out, model: nn.Module, comp: Comparison, *, maps: Sequence[str],
                 nus: Sequence[float] = DEFAULT_NUS, figures: int = 4, figure_nu: float = 90,
                 batch_size: int = 64, class_names: Optional[Sequence[str]] = None,
                 title: str = "", extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Compute the maps and curves of ``comp`` and write every file listed in the module
    docstring to ``out``; returns the summary (also written, with ``extra`` first, to
    summary.json)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    settings = map_settings(model, comp.x0, maps)
    values = compute_maps(model, comp, maps, settings, batch_size=batch_size)
    curves = comparison_curves(comp, values, nus)
    write_csv(out / "is_curve.csv", curves)
    write_per_example_csv(out / "is_per_example.csv", comp, curves)
    from attacks.interpret.figures import plot_is_curves
    counted = int(comp.common.sum())
    plot_is_curves(out / "is_curve.png", curves,
                   title=f"{title + ': ' if title else ''}mean over the {counted} of "
                         f"{len(comp)} examples fooled by every attack")
    chosen = pick_figures(comp, figures)
    drawn = draw_examples(out / "figures", model, comp, chosen,
                          map_settings(model, comp.x0, required=False) if chosen else settings,
                          nu=figure_nu, class_names=class_names, title=title)
    summ = {**(extra or {}), **curves_summary(comp, curves),
            "map_settings": settings.describe(model),
            "figures": [str(p.relative_to(out)) for p in drawn],
            "seconds_maps_and_figures": round(time.perf_counter() - start, 3)}
    write_json(out / "summary.json", summ)
    return summ
