"""Two small reference models for sparse training tests and ``benchmarks/sparse.py``."""

from __future__ import annotations

from torch import nn


def small_cnn(
    input_shape: tuple[int, int, int], num_classes: int, width: int = 16, pool: int = 1
) -> nn.Module:
    """conv3x3 - conv3x3 (stride 2) - conv1x1 (each + BN + ReLU) - average pool to
    ``pool`` x ``pool`` - linear. ``pool=1`` is global pooling (tiny, for tests); on 28x28
    digits it loses where strokes are and trains to ~0.67 in 5 epochs, while ``pool=7``
    (the 14x14 map halved) reaches ~0.97. ONNX export needs the map size (input / 2) to be
    a multiple of ``pool``: :func:`map_pool` picks one."""
    c = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 1), nn.BatchNorm2d(4 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(4 * width * pool * pool, num_classes),
    )  # fmt: skip


def map_pool(input_shape: tuple[int, int, int]) -> int:
    """Half the conv map's side when it is even (7 for 28x28 inputs, 2 for 8x8), else 1."""
    side = (input_shape[1] + 1) // 2
    return side // 2 if side % 2 == 0 else 1


def mlp(input_shape: tuple[int, int, int], num_classes: int, hidden: int = 256) -> nn.Module:
    """flatten - linear - ReLU - linear - ReLU - linear."""
    n = input_shape[0] * input_shape[1] * input_shape[2]
    return nn.Sequential(
        nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU(),
        nn.Linear(hidden // 2, num_classes),
    )  # fmt: skip
