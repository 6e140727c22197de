"""A plain CNN defined outside edgeauto, to show ``edgeauto compress --model``.

    edgeauto compress --model examples/custom_cnn.py:build --device host --latency-ms 0.1 \
        --dataset mnist5k --criterion taylor2 --out runs/custom
"""

from __future__ import annotations

from torch import nn


def build(num_classes: int = 10, input_shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
    """Three conv-BN-ReLU stages and a linear classifier (about 1.3 MMACs at 28x28)."""
    c = input_shape[0]

    def stage(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *stage(c, 16, 2), *stage(16, 32, 2), *stage(32, 32, 1), *stage(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )  # fmt: skip
