"""Sparse double descent on your data: accuracy and learning distance across a sparsity grid.

He et al. ("Sparse Double Descent: Where Network Pruning Aggravates Overfitting", 2022) saw
test accuracy fall, rise and fall again as sparsity grows, most clearly with noisy labels,
and tracked the l2 learning distance ``||w_final - w_init||``: a model that moved less from
its initialisation generalises better. :func:`sparsity_sweep` trains one model per sparsity
from the same initial weights with a registered sparse method and records both, so the
curve can be looked for on a user's own model and data (``edgeauto analyze sparsity-sweep``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.sparse.base import SparseConfig, get_sparse_method
from edgeauto.train import accuracy


@dataclass(frozen=True)
class SweepPoint:
    """One sparsity of the sweep: held-out accuracy, learning distance, training FLOPs."""

    sparsity: float
    accuracy: float
    train_accuracy: float
    distance: float
    train_flops: float


def with_label_noise(data: Dataset, fraction: float, seed: int) -> Dataset:
    """``data`` with ``fraction`` of its training labels replaced by a different class
    (seeded); validation labels stay clean. Noise makes double descent visible."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"label_noise must be in [0, 1), got {fraction}; fix --label-noise")
    y = data.y_train.clone()
    gen = torch.Generator().manual_seed(seed)
    picked = torch.randperm(len(y), generator=gen)[: round(fraction * len(y))]
    shift = torch.randint(1, data.num_classes, (len(picked),), generator=gen)
    y[picked] = (y[picked] + shift) % data.num_classes  # never the true class
    return dataclasses.replace(data, y_train=y)


def learning_distance(model: nn.Module, start: dict[str, torch.Tensor]) -> float:
    """``||w - w_0||_2`` over every parameter of ``model`` (``start``: its initial values)."""
    total = 0.0
    for name, p in model.named_parameters():
        total += float((p.detach() - start[name]).pow(2).sum())
    return math.sqrt(total)


def sparsity_sweep(
    build: Callable[[], nn.Module],
    data: Dataset,
    sparsities: Sequence[float],
    method: str = "imp",
    config: SparseConfig | None = None,
    on_point: Callable[[SweepPoint], None] | None = None,
) -> list[SweepPoint]:
    """Train a model from the same initial weights to each of ``sparsities`` with ``method``.

    ``build`` makes a fresh model; it is called with the torch seed set to ``config.seed``
    before each point, so every point starts from identical weights.
    """
    config = config or SparseConfig()
    if not sparsities:
        raise ConfigError("sparsities must name at least one value; fix --sparsities")
    points = []
    for s in sparsities:
        cfg = dataclasses.replace(config, sparsity=float(s))  # validates s
        torch.manual_seed(cfg.seed)
        model = build()
        start = {k: v.detach().clone() for k, v in model.named_parameters()}
        result = get_sparse_method(method, cfg).run(model, data)
        point = SweepPoint(
            sparsity=result.masks.sparsity,
            accuracy=accuracy(model, data.x_val, data.y_val),
            train_accuracy=accuracy(model, data.x_train, data.y_train),
            distance=learning_distance(model, start),
            train_flops=result.train_flops,
        )
        points.append(point)
        if on_point:
            on_point(point)
    return points


def plot_sweep(path: Path, points: Sequence[SweepPoint], title: str) -> Path:
    """Accuracy (left axis) and learning distance (right axis) against sparsity, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [100 * p.sparsity for p in points]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(xs, [p.accuracy for p in points], "o-", color="tab:blue", label="val accuracy")
    ax.plot(xs, [p.train_accuracy for p in points], "s--", color="tab:cyan", label="train acc.")
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("accuracy")
    twin = ax.twinx()
    twin.plot(xs, [p.distance for p in points], "^-", color="tab:red", label="||w - w0||")
    twin.set_ylabel("learning distance", color="tab:red")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweep_json(points: Sequence[SweepPoint], settings: dict[str, Any]) -> dict[str, Any]:
    """What ``sweep.json`` holds: the settings and one row per sparsity."""
    return {"settings": settings, "points": [dataclasses.asdict(p) for p in points]}
