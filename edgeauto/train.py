"""The one training and evaluation loop everything uses (seeded, CPU, in-memory data)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from edgeauto.data import Dataset

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings shared by search, final training and fine-tuning."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    max_batches: int | None = None  # cap per epoch, for quick proxy training during search


def fit(
    model: nn.Module, data: Dataset, cfg: TrainConfig, seed: int, progress: Progress | None = None
) -> nn.Module:
    """Train ``model`` in place with AdamW and a cosine schedule; returns it in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(data.x_train)
    per_epoch = -(-n // cfg.batch_size)
    if cfg.max_batches:
        per_epoch = min(per_epoch, cfg.max_batches)
    total = max(1, cfg.epochs * per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    step = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for b in range(per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
            sched.step()
            step += 1
            if progress:
                progress(step, total)
    return model.train(False)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    model.train(False)
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(1, len(x))
