"""Sparse training methods that grow without a dense gradient or prune by overlap.

- ``ctre``: fixed parameter count without dense gradients (Atashgahi et al., CTRE: "Cosine
  similarity-based and Random Topology Exploration"): ERK random mask, every ``delta_t``
  steps drop the smallest-magnitude active weights of each layer and grow the same number of
  connections that were missing, ``1 - explore_fraction`` of them between the input and output
  units whose activations on the batch just trained on have the largest absolute cosine
  similarity (conv: per-channel means over positions, one score per channel pair shared by its
  kernel positions), the rest uniformly at random; new weights start at zero; drop fraction
  cosine-decayed to 0 at ``end_fraction`` of training, as ``rigl``.
- ``colt``: cyclic overlapping lottery tickets (Hossain et al., COLT): the training data split
  into two seeded disjoint halves; each round trains a copy per half from the same initial
  weights, prunes each by magnitude to the round's target (IMP's ``1 - (1 - s)^(r/rounds)``),
  keeps the overlap of the survivors, topped up to the exact target by the copies' mean
  magnitude, and rewinds to the initial weights; then trains the ticket on all the data.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from edgeauto.data import Dataset
from edgeauto.sparse.base import SPARSE_METHODS, SparseMethod, steps_per_epoch
from edgeauto.sparse.masks import Masks, keep_global, keep_per_layer, maskable, random_masks
from edgeauto.train import accuracy

#: each masked layer's latest ``(input, output)`` activations, by weight name
Activations = dict[str, tuple[torch.Tensor, torch.Tensor]]
#: tensors by parameter (or state) name
Weights = dict[str, torch.Tensor]


def masked_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The conv or linear module that owns each maskable weight, by the weight's name."""
    modules = dict(model.named_modules())
    return {k: modules[k.rpartition(".")[0]] for k in maskable(model)}


