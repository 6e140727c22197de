"""The one training and evaluation loop everything uses (seeded, CPU, in-memory data)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeauto.data import Dataset
from edgeauto.fileio import atomic_path

Progress = Callable[[int, int], None]
StepHook = Callable[[int], None]
ScheduleFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings shared by search, final training and fine-tuning."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    max_batches: int | None = None  # cap per epoch, for quick proxy training during search


class EpochCheckpoint:
    """Where :func:`fit` keeps its state after every epoch, so a killed training resumes at
    the last finished epoch and ends with exactly the weights an uninterrupted one gives.

    The file holds tensors and plain numbers only (model, optimiser, schedule, shuffling
    generator, epoch) and is read with ``torch.load(weights_only=True)``.
    """

    def __init__(self, path: Path, on_saved: Callable[[int], None] | None = None) -> None:
        self.path, self.on_saved = Path(path), on_saved

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        return torch.load(self.path, weights_only=True)

    def save(self, state: dict[str, Any]) -> None:
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)
        if self.on_saved:
            self.on_saved(int(state["epoch"]))


def fit(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    seed: int,
    progress: Progress | None = None,
    checkpoint: EpochCheckpoint | None = None,
    on_step: StepHook | None = None,
    schedule: ScheduleFactory | None = None,
) -> nn.Module:
    """Train ``model`` in place with AdamW and a cosine schedule; returns it in eval mode.

    With ``checkpoint``, training continues from its last saved epoch and saves after each.
    ``on_step(step)`` runs after every optimizer step, while the step's gradients are still
    in ``.grad`` (sparse training re-applies its masks there and reads dense gradients);
    it may grow parameters in place (``param.data = bigger``), the optimizer state follows.
    ``schedule(opt, total_steps)`` replaces the one-cycle learning-rate schedule.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(data.x_train)
    per_epoch = -(-n // cfg.batch_size)
    if cfg.max_batches:
        per_epoch = min(per_epoch, cfg.max_batches)
    total = max(1, cfg.epochs * per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    make_sched = schedule or (lambda o, n: torch.optim.lr_scheduler.OneCycleLR(o, cfg.lr, n))
    sched = make_sched(opt, total)
    loss_fn = nn.CrossEntropyLoss()
    start = _restore(checkpoint, model, opt, sched, gen)
    model.train()
    step = start * per_epoch
    for epoch in range(start, cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for b in range(per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
            sched.step()
            step += 1
            if on_step:
                on_step(step)
                _match_state_shapes(opt)
            if progress:
                progress(step, total)
        if checkpoint:
            state = {"model": model.state_dict(), "opt": opt.state_dict()}
            state |= {"sched": sched.state_dict(), "gen": gen.get_state(), "epoch": epoch + 1}
            checkpoint.save(state)
    return model.train(False)


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
    """Load the checkpoint's state into the training objects; the epoch to start at."""
    state = checkpoint.load() if checkpoint else None
    if state is None:
        return 0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    gen.set_state(state["gen"])
    return int(state["epoch"])


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    model.train(False)
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(1, len(x))
