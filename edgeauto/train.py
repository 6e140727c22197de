"""The one training and evaluation loop everything uses (seeded, in-memory data).

Data access contract: the image arrays (``data.x_train``, the ``x`` of :func:`accuracy`) are
only indexed (``x[idx]`` with a LongTensor or a slice, giving float32 NCHW) and measured with
``len``; they may be an indexable wrapper over uint8 storage rather than a tensor.
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import operator
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.fileio import atomic_path

Progress = Callable[[int, int], None]
StepHook = Callable[[int], None]
ScheduleFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]

OPTIMIZERS = ("adamw", "sgd")
SGD_MOMENTUM = 0.9
AUGMENT_PAD = 4  # pixels of zero padding the random crop moves within
_DEVICE = r"cpu|auto|cuda(:\d+)?"


class Indexable(Protocol):
    """What the loops need of an image array: ``len`` and indexing to a float NCHW tensor."""

    def __len__(self) -> int: ...

    def __getitem__(self, idx: Any) -> torch.Tensor: ...


def _bad(name: str, rule: str, value: object) -> ConfigError:
    """A one-line error naming the config field (``train_<name>``) and the dataclass field."""
    return ConfigError(f"train_{name} (TrainConfig.{name}) must be {rule}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings shared by search, final training and fine-tuning.

    ``optimizer`` is ``"adamw"`` or ``"sgd"`` (momentum 0.9, Nesterov), both under the
    one-cycle schedule; ``label_smoothing`` goes to the cross-entropy; ``augment`` adds a
    random 4-pixel-padded crop and horizontal flip per image (``None``: for 3-channel images
    only, as flips and crops suit photos, not digits); ``device`` is ``"cpu"``,
    ``"cuda"`` (``"cuda:N"``) or ``"auto"`` (CUDA when available). Bad values, and CUDA
    where this host has none, raise :class:`~edgeauto.errors.ConfigError` here.
    """

    epochs: int = 3
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    max_batches: int | None = None  # cap per epoch, for quick proxy training during search
    optimizer: str = "adamw"
    label_smoothing: float = 0.0
    augment: bool | None = False  # None: on for 3-channel (RGB) images, off otherwise
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name, low in (("epochs", 0), ("batch_size", 1), ("max_batches", 0)):
            value = getattr(self, name)
            if not (name == "max_batches" and value is None) and not _int_at_least(value, low):
                raise _bad(name, f"an integer >= {low}", value)
        if not _finite(self.lr) or self.lr <= 0:
            raise _bad("lr", "a finite number > 0", self.lr)
        if not _finite(self.weight_decay) or self.weight_decay < 0:
            raise _bad("weight_decay", "a finite number >= 0", self.weight_decay)
        if self.optimizer not in OPTIMIZERS:
            raise _bad("optimizer", " or ".join(repr(o) for o in OPTIMIZERS), self.optimizer)
        if not _finite(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise _bad("label_smoothing", "a number in [0, 1)", self.label_smoothing)
        if self.augment is not None and not isinstance(self.augment, bool):
            raise _bad("augment", "true, false or None (on for RGB images)", self.augment)
        if not isinstance(self.device, str) or not re.fullmatch(_DEVICE, self.device):
            raise _bad("device", "'cpu', 'cuda', 'cuda:N' or 'auto'", self.device)
        resolve_device(self.device)  # a run asking for CUDA fails now, not after hours of work


def _int_at_least(value: object, low: int) -> bool:
    """An integer (numpy's too, not a bool) of at least ``low``."""
    if isinstance(value, bool):
        return False
    try:
        return operator.index(value) >= low  # type: ignore[arg-type]
    except TypeError:
        return False


def _finite(value: object) -> bool:
    """A real number (numpy's too, not a bool) that is neither infinite nor NaN."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def resolve_device(name: str) -> torch.device:
    """The torch device of a ``TrainConfig.device`` value; CUDA that is not there raises."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train_device is {name!r} but this host has no usable CUDA "
                "(torch.cuda.is_available() is False); use train_device: cpu or auto"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"train_device is {name!r} but this host has {torch.cuda.device_count()} CUDA "
                "device(s); use train_device: cuda or auto"
            )
    return torch.device(name)