def record_activations(model: nn.Module, acts: Activations) -> list[RemovableHandle]:
    """Forward hooks that keep each masked layer's latest input and output in ``acts``
    (detached references: no copy, no graph kept alive)."""

    def keeper(name: str) -> Any:
        def hook(_mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            acts[name] = (inp[0].detach(), out.detach())

        return hook

    return [m.register_forward_hook(keeper(k)) for k, m in masked_modules(model).items()]


def unit_activations(
    module: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(samples, in_units)`` and ``(samples, out_units)``: conv channels are reduced to their
    mean over positions (one value per sample); extra linear dims count as samples."""
    if isinstance(module, nn.Conv2d):
        return x.float().mean((2, 3)), y.float().mean((2, 3))
    return x.float().reshape(-1, x.shape[-1]), y.float().reshape(-1, y.shape[-1])


def cosine_scores(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``|cos|`` between the activations of every output and input unit, shaped like the
    module's weight: a conv's channel pair shares its score over all kernel positions and only
    the pairs inside a group (the ones the weight connects) are kept."""
    x, y = unit_activations(module, x, y)
    xn = x / x.norm(dim=0).clamp_min(1e-12)  # a silent unit scores 0, not NaN
    yn = y / y.norm(dim=0).clamp_min(1e-12)
    sim = (yn.T @ xn).abs()  # (out_units, in_units)
    shape, groups = module.weight.shape, getattr(module, "groups", 1)
    out_g, in_g = shape[0] // groups, shape[1]
    sim = torch.cat([sim[g * out_g : (g + 1) * out_g, g * in_g : (g + 1) * in_g]
                     for g in range(groups)])  # fmt: skip
    return sim.view(*sim.shape, *[1] * (len(shape) - 2)).expand(shape)


def similarity_flops(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Cost of :func:`cosine_scores`: the (out x samples) @ (samples x in) product plus one
    pass over the activations for the channel means and the norms."""
    xs, ys = unit_activations(module, x, y)
    return 2.0 * xs.shape[0] * xs.shape[1] * ys.shape[1] + 2.0 * (x.numel() + y.numel())


def grow_indices(score: torch.Tensor, candidates: torch.Tensor, n: int, n_random: int,
                 gen: torch.Generator) -> torch.Tensor:  # fmt: skip
    """Flat indices of ``n`` of the ``candidates``: ``n - n_random`` with the highest
    ``score`` (equal scores in a seeded random order), then ``n_random`` uniformly among the
    candidates left."""
    idx = candidates.flatten().nonzero().squeeze(1)
    idx = idx[torch.randperm(idx.numel(), generator=gen)]  # shuffled first: random tie-break
    ranked = idx[torch.argsort(score.flatten()[idx], descending=True, stable=True)]
    best, rest = ranked[: n - n_random], ranked[n - n_random :]
    return torch.cat([best, rest[torch.randperm(rest.numel(), generator=gen)[:n_random]]])


@SPARSE_METHODS.register("ctre")
class CTRE(SparseMethod):
    """Dynamic sparse training at a fixed parameter count: drop by magnitude, grow by the
    cosine similarity of activations plus random exploration; no dense gradient is read.

    Grown connections are chosen among those missing before the update (a weight dropped now
    is not grown back at zero in the same update, so every move explores). Activations come
    from forward hooks on the batch just trained on, so scoring needs no extra forward pass.
    """

    name: ClassVar[str] = "ctre"

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        cfg = self.config
        masks = random_masks(model, cfg.sparsity, cfg.distribution, cfg.seed)
        end = int(cfg.end_fraction * cfg.epochs * steps_per_epoch(cfg, data))
        gen = torch.Generator().manual_seed(cfg.seed)  # tie-breaks and random exploration
        acts: Activations = {}
        updates: list[dict[str, Any]] = []

        def update(step: int) -> None:
            if step % cfg.delta_t == 0 and step < end:
                frac = cfg.drop_fraction / 2 * (1 + math.cos(math.pi * step / end))
                moved, explored = self.regrow(model, masks, frac, acts, gen)
                kept = masks.numel - masks.zeros  # the parameter count, fixed throughout
                updates.append({"step": step, "drop_fraction": frac, "moved": moved,
                                "explored": explored, "kept": kept})  # fmt: skip

        handles = record_activations(model, acts)
        try:
            self.train(model, data, masks, cfg.epochs, on_step=update)
        finally:
            for h in handles:
                h.remove()
        self.history.extend(updates)
        return masks

    @torch.no_grad()
    def regrow(self, model: nn.Module, masks: Masks, frac: float, acts: Activations,
               gen: torch.Generator) -> tuple[int, int]:  # fmt: skip
        """Move ``frac`` of each layer's active weights: drop the smallest, grow by ``acts``'
        cosine scores and at random. Returns (weights moved, of them grown at random)."""
        params, modules = dict(model.named_parameters()), masked_modules(model)
        moved = explored = 0
        for k, m in masks.masks.items():
            flat, w = m.flatten(), params[k]
            active = int(flat.sum())
            n = min(int(frac * active), flat.numel() - active)  # only where nothing was
            if n == 0 or k not in acts:
                continue
            score = cosine_scores(modules[k], *acts[k])
            self._flops += similarity_flops(modules[k], *acts[k])
            new = flat.clone()
            drop_score = torch.where(flat, w.abs().flatten(), math.inf)
            new[torch.argsort(drop_score, stable=True)[:n]] = False
            n_random = round(self.config.explore_fraction * n)
            grow = grow_indices(score, ~flat, n, n_random, gen)
            new[grow] = True
            w.view(-1)[grow] = 0.0  # grown connections start at zero
            moved, explored = moved + n, explored + n_random
            masks.masks[k] = new.view_as(m)
        masks.apply(model)
        return moved, explored


def split_halves(data: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """Two disjoint halves of the training data (a seeded permutation); validation shared."""
    perm = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed))
    cut = len(perm) // 2
    a, b = (dataclasses.replace(data, x_train=data.x_train[i], y_train=data.y_train[i])
            for i in (perm[:cut], perm[cut:]))  # fmt: skip
    return a, b


def keep_by_score(prev: Masks, scores: Weights, sparsity: float, scope: str) -> Masks:
    """The highest ``scores`` among ``prev``'s survivors at exactly ``sparsity`` (over all
    weights for ``global``, in every layer for ``layer``); pruned weights stay pruned."""
    live = {k: torch.where(prev.masks[k], s.float(), -1.0) for k, s in scores.items()}
    if scope == "global":
        return keep_global(live, sparsity)
    keep = {k: s.numel() - round(sparsity * s.numel()) for k, s in live.items()}
    return keep_per_layer(live, keep)


def overlap_masks(prev: Masks, a: Weights, b: Weights, sparsity: float,
                  scope: str) -> tuple[Masks, Masks]:  # fmt: skip
    """COLT's pruning step for two copies' weights ``a`` and ``b``: (the overlap of their
    magnitude masks at ``sparsity``, that overlap topped up to exactly ``sparsity``).

    Both masks keep the same count, so the overlap never keeps more than the target; the
    missing survivors are the other live weights with the largest mean magnitude of the copies.
    """
    mask_a = keep_by_score(prev, {k: w.abs() for k, w in a.items()}, sparsity, scope)
    mask_b = keep_by_score(prev, {k: w.abs() for k, w in b.items()}, sparsity, scope)
    overlap = Masks({k: m & mask_b.masks[k] for k, m in mask_a.masks.items()})
    scores = {k: torch.where(overlap.masks[k], math.inf, (a[k].abs() + b[k].abs()) / 2)
              for k in a}  # fmt: skip
    return overlap, keep_by_score(prev, scores, sparsity, scope)


@SPARSE_METHODS.register("colt")
class COLT(SparseMethod):
    """Lottery tickets from the overlap of two copies trained on disjoint halves of the data.

    Each round both copies start from the same initial weights and the current mask, train
    ``epochs`` on their half and are pruned by magnitude (``scope`` as IMP) to the round's
    target; the overlap, topped up by mean magnitude to the exact target, is the next mask.
    The final ticket is rewound to the initial weights and trained ``epochs`` on all the data.
    """

    name: ClassVar[str] = "colt"

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        cfg = self.config
        init = copy.deepcopy(model.state_dict())
        halves = split_halves(data, cfg.seed)
        masks = Masks.dense(model)
        for r in range(1, cfg.rounds + 1):
            # the same fraction of the survivors goes each round; the last lands on target
            target = cfg.sparsity if r == cfg.rounds else 1 - (1 - cfg.sparsity) ** (r / cfg.rounds)
            copies = [self._train_copy(model, half, masks, init, 2 * r + h)
                      for h, half in enumerate(halves)]  # fmt: skip
            overlap, masks = overlap_masks(masks, copies[0][0], copies[1][0], target, cfg.scope)
            self.history.append({"round": r, "phase": "prune", "target": target,
                                 "overlap_sparsity": overlap.sparsity, "sparsity": masks.sparsity,
                                 "topped_up": overlap.zeros - masks.zeros,
                                 "val_acc": [acc for _, acc in copies]})  # fmt: skip
        model.load_state_dict(init)  # lottery-style: survivors back to their initial values
        self.train(model, data, masks, cfg.epochs)
        self.history.append({"round": cfg.rounds, "phase": "final", "sparsity": masks.sparsity,
                             "val_acc": accuracy(model, data.x_val, data.y_val)})  # fmt: skip
        return masks

    def _train_copy(self, model: nn.Module, half: Dataset, masks: Masks, init: Weights,
                    seed_offset: int) -> tuple[Weights, float]:  # fmt: skip
        """Train from ``init`` under ``masks`` on ``half``: (its masked weights, val accuracy)."""
        model.load_state_dict(init)
        self.train(model, half, masks, self.config.epochs, seed_offset=seed_offset)
        weights = {k: p.detach().clone() for k, p in maskable(model).items()}
        return weights, accuracy(model, half.x_val, half.y_val)
