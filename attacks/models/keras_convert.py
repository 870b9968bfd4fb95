"""Convert the Keras CIFAR-10 CNN of the ``cifar-10-model`` wheel to a PyTorch state_dict.

The .h5 file is read with h5py only, straight out of the wheel archive (no TensorFlow; the
package is neither installed nor imported; see :mod:`attacks.data.wheels`).
Layout of ``model_weights/<layer>/<layer>/<param>:0`` in that file (Keras 2.9):
Conv2D kernel (kh, kw, in, out) -> torch (out, in, kh, kw); Dense kernel (in, out) ->
torch (out, in); BatchNormalization gamma/beta/moving_mean/moving_variance -> weight/bias/
running_mean/running_var. The architecture recorded in the file is checked against
:class:`KerasCIFAR10CNN` (layer types, order, 'valid' padding, strides, pool sizes, BN
epsilon, activations) before any weight is copied.

Command line (writes the converted state_dict, e.g. for a machine without the wheel)::

    python -m attacks.models.export_keras --out cifar10_cnn.pt
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

from attacks.data.wheels import WHEELS, open_wheel
from attacks.models.architectures import KerasCIFAR10CNN

CIFAR10_MODEL_PIN = WHEELS["cifar-10-model"].pin
KERAS_H5_MEMBER = "cifar_10_model/trained_models/cnn_model.h5"
# SHA-256 of cnn_model.h5 in cifar-10-model 7.4.0 (the file the accuracy figures are for)
KERAS_H5_SHA256 = "0eddc60b9fcbcab498ff07c8430a94ef1d0ee5ac04ad2d0c75d4977cc25cf9e9"

_CONVS = ["conv2d"] + [f"conv2d_{i}" for i in range(1, 6)]
_BNS = ["batch_normalization"] + [f"batch_normalization_{i}" for i in range(1, 6)]
_DENSES = ["dense", "dense_1", "dense_2"]


def keras_h5_bytes() -> bytes:
    """The bytes of ``cnn_model.h5``, read from the ``cifar-10-model`` wheel (SHA-256 checked)."""
    raw = open_wheel("cifar-10-model", what="model 'cifar10-cnn'").read(KERAS_H5_MEMBER)
    if hashlib.sha256(raw).hexdigest() != KERAS_H5_SHA256:
        raise ValueError(f"{KERAS_H5_MEMBER} in the {CIFAR10_MODEL_PIN} wheel has an unexpected "
                         "SHA-256")
    return raw


def keras_h5_path() -> Path:
    """A file path of ``cnn_model.h5``, for tools that need one (h5py, ``weights=``): unpacked
    once from the wheel into ``unpacked/`` beside it (SHA-256 checked), or the file of an
    installed package. Loading the zoo model does not need this (it reads the bytes in memory)."""
    src = open_wheel("cifar-10-model", what="model 'cifar10-cnn'")
    if not src.is_zip:
        return src.where / KERAS_H5_MEMBER
    path = src.where.parent / "unpacked" / CIFAR10_MODEL_PIN / "cnn_model.h5"
    if not (path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == KERAS_H5_SHA256):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(keras_h5_bytes())
        tmp.replace(path)
    return path


def _check_architecture(config: dict, path: Path) -> None:
    layers = [(l["class_name"], l["config"]) for l in config["config"]["layers"]]
    layers = [l for l in layers if l[0] != "InputLayer"]
    expected = (["Conv2D", "BatchNormalization"] * 2 + ["MaxPooling2D"]) * 3 + [
        "Flatten", "Dense", "Dropout", "Dense", "Dropout", "Dense",
    ]
    kinds = [k for k, _ in layers]
    if kinds != expected:
        raise ValueError(f"{path}: unexpected Keras layers {kinds}")
    convs = [c for k, c in layers if k == "Conv2D"]
    for c, filters in zip(convs, KerasCIFAR10CNN.CHANNELS):
        ok = (c["filters"] == filters and list(c["kernel_size"]) == [3, 3]
              and c["padding"] == "valid" and list(c["strides"]) == [1, 1]
              and c["activation"] == "relu"
              and c.get("data_format", "channels_last") == "channels_last"
              and list(c.get("dilation_rate", [1, 1])) == [1, 1])
        if not ok:
            raise ValueError(f"{path}: Conv2D layer {c['name']} differs from the ported "
                             "architecture")
    for c in (c for k, c in layers if k == "BatchNormalization"):
        if abs(c["epsilon"] - 1e-3) > 1e-12 or list(np.atleast_1d(c["axis"])) != [3]:
            raise ValueError(f"{path}: BatchNormalization layer {c['name']} differs (epsilon/axis)")
    pools = [c for k, c in layers if k == "MaxPooling2D"]
    if [list(p["pool_size"]) for p in pools] != [[2, 2], [2, 2], [1, 1]] or any(
        p["padding"] != "valid" for p in pools
    ):
        raise ValueError(f"{path}: MaxPooling2D layers differ from the ported architecture")
    dense = [c for k, c in layers if k == "Dense"]
    if [d["units"] for d in dense] != [1024, 512, 10] or [d["activation"] for d in dense] != [
        "relu", "relu", "relu"
    ]:
        raise ValueError(f"{path}: Dense layers differ from the ported architecture")


def convert_keras_cifar10(h5_path: Optional[Union[str, Path]] = None
                          ) -> Dict[str, torch.Tensor]:
    """Read the Keras .h5 (default: the one in the cifar-10-model wheel) -> state_dict of
    KerasCIFAR10CNN."""
    import h5py

    if h5_path is None:
        path, source = Path(f"{CIFAR10_MODEL_PIN}:{KERAS_H5_MEMBER}"), io.BytesIO(keras_h5_bytes())
    else:
        path = Path(h5_path)
        if not path.is_file():
            raise FileNotFoundError(f"Keras model file not found: {path}")
        source = path
    try:
        fh = h5py.File(source, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not an HDF5 file ({exc})") from exc
    with fh:
        try:
            config = json.loads(fh.attrs["model_config"])
            weights = fh["model_weights"]
        except KeyError as exc:
            raise ValueError(f"{path}: not a Keras model file (missing {exc})") from None
        _check_architecture(config, path)

        def get(layer: str, param: str) -> torch.Tensor:
            try:
                value = weights[layer][layer][f"{param}:0"]
                return torch.from_numpy(np.array(value, dtype=np.float32))
            except KeyError:
                raise ValueError(f"{path}: missing weight {layer}/{param}") from None

        sd: Dict[str, torch.Tensor] = {}
        for i, name in enumerate(_CONVS):
            sd[f"convs.{i}.weight"] = get(name, "kernel").permute(3, 2, 0, 1).contiguous()
            sd[f"convs.{i}.bias"] = get(name, "bias")
        for i, name in enumerate(_BNS):
            sd[f"bns.{i}.weight"] = get(name, "gamma")
            sd[f"bns.{i}.bias"] = get(name, "beta")
            sd[f"bns.{i}.running_mean"] = get(name, "moving_mean")
            sd[f"bns.{i}.running_var"] = get(name, "moving_variance")
            sd[f"bns.{i}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
        for i, name in enumerate(_DENSES, start=1):
            sd[f"fc{i}.weight"] = get(name, "kernel").t().contiguous()
            sd[f"fc{i}.bias"] = get(name, "bias")
    reference = KerasCIFAR10CNN().state_dict()
    for key, value in reference.items():
        if sd[key].shape != value.shape:
            raise ValueError(f"{path}: {key} has shape {tuple(sd[key].shape)}, expected "
                             f"{tuple(value.shape)}")
    return sd
