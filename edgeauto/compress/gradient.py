"""Criteria from gradients: Taylor (first and second order, with gates) and Hessian (OBD).

Scores are gathered with the model in inference mode (BatchNorm uses its running statistics),
so the loss being differentiated is the one the deployed model has.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from edgeauto.compress.criteria import (
    BN_FN,
    CRITERIA,
    OUT_FNS,
    Criterion,
    Group,
    ParamSaliency,
    _root_count,
    _scatter,
)
from edgeauto.data import Dataset

LOSS = nn.CrossEntropyLoss()


def _rademacher(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, like.shape, generator=gen).to(like.dtype) * 2 - 1


def hutchinson(
    loss: torch.Tensor, params: list[torch.Tensor], samples: int, gen: torch.Generator
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gradients of ``loss`` and an estimate of its Hessian diagonal: ``E[v * Hv]``."""
    grads = torch.autograd.grad(loss, params, create_graph=True)
    diag = [torch.zeros_like(p) for p in params]
    for _ in range(samples):
        vs = [_rademacher(p, gen) for p in params]
        dot = sum((g * v).sum() for g, v in zip(grads, vs))
        hvs = torch.autograd.grad(dot, params, retain_graph=True)
        for d, v, hv in zip(diag, vs, hvs):
            d += v * hv / samples
    return [g.detach() for g in grads], diag


@CRITERIA.register("hessian")
class HessianOBD(ParamSaliency):
    """Optimal Brain Damage: ``0.5 * |h_ii| * w_i^2`` with a Hutchinson Hessian diagonal."""

    name = "hessian"
    needs_data = True
    use_bias = True  # OBD counts every weight the channel's removal zeroes
    samples = 2  # Rademacher probes per batch

    def prepare(self, model: nn.Module, data: Dataset | None) -> None:
        super().prepare(model, data)
        data = self._require(data)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        params = [p for _, p in named]
        gen = torch.Generator().manual_seed(self.seed)
        self._h = {n: torch.zeros_like(p) for n, p in named}
        model.train(False)
        batches = 0
        for x, y in self._data_batches(data):
            _, diag = hutchinson(LOSS(model(x), y), params, self.samples, gen)
            for (n, _), d in zip(named, diag):
                self._h[n] += d.detach()
            batches += 1
        for v in self._h.values():
            v /= max(1, batches)

    def saliency(self, name: str, param: torch.Tensor) -> torch.Tensor:
        h = self._h.get(name)
        if h is None or h.shape != param.shape:
            raise RuntimeError(f"criterion hessian: no estimate for {name}; call prepare first")
        # |h|: Hutchinson's estimate of a diagonal entry can come out negative, while OBD's
        # saliency assumes a positive curvature at a trained minimum.
        return 0.5 * h.abs() * param.pow(2)


@contextmanager
def gates(model: nn.Module) -> Iterator[dict[nn.Module, torch.Tensor]]:
    """A multiplicative gate of ones on the output channels of every conv, linear and BN."""
    found: dict[nn.Module, torch.Tensor] = {}
    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear | nn.BatchNorm2d):
            n = m.out_channels if isinstance(m, nn.Conv2d) else getattr(m, "out_features", None)
            n = n or m.num_features
            found[m] = torch.ones(n, requires_grad=True)
            handles.append(m.register_forward_hook(_gate_hook(found[m])))
    try:
        yield found
    finally:
        for h in handles:
            h.remove()


def _gate_hook(gate: torch.Tensor):
    def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (out.dim() - 2)
        return out * gate.view(shape)

    return hook


class GateTaylor(Criterion):
    """Molchanov et al.'s gate formulation; ``order`` 1 or 2."""

    needs_data = True
    order = 1
    samples = 2

    def prepare(self, model: nn.Module, data: Dataset | None) -> None:
        super().prepare(model, data)
        data = self._require(data)
        gen = torch.Generator().manual_seed(self.seed)
        model.train(False)
        z2: dict[str, torch.Tensor] = {}
        z: dict[str, torch.Tensor] = {}
        h: dict[str, torch.Tensor] = {}
        n = 0
        with gates(model) as gs:
            mods, gate_list = [self.name_of(m) for m in gs], list(gs.values())
            for x, y in self._data_batches(data):
                loss = LOSS(model(x), y)
                if self.order == 1:
                    grads = [g.detach() for g in torch.autograd.grad(loss, gate_list)]
                    diag = [torch.zeros_like(g) for g in grads]
                else:
                    grads, diag = hutchinson(loss, gate_list, self.samples, gen)
                for m, g, d in zip(mods, grads, diag):
                    z2[m] = z2.get(m, 0) + g.pow(2)
                    z[m] = z.get(m, 0) + g
                    h[m] = h.get(m, 0) + d.detach()
                n += 1
        n = max(1, n)
        if self.order == 1:
            self._score = {m: v / n for m, v in z2.items()}
        else:  # loss change of m: 1 -> 0 is -dL/dm + 0.5 d2L/dm2
            self._score = {m: (-z[m] / n + 0.5 * h[m] / n).abs() for m in z}

    def group_scores(self, group: Group) -> torch.Tensor | None:
        if not hasattr(self, "_score"):
            raise RuntimeError(f"criterion {self.name}: call prepare(model, data) first")
        # A BN gate measures removing the channel after normalisation, i.e. really removing it;
        # conv gates are used only where no BN follows.
        bn = [i for i, (dep, _) in enumerate(group) if dep.pruning_fn == BN_FN]
        use = bn or [i for i, (dep, _) in enumerate(group) if dep.pruning_fn in OUT_FNS]
        total = None
        for i in use:
            dep, idxs = group[i]
            score = self._score.get(self.name_of(dep.layer))
            if score is not None:
                total = _scatter(total, _root_count(group), score[list(idxs)], group[i].root_idxs)
        return total


@CRITERIA.register("taylor")
class Taylor(GateTaylor):
    """First-order Taylor: mean over minibatches of ``(dL/dm)^2``."""

    name = "taylor"
    order = 1


@CRITERIA.register("taylor2")
class Taylor2(GateTaylor):
    """Second-order Taylor: ``|-dL/dm + 0.5 d2L/dm2|`` with a Hutchinson diagonal."""

    name = "taylor2"
    order = 2
