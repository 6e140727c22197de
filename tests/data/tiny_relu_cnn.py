"""A plain two-conv ReLU CNN for ``edgeauto linearize`` tests (768 ReLUs at 8x8)."""

from torch import nn


def build(num_classes=10, input_shape=(1, 8, 8)):
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * (input_shape[1] // 2) * (input_shape[2] // 2), num_classes),
    )