def train_threads() -> int:
    """CPU cores this process may run on (its affinity), else the machine's core count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not every platform has affinity (macOS)
        return os.cpu_count() or 1


_THREAD_CAP: int | None = None


@contextlib.contextmanager
def thread_cap(threads: int) -> Iterator[None]:
    """Training in the block uses at most ``threads`` torch threads: a search trial's share
    (``cpus_per_trial``), so that trials running side by side don't oversubscribe the cores."""
    global _THREAD_CAP
    old, _THREAD_CAP = _THREAD_CAP, max(1, threads)
    try:
        yield
    finally:
        _THREAD_CAP = old


@contextlib.contextmanager
def _all_cores() -> Iterator[None]:
    """Raise torch's intra-op threads to :func:`train_threads` for the block, never lower.

    Something earlier in the process (a latency timer, a worker started with one thread) may
    have left torch on fewer threads than the cores it may use, which would halve training
    speed on a 2-core host. A higher count set on purpose is kept; the old value comes back
    afterwards so timing code that runs later sees what it set.
    """
    old, want = torch.get_num_threads(), min(train_threads(), _THREAD_CAP or train_threads())
    if old < want:
        torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = AUGMENT_PAD) -> torch.Tensor:
    """Per image: a random ``H x W`` crop of the batch zero-padded by ``pad`` pixels, then a
    random horizontal flip (probability 1/2). Offsets and flips are drawn from ``gen`` (a CPU
    generator), so a seeded run, and one resumed from a checkpoint, repeat them exactly;
    the gather runs on ``x``'s device. On a normalised batch the zero padding is the
    training set's mean pixel.
    """
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.randint(0, 2, (n,), generator=gen).bool()
    cols = torch.arange(w)
    # a flipped crop reads the padded row right to left: one gather does crop and flip
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)
    rows = dy[:, None] + torch.arange(h)
    rows, cols = rows.to(x.device), cols.to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    image = torch.arange(n, device=x.device)[:, None, None]
    picked = padded[image, :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2).contiguous()  # advanced indices put (N, H, W) first


@dataclass
class FitStats:
    """What :func:`fit` reports of its own speed: images trained on and the wall time of the
    training steps (data indexing, augmentation, forward, backward, optimiser step and hooks;
    checkpoint writes excluded)."""

    images: int = 0
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        """Training throughput (0 before any step)."""
        return self.images / self.seconds if self.seconds > 0 else 0.0


class EpochCheckpoint:
    """Where :func:`fit` keeps its state after every epoch, so a killed training resumes at
    the last finished epoch and ends with exactly the weights an uninterrupted one gives.

    The file holds CPU tensors and plain numbers only (model, optimiser, schedule, shuffling
    generator, epoch) and is read with ``torch.load(weights_only=True)`` onto the CPU.
    """

    def __init__(self, path: Path, on_saved: Callable[[int], None] | None = None) -> None:
        self.path, self.on_saved = Path(path), on_saved

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none yet."""
        if not self.path.exists():
            return None
        return torch.load(self.path, weights_only=True, map_location="cpu")

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically (its tensors moved to the CPU), then call ``on_saved``."""
        with atomic_path(self.path) as tmp:
            torch.save(_to_cpu(state), tmp)
        if self.on_saved:
            self.on_saved(int(state["epoch"]))


def _to_cpu(value: Any) -> Any:
    """``value`` with every tensor inside (dicts, lists, tuples) on the CPU, so a checkpoint
    written during CUDA training loads anywhere."""
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optimizer`` names, with ``cfg``'s learning rate and weight decay."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=SGD_MOMENTUM, nesterov=True, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def one_cycle(cfg: TrainConfig) -> ScheduleFactory:
    """OneCycleLR (warm-up, then cosine decay) peaking at ``cfg.lr``. AdamW keeps cycling its
    beta1 as before; SGD keeps its momentum at 0.9, since cycling would overwrite it."""
    cycle = cfg.optimizer != "sgd"
    return lambda o, n: torch.optim.lr_scheduler.OneCycleLR(o, cfg.lr, n, cycle_momentum=cycle)


