"""Sparse training roles: :class:`SparseConfig`, :class:`SparseMethod` and its registry.

A method trains a model in place to exactly ``config.sparsity`` of its conv and linear
weights at zero and returns a :class:`SparseResult`: the :class:`Masks`, a JSON record that
replays it (method, config, per-layer counts) and an estimate of the training FLOPs.
Everything trains through :func:`edgeauto.train.fit`, with the masks re-applied after every
optimizer step.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.registry import Registry
from edgeauto.sparse.masks import Masks, maskable
from edgeauto.train import ScheduleFactory, StepHook, TrainConfig, fit

SCOPES = ("global", "layer")
RETRAINS = ("finetune", "lrr", "slr", "rewind")
DISTRIBUTIONS = ("erk", "uniform")


def _check(ok: bool, name: str, value: object, want: str) -> None:
    if not ok:
        raise ConfigError(f"sparse {name} must be {want}, got {value!r}; fix {name}")


@dataclass(frozen=True)
class SparseConfig:
    """What a sparse method is asked for. Options a method does not use are ignored.

    ``sparsity``: fraction of conv/linear weights at zero, in [0, 1). ``epochs``: training
    epochs (IMP: dense epochs before pruning; SNIP, RigL, static: all of training).
    IMP: ``scope`` (``global`` ranks all weights together, ``layer`` prunes each layer to the
    target), ``rounds`` of prune + ``retrain_epochs`` with ``retrain`` = ``finetune``
    (constant lr / 100), ``lrr`` (the last epochs of the training schedule replayed), ``slr``
    (linear decay from lr x retrain/train length) or ``rewind`` (lottery ticket: weights back
    to their values after ``rewind_epoch``, then the rest of the schedule).
    RigL / static: ``distribution`` (``erk`` / ``uniform``), ``delta_t`` steps between mask
    updates, ``drop_fraction`` (cosine-decayed to 0 at ``end_fraction`` of training).
    CTRE: as RigL, with ``explore_fraction`` (in [0, 1]) of each update's grown connections
    drawn at random and the rest chosen by activation cosine similarity.
    COLT: ``rounds`` and ``scope`` as IMP; ``epochs`` for each half-data copy per round and
    for the final training on all the data.
    """

    sparsity: float = 0.9
    epochs: int = 5
    seed: int = 0
    batch_size: int = 64
    lr: float = 3e-3
    max_batches: int | None = None
    scope: str = "global"
    retrain: str = "lrr"
    rounds: int = 3
    retrain_epochs: int = 1
    rewind_epoch: int = 1
    distribution: str = "erk"
    delta_t: int = 50
    drop_fraction: float = 0.3
    end_fraction: float = 0.75
    snip_batches: int = 1
    explore_fraction: float = 0.5

    def __post_init__(self) -> None:
        s = self.sparsity
        _check(isinstance(s, int | float) and 0.0 <= s < 1.0, "sparsity", s, "in [0, 1)")
        for name in ("epochs", "batch_size", "rounds", "retrain_epochs", "delta_t", "snip_batches"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, name, v, "an integer >= 1")
        _check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer >= 0")
        _check(self.lr > 0 and math.isfinite(self.lr), "lr", self.lr, "a positive number")
        _check(self.scope in SCOPES, "scope", self.scope, " or ".join(SCOPES))
        _check(self.retrain in RETRAINS, "retrain", self.retrain, ", ".join(RETRAINS))
        _check(
            self.distribution in DISTRIBUTIONS, "distribution", self.distribution, "erk or uniform"
        )
        _check(0.0 < self.drop_fraction < 1.0, "drop_fraction", self.drop_fraction, "in (0, 1)")
        _check(0.0 < self.end_fraction <= 1.0, "end_fraction", self.end_fraction, "in (0, 1]")
        _check(0.0 <= self.explore_fraction <= 1.0, "explore_fraction", self.explore_fraction,
               "in [0, 1]")  # fmt: skip
        _check(isinstance(self.rewind_epoch, int) and self.rewind_epoch >= 0, "rewind_epoch",
               self.rewind_epoch, "an integer >= 0")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SparseConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(doc) - names)
        if unknown:
            raise ConfigError(
                f"sparse config has unknown field {unknown[0]!r}; known: {sorted(names)}"
            )
        return cls(**doc)

    def train_config(self, epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr,
                           max_batches=self.max_batches)  # fmt: skip


@dataclass
class SparseResult:
    """What a method produced: the masks (already applied to the model) and its record."""

    method: str
    config: SparseConfig
    masks: Masks
    train_flops: float
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The replayable record: rerunning ``method`` with ``config`` gives these masks."""
        return {"method": self.method, "config": self.config.to_json(),
                "masks": self.masks.to_json(), "train_flops": self.train_flops,
                "history": self.history}  # fmt: skip


