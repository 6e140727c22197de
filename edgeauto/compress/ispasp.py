"""i-SpaSP-style importance (Wolfe et al., "i-SpaSP: Structured Neural Pruning via Sparse
Signal Recovery"): keep the channels that best reconstruct each consuming layer's output.

A layer that reduces over input channels (a dense conv or a linear layer) computes
``Y = sum_j C_j``, where ``C_j`` is input channel ``j``'s contribution. Channels are picked in
rounds by the correlation of their contribution with the residual ``Y - sum_{picked} C_j``;
a channel picked in an earlier round is more important. Groups with no such consumer (for
example a channel feeding only a depthwise conv and the classifier) fall back to group L2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeauto.compress.criteria import CRITERIA, IN_FNS, L2, Criterion, Group, _scatter
from edgeauto.data import Dataset

MAX_COLUMNS = 40_000  # contribution entries kept per channel (random subsample above this)
ROUNDS = 8  # channels are picked in this many rounds


@CRITERIA.register("ispasp")
class ISpaSP(Criterion):
    """Greedy residual pursuit over per-input-channel contributions of each consumer layer."""

    name = "ispasp"
    needs_data = True

    def __init__(self, batches: int = 1, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(batches, batch_size, seed)
        self._inputs: dict[str, torch.Tensor] = {}
        self._fallback = L2()

    def prepare(self, model: nn.Module, data: Dataset | None) -> None:
        super().prepare(model, data)
        data = self._require(data)
        self._inputs = {}
        handles = [
            m.register_forward_hook(self._keep_input)
            for m in model.modules()
            if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)
        ]
        model.train(False)
        try:
            with torch.no_grad():
                for x, _ in self._data_batches(data):
                    model(x)
                    break  # one batch: contributions grow as channels x outputs
        finally:
            for h in handles:
                h.remove()
        self._fallback.bind(model)

    def _keep_input(self, m: nn.Module, inp: tuple, _out: torch.Tensor) -> None:
        self._inputs[self.name_of(m)] = inp[0].detach()

    def group_scores(self, group: Group) -> torch.Tensor | None:
        n = len(group[0].root_idxs)
        total = None
        for i, (dep, idxs) in enumerate(group):
            x = self._inputs.get(self.name_of(dep.layer))
            if dep.pruning_fn not in IN_FNS or x is None:
                continue
            contrib = contributions(dep.layer, x, self.seed)[list(idxs)]
            local = pursuit_rank(contrib)
            total = _scatter(total, n, local, group[i].root_idxs)
        if total is None:
            return self._fallback.group_scores(group)
        return total


def contributions(layer: nn.Module, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``C[j]``: input channel ``j``'s contribution to ``layer``'s output, flattened per row."""
    if isinstance(layer, nn.Linear):
        c = x.t().unsqueeze(-1) * layer.weight.detach().t().unsqueeze(1)  # (cin, N, cout)
    else:
        cin, cout = layer.in_channels, layer.out_channels
        w = layer.weight.detach().transpose(0, 1).reshape(cin * cout, 1, *layer.kernel_size)
        y = F.conv2d(x, w, None, layer.stride, layer.padding, layer.dilation, groups=cin)
        c = y.reshape(x.shape[0], cin, cout, *y.shape[2:]).transpose(0, 1)
    c = c.reshape(c.shape[0], -1)
    if c.shape[1] > MAX_COLUMNS:
        gen = torch.Generator().manual_seed(seed)
        c = c[:, torch.randperm(c.shape[1], generator=gen)[:MAX_COLUMNS]]
    return c


def pursuit_rank(contrib: torch.Tensor) -> torch.Tensor:
    """Scores from greedy residual pursuit: ``ROUNDS`` rounds, each picks the channels whose
    contributions correlate most with what is still unexplained. Higher = picked earlier."""
    n = contrib.shape[0]
    target = contrib.sum(0)
    picked = torch.zeros(n, dtype=torch.bool)
    score = torch.zeros(n)
    per_round = max(1, -(-n // ROUNDS))
    for r in range(ROUNDS):
        if picked.all():
            break
        residual = target - contrib[picked].sum(0)
        corr = (contrib @ residual).abs()
        corr[picked] = -1.0
        chosen = corr.topk(min(per_round, int((~picked).sum()))).indices
        # ties inside a round are broken by the correlation, scaled below one round's step
        score[chosen] = (ROUNDS - r) + corr[chosen] / corr[chosen].max().clamp_min(1e-12) * 0.5
        picked[chosen] = True
    return score