@dataclass
class _Loop:
    """The objects of one :func:`fit` call and its epoch loop."""

    model: nn.Module
    data: Dataset
    cfg: TrainConfig
    gen: torch.Generator
    device: torch.device
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    per_epoch: int
    total: int
    on_step: StepHook | None = None
    progress: Progress | None = None
    loss_fn: nn.Module = field(init=False)

    def __post_init__(self) -> None:
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=self.cfg.label_smoothing)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at ``idx`` on the training device, augmented if asked."""
        x = self.data.x_train[idx].to(self.device, non_blocking=True)
        if self.cfg.augment or (self.cfg.augment is None and x.shape[1] == 3):
            x = augment(x, self.gen)
        return x, self.data.y_train[idx].to(self.device, non_blocking=True)

    def epoch(self, step: int) -> tuple[int, int]:
        """One shuffled pass (``per_epoch`` batches); the step count after it and the images."""
        order = torch.randperm(len(self.data.x_train), generator=self.gen)
        images, bs = 0, self.cfg.batch_size
        for b in range(self.per_epoch):
            x, y = self.batch(order[b * bs : (b + 1) * bs])
            self.opt.zero_grad(set_to_none=True)
            self.loss_fn(self.model(x), y).backward()
            self.opt.step()
            self.sched.step()
            step, images = step + 1, images + len(y)
            if self.on_step:
                self.on_step(step)
                _match_state_shapes(self.opt)
            if self.progress:
                self.progress(step, self.total)
        if self.device.type == "cuda":  # queued kernels belong to this epoch's time
            torch.cuda.synchronize(self.device)
        return step, images

    def state(self, epoch: int) -> dict[str, Any]:
        """What :class:`EpochCheckpoint` saves after ``epoch`` epochs."""
        state = {"model": self.model.state_dict(), "opt": self.opt.state_dict()}
        return state | {
            "sched": self.sched.state_dict(),
            "gen": self.gen.get_state(),
            "epoch": epoch,
        }


def batches_per_epoch(n: int, cfg: TrainConfig) -> int:
    """Optimiser steps per epoch over ``n`` training images (``cfg.max_batches`` caps it)."""
    per_epoch = -(-n // cfg.batch_size)
    return min(per_epoch, cfg.max_batches) if cfg.max_batches else per_epoch


def fit(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    seed: int,
    progress: Progress | None = None,
    checkpoint: EpochCheckpoint | None = None,
    on_step: StepHook | None = None,
    schedule: ScheduleFactory | None = None,
    stats: FitStats | None = None,
) -> nn.Module:
    """Train ``model`` in place (``cfg``'s optimiser, one-cycle schedule); returns it in eval
    mode, on the CPU. It trains on ``cfg.device``, on every core the process may use.

    With ``checkpoint``, training continues from its last saved epoch and saves after each.
    ``on_step(step)`` runs after every optimizer step, while the step's gradients are still
    in ``.grad`` (sparse training re-applies its masks there and reads dense gradients);
    it may grow parameters in place (``param.data = bigger``), the optimizer state follows.
    ``schedule(opt, total_steps)`` replaces the one-cycle learning-rate schedule.
    ``stats``, if given, is filled with the images trained on and the steps' wall time.
    """
    device = resolve_device(cfg.device)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    per_epoch = batches_per_epoch(len(data.x_train), cfg)
    total = max(1, cfg.epochs * per_epoch)
    with _all_cores():
        try:
            model.to(device)
            opt = make_optimizer(model.parameters(), cfg)
            sched = (schedule or one_cycle(cfg))(opt, total)
            loop = _Loop(
                model, data, cfg, gen, device, opt, sched, per_epoch, total, on_step, progress
            )
            _train(loop, _restore(checkpoint, model, opt, sched, gen), checkpoint, stats)
        finally:
            model.to("cpu")
    return model.train(False)


def _train(
    loop: _Loop, start: int, checkpoint: EpochCheckpoint | None, stats: FitStats | None
) -> None:
    """Epochs ``start`` to ``cfg.epochs`` of ``loop``, saving and timing each."""
    if stats is not None:
        stats.images, stats.seconds = 0, 0.0
    loop.model.train()
    step = start * loop.per_epoch
    for epoch in range(start, loop.cfg.epochs):
        began = time.perf_counter()
        step, images = loop.epoch(step)
        if stats is not None:
            stats.images += images
            stats.seconds += time.perf_counter() - began
        if checkpoint:
            checkpoint.save(loop.state(epoch + 1))


def _match_state_shapes(opt: torch.optim.Optimizer) -> None:
    """Pad the optimizer's per-parameter tensors to parameters ``on_step`` grew in place
    (:mod:`edgeauto.grow`): old entries keep their moments, grown ones start at zero, as a
    fresh optimizer would start them."""
    for param, state in opt.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.ndim and value.shape != param.shape:
                padded = torch.zeros_like(param.data)
                padded[tuple(slice(0, n) for n in value.shape)] = value
                state[key] = padded


def _restore(
    checkpoint: EpochCheckpoint | None,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
) -> int:
    """Load the checkpoint's state into the training objects; the epoch to start at.
    The saved CPU tensors are copied onto the model's device by ``load_state_dict``."""
    state = checkpoint.load() if checkpoint else None
    if state is None:
        return 0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    gen.set_state(state["gen"])
    return int(state["epoch"])


def _model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s first parameter (or buffer) lives; the CPU for a stateless model."""
    first = next(model.parameters(), None)
    if first is None:
        first = next(model.buffers(), None)
    return first.device if first is not None else torch.device("cpu")


def plain_throughput(
    model: nn.Module, data: Dataset, batch_size: int, steps: int, seed: int
) -> float:
    """Images per second of the plainest training loop (shuffled ``data.x_train[idx]``,
    ``zero_grad``, cross-entropy ``backward``, SGD ``step``) on a copy of ``model``, on the
    model's device and with :func:`fit`'s threads: the reference :class:`FitStats` compares to.
    """
    if batch_size < 1 or steps < 1:
        raise ConfigError(
            f"plain_throughput needs batch_size >= 1 and steps >= 1, got {batch_size}, {steps}"
        )
    net = copy.deepcopy(model).train()  # the caller's weights stay as they were
    device, gen = _model_device(net), torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=SGD_MOMENTUM)
    loss, n = nn.CrossEntropyLoss(), len(data.x_train)
    with _all_cores():
        began, images = time.perf_counter(), 0
        for idx in _index_batches(n, batch_size, steps, gen):
            x, y = data.x_train[idx].to(device), data.y_train[idx].to(device)
            opt.zero_grad()
            loss(net(x), y).backward()
            opt.step()
            images += len(idx)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - began
    return images / seconds if seconds > 0 else 0.0


def _index_batches(
    n: int, batch_size: int, steps: int, gen: torch.Generator
) -> Iterator[torch.Tensor]:
    """``steps`` index batches of shuffled passes over ``range(n)``, reshuffled per pass."""
    per_pass = max(1, -(-n // batch_size))
    order = torch.randperm(n, generator=gen)
    for s in range(steps):
        if s and s % per_pass == 0:
            order = torch.randperm(n, generator=gen)
        b = s % per_pass
        yield order[b * batch_size : (b + 1) * batch_size]


@torch.no_grad()
def accuracy(model: nn.Module, x: Indexable, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, in batches moved to the model's device."""
    model.train(False)
    device, correct = _model_device(model), 0
    for i in range(0, len(x), batch_size):
        pred = model(x[i : i + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == y[i : i + batch_size].cpu()).sum())
    return correct / max(1, len(x))


def accuracy_on_test(model: nn.Module, data: Dataset) -> float | None:
    """Top-1 accuracy on the held-out test split (None when ``data`` has none). Read it once,
    for the final model, after every choice was made on validation."""
    if data.x_test is None or data.y_test is None or not len(data.x_test):
        return None
    return accuracy(model, data.x_test, data.y_test)
