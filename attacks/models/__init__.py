"""Classifiers to attack: a zoo by name, the user's own models, and small helpers.

Every model returned by :func:`load_model` is in eval mode with frozen parameters, takes
[0, 1] images (B, C, H, W) and returns logits (B, num_classes); preprocessing (mean/std,
0-255 scaling) is inside the model. See docs/models.md.
"""

from attacks.models.architectures import (
    MLP,
    CWNet,
    GAPNet,
    KerasCIFAR10CNN,
    LeNet,
    cifar_cw,
    mnist_cw,
    mnist_gap,
    mnist_lenet,
    mnist_mlp,
)
from attacks.models.keras_convert import convert_keras_cifar10, keras_h5_path
from attacks.models.wrappers import ImageClassifier, Normalize
from attacks.models.zoo import (
    ModelInfo,
    check_model_output,
    list_models,
    load_model,
    load_state_dict_file,
    model_info,
)

__all__ = [
    "CWNet",
    "GAPNet",
    "LeNet",
    "MLP",
    "ImageClassifier",
    "KerasCIFAR10CNN",
    "ModelInfo",
    "Normalize",
    "check_model_output",
    "cifar_cw",
    "convert_keras_cifar10",
    "keras_h5_path",
    "list_models",
    "load_model",
    "load_state_dict_file",
    "mnist_cw",
    "mnist_gap",
    "mnist_lenet",
    "mnist_mlp",
    "model_info",
]
