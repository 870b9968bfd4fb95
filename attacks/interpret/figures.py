"""Figures: the IS-vs-ν curve (paper Fig. 3(a)) and a per-example overlay of ASM, B_ASM ∘ δ and
class activation maps (paper Figs. 3(b)-(c), A2). Matplotlib with the Agg backend; every
function writes one PNG and returns its path."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from attacks.interpret.cam import normalize_maps  # noqa: E402
from attacks.interpret.saliency import percentile_mask  # noqa: E402
from attacks.interpret.score import REFERENCE, ISCurve, interpretability_score  # noqa: E402

MAP_TITLES = {
    "asm": "B from ASM(x0, t) (eq. 61)",
    "cam-true": "B from CAM of the true label t0",
    "cam-target": "B from CAM of the target label t",
    "gradcam-true": "B from Grad-CAM of the true label t0",
    "gradcam-target": "B from Grad-CAM of the target label t",
}


def plot_is_curves(path, curves: Sequence[ISCurve], *, title: Optional[str] = None) -> Path:
    """One panel per curve (per map), three to a row: mean IS of each attack against the
    percentile ν, with a band of ± one standard error of the mean over the examples."""
    path = Path(path)
    if not curves:
        raise ValueError("no curves to plot")
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows + 0.4),
                             squeeze=False)
    for ax in axes.flat[len(curves):]:
        ax.axis("off")
    markers = "osD^v<>"
    for ax, c in zip(axes.flat, curves):
        nus = c.nus.numpy()
        for k, (name, m) in enumerate(c.mean.items()):
            if name == REFERENCE:
                ax.plot(nus, m.numpy(), ls="--", color="gray", lw=1.2,
                        label="δ spread evenly (IS = √(|B|/d))")
                continue
            line, = ax.plot(nus, m.numpy(), marker=markers[k % len(markers)], lw=1.8,
                            label=f"{name} (n = {c.count[name]}; band: ± 1 s.e.)")
            per = c.per_example[name]
            per = per[~per[:, 0].isnan()]
            if per.shape[0] > 1:
                se = (per.std(0, correction=1) / per.shape[0] ** 0.5).numpy()
                ax.fill_between(nus, m.numpy() - se, m.numpy() + se, color=line.get_color(),
                                alpha=0.15, lw=0)
        ax.set_xlabel("ν: percentile of the map used as threshold")
        ax.set_ylabel("mean IS = ||B∘δ||₂ / ||δ||₂")
        rule = "map > ν-th percentile" if c.strict else "map ≥ ν-th percentile"
        ax.set_title(f"{MAP_TITLES.get(c.map, c.map)}\nB: {rule}", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_xticks(nus)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _gray(image: Tensor) -> np.ndarray:
    return image.detach().float().mean(0).cpu().numpy()


def _show_image(ax, image: Tensor, alpha: float = 1.0):
    if image.shape[0] == 3:
        ax.imshow(image.detach().float().permute(1, 2, 0).clamp(0, 1).cpu().numpy(),
                  alpha=alpha)
    else:
        ax.imshow(_gray(image), cmap="gray", vmin=0, vmax=1, alpha=alpha)


def _perturbation(ax, fig, image: Tensor, delta: Tensor, lim: float, title: str,
                  outline: Optional[np.ndarray] = None):
    """The clean image faded, the perturbation on top (zero entries transparent)."""
    ax.imshow(_gray(image), cmap="gray", vmin=0, vmax=1, alpha=0.35)
    d = delta.detach().float().sum(0).cpu().numpy()
    im = ax.imshow(np.ma.masked_where(d == 0, d), cmap="seismic", vmin=-lim, vmax=lim)
    if outline is not None and outline.any() and not outline.all():
        ax.contour(outline.astype(float), levels=[0.5], colors="limegreen", linewidths=1.0)
    ax.set_title(title, fontsize=8)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label("δ (pixel change)" + (", summed over RGB" if delta.shape[0] == 3 else ""),
                 fontsize=7)
    cb.ax.tick_params(labelsize=7)


def _heat(ax, fig, image: Tensor, heat: np.ndarray, cmap: str, title: str, label: str,
          sparse: bool):
    """A heat map over the image: blended (dense maps, CAM) or with its zero entries left
    transparent over the faded image (sparse maps, ASM)."""
    if sparse:
        ax.imshow(_gray(image), cmap="gray", vmin=0, vmax=1, alpha=0.35)
        im = ax.imshow(np.ma.masked_where(heat <= 0, heat), cmap=cmap, vmin=0,
                       vmax=float(heat.max()) or 1.0)
    else:
        _show_image(ax, image)
        im = ax.imshow(heat, cmap=cmap, alpha=0.55, vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label(label, fontsize=7)
    cb.ax.tick_params(labelsize=7)


def plot_example(path, image: Tensor, asm: Tensor, deltas: Mapping[str, Tensor],
                 cam_true: Optional[Tensor] = None, cam_target: Optional[Tensor] = None, *,
                 label: int, target: int, nu: float = 90, strict: bool = True,
                 class_names: Optional[Sequence[str]] = None, title: Optional[str] = None,
                 cam_name: str = "Grad-CAM") -> Path:
    """Overlay figure for one example (one image, one target, several attacks).

    ``image`` (C, H, W) in [0, 1]; ``asm`` (C, H, W); ``deltas`` name -> (C, H, W);
    ``cam_true``/``cam_target`` (H, W) maps of the true and target labels at the clean image
    (``cam_name`` says which kind), or None (then the figure has only the first row).

    Row 1 (paper Fig. 3(b)): the image, ASM(x0, t), and B_ASM ∘ δ for every attack, B_ASM at
    the ν-th percentile. Row 2 (Figs. 3(c), 4): the CAM of the true and the target label over
    the image, and every attack's whole δ with the B_CAM(t0) region outlined.
    """
    path = Path(path)
    names = list(deltas)
    cols = 2 + len(names)
    with_cam = cam_true is not None and cam_target is not None
    rows = 2 if with_cam else 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.3 * rows + 0.5), squeeze=False)

    def name_of(c: int) -> str:
        if not class_names or str(class_names[c]) == str(c):
            return str(c)
        return f"{c} ({class_names[c]})"

    b_asm = percentile_mask(asm.unsqueeze(0), nu, strict=strict)[0]
    lim = max(float(d.detach().float().sum(0).abs().max()) for d in deltas.values()) or 1.0

    ax = axes[0, 0]
    _show_image(ax, image)
    ax.set_title(f"original x0\ntrue t0 = {name_of(label)}, target t = {name_of(target)}",
                 fontsize=8)
    a = asm.detach().float().sum(0).cpu().numpy()
    _heat(axes[0, 1], fig, image, a, "magma_r", f"ASM(x0, t) (eq. 61)\n"
          f"green: B_ASM, top {100 - nu:g} % (ν = {nu:g})",
          "ASM score (darker = larger; 0 not drawn)", True)
    axes[0, 1].contour(b_asm.any(0).cpu().numpy().astype(float), levels=[0.5],
                       colors="limegreen", linewidths=0.8)
    for j, n in enumerate(names):
        d = deltas[n]
        iss = float(interpretability_score(d.unsqueeze(0).double(), b_asm.unsqueeze(0))[0])
        l0 = int((d != 0).sum())
        _perturbation(axes[0, 2 + j], fig, image, d * b_asm, lim,
                      f"B_ASM ∘ δ, {n} (ℓ0 of δ: {l0})\nIS_ASM = {_fmt(iss)} (ν = {nu:g})")

    rule = ">" if strict else "≥"
    caption = (f"Top row: where the saliency map ASM says a pixel increase helps t and hurts "
               f"t0 (green outline: B_ASM, ASM {rule} its {nu:g}th percentile), and the part of "
               "each perturbation inside B_ASM (red: pixel brighter, blue: darker).")
    if with_cam:
        b_cam = percentile_mask(cam_true.unsqueeze(0), nu, strict=strict)[0]
        ct = normalize_maps(cam_true.unsqueeze(0))[0].cpu().numpy()
        cg = normalize_maps(cam_target.unsqueeze(0))[0].cpu().numpy()
        _heat(axes[1, 0], fig, image, ct, "jet",
              f"{cam_name} of true label t0 = {name_of(label)}\n"
              f"white: B_CAM(t0), top {100 - nu:g} %", f"{cam_name} (scaled to [0, 1])", False)
        axes[1, 0].contour(b_cam.cpu().numpy().astype(float), levels=[0.5], colors="white",
                           linewidths=1.0)
        _heat(axes[1, 1], fig, image, cg, "jet", f"{cam_name} of target t = {name_of(target)}",
              f"{cam_name} (scaled to [0, 1])", False)
        for j, n in enumerate(names):
            d = deltas[n]
            iss = float(interpretability_score(d.unsqueeze(0).double(), b_cam.unsqueeze(0))[0])
            _perturbation(axes[1, 2 + j], fig, image, d, lim,
                          f"whole δ, {n}\nIS_CAM(t0) = {_fmt(iss)}; green: B_CAM(t0)",
                          outline=b_cam.cpu().numpy())
        caption += (f"\nBottom row: {cam_name} of the clean image for t0 and t, and each "
                    f"attack's whole perturbation; white/green outline: B_CAM(t0), {cam_name} "
                    f"of t0 {rule} its {nu:g}th percentile. IS = ||B∘δ||₂ / ||δ||₂ (eq. 23).")
    else:
        caption += " IS = ||B∘δ||₂ / ||δ||₂ (eq. 23)."
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7.5, wrap=True)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.09 if rows == 1 else 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v: float) -> str:
    """An IS value, or "n/a (δ = 0)" for an attack that failed."""
    return "n/a (δ = 0: failed)" if np.isnan(v) else f"{v:.2f}"
