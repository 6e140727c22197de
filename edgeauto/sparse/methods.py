"""The registered sparse training methods.

- ``imp``: iterative magnitude pruning (Han et al.): train dense, then ``rounds`` of
  prune-by-magnitude (``global`` or per ``layer``; each round removes the same fraction of
  what is left) and retrain (``finetune``, ``lrr`` learning-rate rewinding after Renda et al.,
  ``slr`` scaled learning-rate restarting after Zimmer et al., or ``rewind``).
- ``lottery``: IMP with weight rewinding (Frankle et al., "Linear Mode Connectivity and the
  Lottery Ticket Hypothesis"): survivors go back to their values after ``rewind_epoch``.
- ``snip``: connection sensitivity ``|g * w|`` at initialisation (Lee et al.), one shot,
  then normal training with the mask fixed.
- ``rigl``: fixed parameter count (Evci et al.): ERK random mask, every ``delta_t`` steps
  drop the smallest-magnitude active weights and grow the same number where the dense
  gradient is largest (new weights start at zero); drop fraction cosine-decayed to 0 at
  ``end_fraction`` of training.
- ``static``: the same random ERK mask as ``rigl`` starts from, never updated (RigL's control).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.sparse.base import (
    SPARSE_METHODS,
    SparseConfig,
    SparseMethod,
    constant,
    linear_from,
    schedule_tail,
    steps_per_epoch,
)
from edgeauto.sparse.masks import Masks, keep_global, keep_per_layer, maskable, random_masks
from edgeauto.train import ScheduleFactory, accuracy


@SPARSE_METHODS.register("imp")
class IMP(SparseMethod):
    """Iterative magnitude pruning with a choice of retraining schedule."""

    name: ClassVar[str] = "imp"
    retrain_mode: ClassVar[str | None] = None  # None: config.retrain

    def __init__(self, config: SparseConfig) -> None:
        super().__init__(config)
        if (
            self.retrain_mode or config.retrain
        ) == "rewind" and config.rewind_epoch >= config.epochs:
            raise ConfigError(
                f"sparse rewind_epoch must be in [0, epochs={config.epochs}), got "
                f"{config.rewind_epoch}; fix rewind_epoch"
            )

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        cfg = self.config
        mode = self.retrain_mode or cfg.retrain
        per = steps_per_epoch(cfg, data)
        rewind_step, snapshot = cfg.rewind_epoch * per, {}

        def grab(step: int) -> None:
            if step == rewind_step:
                snapshot.update({k: v.detach().clone() for k, v in model.state_dict().items()})

        if mode == "rewind" and rewind_step == 0:
            grab(0)
        masks = Masks.dense(model)
        self.train(model, data, masks, cfg.epochs, on_step=grab if mode == "rewind" else None)
        self._log(model, data, masks, 0)
        for r in range(1, cfg.rounds + 1):
            # the same fraction of the survivors goes each round; the last lands on target
            target = cfg.sparsity if r == cfg.rounds else 1 - (1 - cfg.sparsity) ** (r / cfg.rounds)
            masks = self.prune(model, masks, target)
            if mode == "rewind":
                model.load_state_dict(snapshot)
            epochs, schedule = self._retraining(mode, per)
            self.train(model, data, masks, epochs, schedule, seed_offset=r)
            self._log(model, data, masks, r)
        return masks

    def prune(self, model: nn.Module, masks: Masks, sparsity: float) -> Masks:
        """Magnitude masks at ``sparsity``; weights already pruned stay pruned."""
        params = maskable(model)
        scores = {k: torch.where(masks.masks[k], p.detach().abs(), -1.0) for k, p in params.items()}
        if self.config.scope == "global":
            return keep_global(scores, sparsity)
        return keep_per_layer(
            scores, {k: p.numel() - round(sparsity * p.numel()) for k, p in params.items()}
        )

    def _retraining(self, mode: str, per: int) -> tuple[int, ScheduleFactory]:
        """Epochs and learning-rate schedule of one retraining round."""
        cfg = self.config
        total = cfg.epochs * per
        if mode == "rewind":
            return cfg.epochs - cfg.rewind_epoch, schedule_tail(cfg.rewind_epoch * per, total)
        n = cfg.retrain_epochs
        if mode == "finetune":
            return n, constant(0.01)  # the usual small constant rate
        if mode == "lrr":
            return n, schedule_tail(max(0, total - n * per), total)
        return n, linear_from(min(1.0, n / cfg.epochs))  # slr: peak scaled by budget share

    def _log(self, model: nn.Module, data: Dataset, masks: Masks, r: int) -> None:
        acc = accuracy(model, data.x_val, data.y_val)
        self.history.append({"round": r, "sparsity": masks.sparsity, "val_acc": acc})


@SPARSE_METHODS.register("lottery")
class Lottery(IMP):
    """IMP whose survivors rewind to their early-training values before each retraining."""

    name: ClassVar[str] = "lottery"
    retrain_mode: ClassVar[str | None] = "rewind"


@SPARSE_METHODS.register("snip")
class SNIP(SparseMethod):
    """One-shot pruning at initialisation by connection sensitivity ``|dL/dw * w|``."""

    name: ClassVar[str] = "snip"

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        cfg = self.config
        params = maskable(model)
        scores = {k: torch.zeros_like(p) for k, p in params.items()}
        gen = torch.Generator().manual_seed(cfg.seed)
        model.train(True)
        for _ in range(cfg.snip_batches):
            idx = torch.randperm(len(data.x_train), generator=gen)[: cfg.batch_size]
            model.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            for k, p in params.items():
                scores[k] += (p.grad * p).detach().abs()
        model.zero_grad(set_to_none=True)
        self.count_flops(Masks.dense(model), cfg.snip_batches * cfg.batch_size)
        masks = keep_global(scores, cfg.sparsity)
        self.train(model, data, masks, cfg.epochs)
        self.history.append({"round": 0, "sparsity": masks.sparsity,
                             "val_acc": accuracy(model, data.x_val, data.y_val)})  # fmt: skip
        return masks


@SPARSE_METHODS.register("static")
class Static(SparseMethod):
    """A random mask with ERK (or uniform) layer densities, fixed from initialisation."""

    name: ClassVar[str] = "static"

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        cfg = self.config
        masks = random_masks(model, cfg.sparsity, cfg.distribution, cfg.seed)
        self.train(model, data, masks, cfg.epochs)
        return masks


@SPARSE_METHODS.register("rigl")
class RigL(SparseMethod):
    """Dynamic sparse training at a fixed parameter count: drop by magnitude, grow by gradient."""

    name: ClassVar[str] = "rigl"

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        cfg = self.config
        masks = random_masks(model, cfg.sparsity, cfg.distribution, cfg.seed)
        end = int(cfg.end_fraction * cfg.epochs * steps_per_epoch(cfg, data))
        updates = []

        def update(step: int) -> None:
            if step % cfg.delta_t == 0 and step < end:
                frac = cfg.drop_fraction / 2 * (1 + math.cos(math.pi * step / end))
                updates.append({"step": step, "drop_fraction": frac,
                                "moved": self.regrow(model, masks, frac)})  # fmt: skip

        self.train(model, data, masks, cfg.epochs, self._keep_optimizer(), on_step=update)
        # each update needed one dense gradient: about one dense training step's cost
        self.count_flops(Masks.dense(model), len(updates) * cfg.batch_size)
        self.history.extend(updates)
        return masks

    def _keep_optimizer(self) -> ScheduleFactory:
        """fit's default schedule, keeping a handle on the optimizer so that a regrowth can
        clear the moments of the weights it moves."""

        def make(opt: torch.optim.Optimizer, n: int) -> torch.optim.lr_scheduler.LRScheduler:
            self._optimizer = opt
            return torch.optim.lr_scheduler.OneCycleLR(opt, self.config.lr, n)

        return make

    def _reset_moments(self, w: nn.Parameter, moved: torch.Tensor) -> None:
        """Zero AdamW's moments at ``moved`` (flat indices) of ``w``: a masked weight still
        gathers gradient moments, and a grown one must start from zero (the paper's
        momentum reset), not from the history of a weight that was not there."""
        state = getattr(self, "_optimizer", None)
        buffers = state.state.get(w, {}) if state is not None else {}
        for name in ("exp_avg", "exp_avg_sq"):
            if name in buffers:
                buffers[name].view(-1)[moved] = 0.0

    @torch.no_grad()
    def regrow(self, model: nn.Module, masks: Masks, frac: float) -> int:
        """Move ``frac`` of each layer's active weights: drop the smallest, grow where the
        current dense gradient is largest. Returns how many weights changed place."""
        params, moved = dict(model.named_parameters()), 0
        for k, m in masks.masks.items():
            w, flat = params[k], m.flatten()
            active = int(flat.sum())
            n = int(frac * active)
            if w.grad is None or n == 0 or active == flat.numel():
                continue
            drop_score = torch.where(flat, w.detach().abs().flatten(), math.inf)
            new = flat.clone()
            new[torch.argsort(drop_score, stable=True)[:n]] = False
            grow_score = torch.where(new, -math.inf, w.grad.abs().flatten())
            grow = torch.argsort(grow_score, descending=True, stable=True)[:n]
            new[grow] = True
            w.view(-1)[grow] = 0.0  # grown connections start at zero
            self._reset_moments(w, grow)
            moved += int((new & ~flat).sum())
            masks.masks[k] = new.view_as(m)
        masks.apply(model)
        return moved
