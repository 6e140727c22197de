"""``edgeauto analyze``'s jobs: zero-cost indicators against trained accuracy, and a sparse
double-descent sweep of a model over a sparsity grid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from edgeauto.data import Dataset, load_dataset
from edgeauto.errors import ConfigError
from edgeauto.fileio import write_json


def zero_cost(dataset: str, space: str, archs: int, seed: int, batches: int) -> dict[str, Any]:
    """Sample ``archs`` of ``space``, score them at initialisation and proxy-train them for
    ``batches`` batches; the scores, accuracies and each indicator's Spearman."""
    from edgeauto.search.teg import analyze_zero_cost
    from edgeauto.spaces import get_space
    from edgeauto.train import TrainConfig

    if batches < 1:
        raise ConfigError(f"batches must be >= 1, got {batches}; fix --batches")
    data = load_dataset(dataset, seed=seed)
    sp = get_space(space, data.input_shape, data.num_classes)
    return {
        "space": sp.name,
        **analyze_zero_cost(sp, data, archs, seed, TrainConfig(epochs=1, max_batches=batches)),
    }


@dataclass(frozen=True)
class SweepJob:
    """What ``edgeauto analyze sparsity-sweep`` was asked."""

    model: str = "mlp"
    dataset: str = "mnist5k"
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98)
    method: str = "imp"
    epochs: int = 5
    label_noise: float = 0.0
    seed: int = 0
    out: str = "runs/sparsity-sweep"

    def __post_init__(self) -> None:
        if not self.sparsities or not all(0.0 <= v < 1.0 for v in self.sparsities):
            raise ConfigError(
                f"sparsities must be numbers in [0, 1), got {list(self.sparsities)}; fix "
                "--sparsities"
            )

    @property
    def title(self) -> str:
        return f"{self.method} on {self.model}, {self.dataset}, label noise {self.label_noise:.0%}"


def sparsity_sweep(job: SweepJob, on_point: Callable[[Any], None] | None = None) -> list[Any]:
    """Train ``job.model`` sparse at each sparsity (``on_point`` after each); writes
    ``sweep.json`` and ``sweep.png`` in ``job.out`` and returns the points."""
    from edgeauto.sparse.base import SPARSE_METHODS, SparseConfig
    from edgeauto.sparse.sweep import plot_sweep, sweep_json, with_label_noise
    from edgeauto.sparse.sweep import sparsity_sweep as sweep

    SPARSE_METHODS.get(job.method)  # an unknown name fails before any data loads
    data = with_label_noise(load_dataset(job.dataset, seed=job.seed), job.label_noise, job.seed)
    cfg = SparseConfig(epochs=job.epochs, seed=job.seed)
    points = sweep(_builder(job.model, data), data, list(job.sparsities), job.method, cfg, on_point)
    root = Path(job.out)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"model": job.model, "dataset": job.dataset, "method": job.method,
                "epochs": job.epochs, "label_noise": job.label_noise, "seed": job.seed}  # fmt: skip
    write_json(root / "sweep.json", sweep_json(points, settings))
    plot_sweep(root / "sweep.png", points, job.title)
    return points


def _builder(model: str, data: Dataset) -> Callable[[], nn.Module]:
    """``mlp`` / ``cnn`` (the reference models) or the user's ``module:function``."""
    from edgeauto.jobs.compress import load_user_model
    from edgeauto.sparse.models import map_pool, mlp, small_cnn

    if model == "mlp":
        return lambda: mlp(data.input_shape, data.num_classes)
    if model == "cnn":
        return lambda: small_cnn(
            data.input_shape, data.num_classes, pool=map_pool(data.input_shape)
        )
    load_user_model(model, data)  # a bad spec fails now, in one line
    return lambda: load_user_model(model, data)
