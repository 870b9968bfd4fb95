"""Network definitions: the C&W MNIST/CIFAR networks, the packaged Keras CIFAR-10 CNN, and
the small MNIST families of the transfer and defence experiments (GAP CNN, LeNet-style CNN, MLP).

All of them take *preprocessed* input; :class:`ImageClassifier` (in ``attacks.models.wrappers``)
puts the preprocessing inside the model so that the public input is always [0, 1] images.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

# input normalisation (mean, std) that the zoo and the train command put inside the C&W
# models, so that their public input stays [0, 1] images
NORMALIZATION = {
    "mnist-cw": (0.1307, 0.3081),
    "mnist-gap": (0.0, 1.0),  # BatchNorm after the first conv: features() takes [0, 1] images
    "mnist-lenet": (0.1307, 0.3081),
    "mnist-mlp": (0.1307, 0.3081),
    "cifar10-cw": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


class CWNet(nn.Module):
    """The Carlini & Wagner (2017) network family used by the StrAttack paper:
    conv(c1)-conv(c2)-pool-conv(c3)-conv(c4)-pool-fc(f1)-fc(f2)-fc(classes), 3x3 convs with no
    padding, ReLU, 2x2 max-pooling, dropout 0.5 after the first fully connected layer (as in
    C&W's ``train_models.py``; inactive in eval mode). Input: normalised pixels (the zoo puts
    the normalisation inside the model, see ``NORMALIZATION`` above).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        convs: Tuple[int, int, int, int],
        fcs: Tuple[int, int],
        num_classes: int = 10,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = convs
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3), nn.ReLU(),
            nn.Conv2d(c1, c2, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3), nn.ReLU(),
            nn.Conv2d(c3, c4, 3), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = ((image_size - 4) // 2 - 4) // 2
        f1, f2 = fcs
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c4 * side * side, f1), nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(f1, f2), nn.ReLU(),
            nn.Linear(f2, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def mnist_cw() -> CWNet:
    """C&W MNIST: conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc10 on 1x28x28."""
    return CWNet(1, 28, (32, 32, 64, 64), (200, 200))


def cifar_cw() -> CWNet:
    """C&W CIFAR: conv64-conv64-pool-conv128-conv128-pool-fc256-fc256-fc10 on 3x32x32."""
    return CWNet(3, 32, (64, 64, 128, 128), (256, 256))


class GAPNet(nn.Module):
    """Convolutions, then global average pooling and one linear layer: the form for which the
    class activation map of Zhou et al. (2016) is defined,

        logits = classifier(mean_{u,v} features(x)[:, :, u, v]),
        CAM_c(u, v) = Σ_k classifier.weight[c, k] · features(x)[k, u, v].

    ``features`` (an ``nn.Sequential``) maps x (B, C, H, W) to the last feature map
    (B, widths[-1], h, w); ``classifier`` is the ``nn.Linear(widths[-1], num_classes)`` after
    the pooling. Each block is conv3x3 (padding 1) - BatchNorm - ReLU; the blocks whose index
    is in ``pool_after`` are followed by 2x2 max-pooling (h = H / 2^len(pool_after)).
    """

    def __init__(self, in_channels: int = 1, widths: Tuple[int, ...] = (32, 64, 128, 128),
                 pool_after: Tuple[int, ...] = (0, 1), num_classes: int = 10) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(widths):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            if i in pool_after:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def mnist_gap() -> GAPNet:
    """MNIST GAP CNN: conv32-pool-conv64-pool-conv128-conv128 (each conv3x3-BN-ReLU), 7x7
    feature map, global average pooling, fc10."""
    return GAPNet(1, (32, 64, 128, 128), (0, 1))


class LeNet(nn.Module):
    """LeNet-style CNN: conv5x5(c1)-ReLU-pool-conv5x5(c2)-ReLU-pool-fc(f)-ReLU-fc(classes),
    valid convolutions, 2x2 max-pooling (28 -> 24 -> 12 -> 8 -> 4)."""

    def __init__(self, in_channels: int = 1, image_size: int = 28,
                 convs: Tuple[int, int] = (16, 32),
                 fc: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        c1, c2 = convs
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = ((image_size - 4) // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * side * side, fc), nn.ReLU(), nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """Fully connected ReLU network on the flattened image: sizes[0] -> ... -> sizes[-1]."""

    def __init__(self, sizes: Tuple[int, ...] = (784, 300, 100, 10)) -> None:
        super().__init__()
        layers: List[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def mnist_lenet() -> LeNet:
    """MNIST LeNet: conv16-pool-conv32-pool-fc128-fc10 (5x5 valid convs, ReLU)."""
    return LeNet(1, 28, (16, 32), 128)


def mnist_mlp() -> MLP:
    """MNIST MLP: 784-300-100-10, ReLU (LeCun et al. 1998's LeNet-300-100 sizes)."""
    return MLP((784, 300, 100, 10))


class KerasCIFAR10CNN(nn.Module):
    """PyTorch port of the Keras CNN shipped in the ``cifar-10-model`` wheel
    (``cifar_10_model/trained_models/cnn_model.h5``).

    Keras order per block: Conv2D(3x3, 'valid', ReLU) -> BatchNormalization(eps=1e-3),
    twice, then MaxPooling2D(2) (the third "pool" is 1x1, stride 1: the identity).
    32 -> 30 -> 28 -> 14 -> 12 -> 10 -> 5 -> 3 -> 1, so the flattened features are 64 values.
    Flatten follows Keras' NHWC order. Dense 1024-ReLU, 512-ReLU, 10. The Keras model ends
    in a ReLU on the 10 outputs; it is left out here, so the output are the logits before it
    (same arg-max whenever a class score is positive, and usable gradients everywhere).
    Input: raw 0-255 RGB pixels, NCHW.
    """

    CHANNELS = (64, 64, 128, 128, 64, 64)

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        convs, bns = [], []
        c_in = 3
        for c_out in self.CHANNELS:
            convs.append(nn.Conv2d(c_in, c_out, 3))
            bns.append(nn.BatchNorm2d(c_out, eps=1e-3))
            c_in = c_out
        self.convs = nn.ModuleList(convs)
        self.bns = nn.ModuleList(bns)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64, 1024)
        self.fc2 = nn.Linear(1024, 512)
        self.fc3 = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = bn(torch.relu(conv(x)))
            if i in (1, 3):
                x = self.pool(x)
        x = x.permute(0, 2, 3, 1).flatten(1)  # Keras Flatten is over NHWC
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)
