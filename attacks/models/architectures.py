"""Network definitions: the C&W MNIST/CIFAR networks and the packaged Keras CIFAR-10 CNN.

All of them take *preprocessed* input; :class:`ImageClassifier` (in ``attacks.models.wrappers``)
puts the preprocessing inside the model so that the public input is always [0, 1] images.
"""

from __future__ import annotations

import torch
from torch import nn

# input normalisation (mean, std) that the zoo and the train command put inside the C&W
# models, so that their public input stays [0, 1] images
NORMALIZATION = {
    "mnist-cw": (0.1307, 0.3081),
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
        convs: tuple[int, int, int, int],
        fcs: tuple[int, int],
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
