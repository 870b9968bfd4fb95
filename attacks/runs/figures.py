"""PNG figures of single examples, in the style of the paper's Figures 1-2: original,
adversarial, perturbation and a heatmap of the per-group ℓ2 norm of δ."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from admmkit.groups import SlidingGroups
from attacks.runs.outputs import to_result
from attacks.spec import GroupSpec


def _name(k: int, class_names: Optional[Sequence[str]]) -> str:
    if class_names and 0 <= k < len(class_names) and class_names[k] != str(k):
        return f"{k} ({class_names[k]})"
    return str(k)


def _show_image(ax, img: np.ndarray, title: str) -> None:
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def example_figure(path, *, original: np.ndarray, adversarial: np.ndarray,
                   delta: np.ndarray, label: int,
                   target: int, targeted: bool, success: bool, groups: SlidingGroups,
                   attack: str, index: int, source_index: int, metrics: dict,
                   predicted: Optional[int] = None,
                   class_names: Optional[Sequence[str]] = None) -> None:
    """Write one example's figure (4 panels with colour bars) to ``path`` (a path or a binary
    file object) as PNG."""
    norms = groups.group_norms(torch.from_numpy(delta[None]).float())[0].numpy()
    fig = Figure(figsize=(13.5, 3.9), dpi=110, layout="constrained")
    axes = fig.subplots(1, 4)
    goal = f"target {_name(target, class_names)}" if targeted else "untargeted"
    verdict = "success" if success else "FAILED (δ = 0)"
    fig.suptitle(f"{attack} · example {index} (image {source_index}): true "
                 f"{_name(label, class_names)} → {goal} · {verdict}", fontsize=12,
                 fontweight="bold")
    _show_image(axes[0], original, f"original x₀ (label {_name(label, class_names)})")
    seen = "" if predicted is None else f" (classified {_name(predicted, class_names)})"
    _show_image(axes[1], adversarial, f"adversarial x₀ + δ{seen}" if success
                else f"returned x₀: none found{seen}")

    ax = axes[2]
    if delta.shape[0] == 1:
        lim = float(np.abs(delta).max()) or 1.0
        im = ax.imshow(delta[0], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        cb.set_label("δ (pixel change)")
    else:
        mag = np.sqrt((delta ** 2).sum(0))
        im = ax.imshow(mag, cmap="magma", vmin=0, vmax=float(mag.max()) or 1.0,
                       interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        cb.set_label("‖δ‖₂ over channels")
    l0, l2 = metrics.get("l0", np.nan), metrics.get("l2", np.nan)
    ax.set_title(f"perturbation δ  (ℓ0 = {l0:.0f}, ℓ2 = {l2:.3f})" if success
                 else "perturbation δ = 0 (attack failed)", fontsize=10)
    ax.set_xlabel("pixel column")
    ax.set_ylabel("pixel row")

    ax = axes[3]
    im = ax.imshow(norms, cmap="hot", vmin=0, vmax=float(norms.max()) or 1.0,
                   interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label("‖δ_G‖₂ per group")
    nz = int((norms > 1e-7).sum())
    kind = "overlapping" if not groups.is_partition else "non-overlapping"
    ax.set_title(f"group sparsity: {nz}/{norms.size} groups ≠ 0\n"
                 f"{groups.size}×{groups.size} groups, stride {groups.stride} ({kind})",
                 fontsize=10)
    ax.set_xlabel("group column")
    ax.set_ylabel("group row")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if isinstance(path, (str, Path)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def pick_examples(success: np.ndarray, count: int) -> list:
    """Up to ``count`` example indices: successes first, in order, then failures."""
    order = list(np.flatnonzero(success)) + list(np.flatnonzero(~success))
    return [int(i) for i in order[:max(count, 0)]]


def draw_examples(run, a: dict, originals: np.ndarray, count: int, model, device, *,
                  groups: Optional[SlidingGroups], attack: str) -> list:
    """Figures of up to ``count`` examples of a run's merged arrays ``a`` (successes first),
    each titled with the class the model gives the adversarial example, written into the
    :class:`~attacks.store.RunDir` ``run``; their paths."""
    shape = tuple(originals.shape[1:])
    if groups is None:  # attacks without groups: the heatmap uses the dataset's default
        groups = GroupSpec().resolve(shape)
    chosen = pick_examples(a["success"], count)
    if not chosen:
        return []
    with torch.no_grad():
        adv = torch.from_numpy(a["adversarial"][chosen])
        predicted = model(adv.to(device)).argmax(1).tolist()
    class_names = getattr(model, "class_names", None)
    result = to_result(a, attack)
    paths = []
    for i, pred in zip(chosen, predicted):
        buf = io.BytesIO()
        metrics = {k: float(v[i]) for k, v in result.metrics.items()}
        example_figure(buf, original=originals[i], adversarial=a["adversarial"][i],
                       delta=a["delta"][i], label=int(a["labels"][i]),
                       target=int(a["targets"][i]), targeted=bool(a["targeted"][i]),
                       success=bool(a["success"][i]), groups=groups, attack=attack, index=i,
                       source_index=int(a["source_index"][i]), metrics=metrics,
                       predicted=int(pred), class_names=class_names)
        paths.append(run.write(f"figures/example-{i:04d}.png", buf.getvalue()))
    return paths