def steps_per_epoch(cfg: SparseConfig, data: Dataset) -> int:
    per = -(-len(data.x_train) // cfg.batch_size)
    return min(per, cfg.max_batches) if cfg.max_batches else per


def layer_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Multiply-adds per sample of each maskable weight (dense), from one forward pass."""
    names = {id(p): k for k, p in maskable(model).items()}
    macs: dict[str, int] = {}

    def hook(mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        w = mod.weight
        positions = out[0].numel() // w.shape[0]  # output positions per output channel
        macs[names[id(w)]] = positions * w.numel()  # w holds C_in / groups x k x k per channel

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was = model.training
    try:
        with torch.no_grad():
            model.train(False)(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return macs


class SparseMethod(abc.ABC):
    """Trains a model to ``config.sparsity`` unstructured sparsity, seeded and replayable."""

    name: ClassVar[str] = "abstract"

    def __init__(self, config: SparseConfig) -> None:
        if not isinstance(config, SparseConfig):
            raise ConfigError(
                f"sparse method {self.name} needs a SparseConfig, got {type(config).__name__}"
            )
        self.config = config
        self._flops = 0.0
        self._macs: dict[str, int] = {}
        self.history: list[dict[str, Any]] = []

    @abc.abstractmethod
    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        """Train ``model`` in place; return its final masks (applied)."""

    def run(self, model: nn.Module, data: Dataset) -> SparseResult:
        """Train ``model`` in place to the target sparsity; the masks and the record."""
        self._flops, self.history = 0.0, []
        self._macs = layer_macs(model, data.input_shape)
        torch.manual_seed(self.config.seed)
        masks = self._run(model, data)  # not re-applied here: training must keep them
        model.train(False)
        return SparseResult(self.name, self.config, masks, self._flops, self.history)

    def train(self, model: nn.Module, data: Dataset, masks: Masks, epochs: int,
              schedule: ScheduleFactory | None = None, on_step: StepHook | None = None,
              seed_offset: int = 0) -> None:  # fmt: skip
        """``fit`` with ``masks`` re-applied after every step (then ``on_step``)."""
        masks.apply(model)

        def step(i: int) -> None:
            masks.apply(model)
            if on_step:
                on_step(i)

        cfg = self.config.train_config(epochs)
        fit(model, data, cfg, self.config.seed + seed_offset, on_step=step, schedule=schedule)
        self.count_flops(
            masks, epochs * steps_per_epoch(self.config, data) * self.config.batch_size
        )

    def count_flops(self, masks: Masks, samples: int, dense_fraction: float = 0.0) -> None:
        """Add training FLOPs: 3 x forward (forward + two backward products) x samples,
        each layer's forward scaled by its density (``dense_fraction`` of steps dense)."""
        fwd = sum(2 * self._macs[k] * float(m.float().mean()) for k, m in masks.masks.items())
        dense = sum(2 * v for v in self._macs.values())
        self._flops += 3 * samples * ((1 - dense_fraction) * fwd + dense_fraction * dense)


SPARSE_METHODS: Registry[type[SparseMethod]] = Registry("sparse method")


def list_sparse_methods() -> list[str]:
    """Names of the registered sparse training methods."""
    return SPARSE_METHODS.names()


def get_sparse_method(name: str, config: SparseConfig) -> SparseMethod:
    """The method ``name`` configured with ``config`` (unknown names suggest close ones)."""
    return SPARSE_METHODS.get(name)(config)


def constant(factor: float) -> ScheduleFactory:
    """A constant learning rate of ``factor`` x the configured lr."""
    return lambda opt, _n: torch.optim.lr_scheduler.LambdaLR(opt, lambda _s: factor)


def one_cycle(frac: float) -> float:
    """PyTorch's OneCycleLR multiplier (cosine, 30% warm-up, /25 start, /1e4 end) at ``frac``."""
    lo, end, warm = 1 / 25, 1 / 25e4, 0.3
    if frac < warm:
        return lo + (1 - lo) * (1 - math.cos(math.pi * frac / warm)) / 2
    t = min(1.0, (frac - warm) / (1 - warm))
    return end + (1 - end) * (1 + math.cos(math.pi * t)) / 2


def schedule_tail(start: int, total: int) -> ScheduleFactory:
    """Replay the one-cycle schedule of ``total`` steps from step ``start`` on (LRR, rewind)."""
    return lambda opt, _n: torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: one_cycle(min(1.0, (start + s) / total))
    )


def linear_from(factor: float) -> ScheduleFactory:
    """Linear decay from ``factor`` x lr to 0 over the run (SLR's retraining schedule)."""

    def make(opt: torch.optim.Optimizer, n: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: factor * max(0.0, 1 - s / n))

    return make
