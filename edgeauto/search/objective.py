"""What a trial computes: ``objective(arch, seed) -> metrics`` (``metrics["accuracy"]``).

:class:`TrainObjective` is plain data (dataset spec, space name, proxy-training settings), so
an executor can ship it to another process or machine, which loads the data itself once and
keeps it for later trials (:func:`cached_dataset`). :class:`CallableObjective` wraps the
``evaluate(arch) -> accuracy`` callback of a :class:`~edgeauto.search.base.SearchProblem`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from edgeauto.data import Dataset, DataSpec
from edgeauto.spaces import get_space
from edgeauto.spaces.base import Arch
from edgeauto.train import TrainConfig, accuracy, fit

Metrics = dict[str, Any]
ZERO_COST_SAMPLES = 16  # training inputs for the NTK and the segments of the region count

_DATA: dict[DataSpec, Dataset] = {}


class Objective(Protocol):
    """Evaluates one arch with one seed; returns metrics with an ``accuracy`` key."""

    def __call__(self, arch: Arch, seed: int) -> Metrics: ...


def _spec(spec: str | DataSpec, seed: int) -> DataSpec:
    return spec if isinstance(spec, DataSpec) else DataSpec(spec, seed)


def cached_dataset(spec: str | DataSpec, seed: int = 0) -> Dataset:
    """The dataset of ``spec`` (a name is split with ``seed`` and the default fractions),
    loaded once per process (Ray workers run many trials each)."""
    key = _spec(spec, seed)
    if key not in _DATA:
        _DATA[key] = key.load()
    return _DATA[key]


def preload(spec: str | DataSpec, seed: int, data: Dataset) -> None:
    """Give this process's cache data already loaded (the run job has it in memory)."""
    _DATA[_spec(spec, seed)] = data


@dataclass(frozen=True)
class TrainObjective:
    """Proxy training: build the arch from ``seed``, train ``epochs`` x ``max_batches``
    batches, return validation accuracy; with ``zero_cost`` also the TE-NAS scores of the
    same initialisation (:mod:`edgeauto.search.zero_cost`), measured before training.

    Example:
        >>> obj = TrainObjective("digits", "fbnet-micro", data_seed=0, max_batches=20)
        >>> obj(arch, seed=0)["accuracy"]
    """

    dataset: str | DataSpec
    space: str
    data_seed: int = 0
    epochs: int = 1
    max_batches: int | None = 60
    zero_cost: bool = False
    recipe: TrainConfig = field(
        default_factory=TrainConfig
    )  # optimiser, augmentation...: epochs come from above

    def to_json(self) -> dict[str, Any]:
        return {"kind": "train", **asdict(self)}

    def __call__(self, arch: Arch, seed: int) -> Metrics:
        from edgeauto.search.zero_cost import ZeroCostScorer

        data = cached_dataset(self.dataset, self.data_seed)
        space = get_space(self.space, data.input_shape, data.num_classes)
        metrics: Metrics = {}
        if self.zero_cost:
            scorer = ZeroCostScorer(space, data.x_train[:ZERO_COST_SAMPLES], seed)
            metrics["zero_cost"] = scorer.score(arch).to_json()
        # seeded init: a trial's result must not depend on what ran before it in the process
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = space.build(arch)
        cfg = dataclasses.replace(self.recipe, epochs=self.epochs, max_batches=self.max_batches)
        fit(model, data, cfg, seed)
        metrics["accuracy"] = accuracy(model, data.x_val, data.y_val)
        return metrics


@dataclass(frozen=True)
class CallableObjective:
    """Adapts ``evaluate(arch) -> accuracy`` (the seed is the caller's business)."""

    evaluate: Callable[[Arch], float]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "callable", "name": getattr(self.evaluate, "__qualname__", "?")}

    def __call__(self, arch: Arch, seed: int) -> Metrics:
        return {"accuracy": float(self.evaluate(arch))}
