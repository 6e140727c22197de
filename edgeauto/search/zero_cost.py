"""Training-free scores of an untrained network (TE-NAS, Chen et al., ICLR 2021).

Two numbers at initialisation, on a batch of real inputs:

- **NTK condition number** ``lambda_max / lambda_min`` of the empirical neural tangent kernel
  ``J J^T`` (``J``: per-sample gradients of the summed logits): lower trains faster.
- **Linear regions**: how many distinct activation patterns (which linear piece every
  unit of every piecewise-linear activation is on) the network produces along segments
  between real inputs: higher is more expressive.
- **Gradient signal-to-noise ratio** (GSNR; Liu et al., "Understanding Why Neural Networks
  Generalize Well Through GSNR of Parameters", ICLR 2020), with labels: per parameter, the
  squared mean of the per-sample loss gradients over their variance, averaged. Liu et al.
  bound the generalization gap of a step by it: higher generalizes better. It completes the
  trainability / expressivity / generalization triple of TEG (issue 10).

TE-NAS ranks candidates by each and sums the ranks; :meth:`ZeroCostScorer.rank_scores`
averages the ranks of every score all candidates have (higher is better).
:meth:`ZeroCostScorer.top` is the same ranking as a filter for strategies. SMBO uses it to pick the first archs to train before the surrogate
has any data, and trials record both numbers beside their trained accuracy.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeauto.errors import ConfigError
from edgeauto.spaces.base import Arch, SearchSpace

# Where each activation's linear pieces change: a unit's pattern is which interval it is in.
_KNOTS: dict[type[nn.Module], tuple[float, ...]] = {
    nn.ReLU: (0.0,), nn.ReLU6: (0.0, 6.0), nn.Hardswish: (-3.0, 3.0),
}  # fmt: skip


@dataclass(frozen=True)
class ZeroCostScore:
    """The TE-NAS numbers of one arch at initialisation, and GSNR when labels were given."""

    ntk_cond: float
    linear_regions: int
    gsnr: float | None = None

    def to_json(self) -> dict[str, float | None]:
        """JSON-safe: a singular kernel's infinite condition number is ``null``."""
        cond = self.ntk_cond if np.isfinite(self.ntk_cond) else None
        return {"ntk_cond": cond, "linear_regions": self.linear_regions, "gsnr": self.gsnr}


def ntk_condition(model: nn.Module, x: torch.Tensor) -> float:
    """Condition number of the empirical NTK on ``x`` (``inf`` when it is singular)."""
    model = copy.deepcopy(model).train(True)  # BN on batch statistics, as TE-NAS
    params = [p for p in model.parameters() if p.requires_grad]
    out = model(x).sum(dim=1)
    rows = []
    for i in range(len(x)):
        grads = torch.autograd.grad(out[i], params, retain_graph=i + 1 < len(x), allow_unused=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads if g is not None]))
    jac = torch.stack(rows).double()
    eig = torch.linalg.eigvalsh(jac @ jac.T)
    lo, hi = float(eig[0]), float(eig[-1])
    return hi / lo if lo > 0 else float("inf")


def gradient_snr(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over parameters of ``mean_i(g_i)^2 / var_i(g_i)``, ``g_i`` the cross-entropy
    gradient of sample ``i`` (parameters with no gradient variance are left out)."""
    model = copy.deepcopy(model).train(True)
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(len(x)):
        loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads if g is not None]))
    g = torch.stack(rows).double()
    var = g.var(dim=0)
    live = var > 1e-30
    return float((g.mean(dim=0)[live] ** 2 / var[live]).mean()) if live.any() else 0.0


def _patterns(model: nn.Module, x: torch.Tensor) -> np.ndarray | None:
    """Per sample, which linear piece every activation unit is on (packed bits)."""
    codes: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        pre = inputs[0].reshape(len(inputs[0]), -1)
        codes.extend((pre > k).to(torch.uint8) for k in _KNOTS[type(module)])

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in _KNOTS]
    try:
        model.train(False)(x)
    finally:
        for h in handles:
            h.remove()
    return np.packbits(torch.cat(codes, dim=1).numpy(), axis=1) if codes else None


@torch.no_grad()
def linear_regions(model: nn.Module, x: torch.Tensor, points: int = 64) -> int:
    """Linear regions crossed along the segments joining pairs of samples of ``x``.

    Counting distinct patterns of whole samples saturates at the batch size; along a line
    (Hanin & Rolnick, 2019) every region boundary crossed is one unit changing piece, so a
    segment crosses ``1 + flips`` regions, with flips summed between ``points`` steps. The
    sum over the ``len(x) // 2`` segments.
    """
    pairs = len(x) // 2
    t = torch.linspace(0, 1, points).view(1, points, *([1] * (x.ndim - 1)))
    a, b = x[0 : 2 * pairs : 2].unsqueeze(1), x[1 : 2 * pairs : 2].unsqueeze(1)
    line = (a * (1 - t) + b * t).reshape(pairs * points, *x.shape[1:])
    patterns = _patterns(model, line)
    if patterns is None:
        return pairs  # no piecewise-linear activation: one region per segment
    rows = patterns.reshape(pairs, points, -1)
    flips = np.unpackbits(rows[:, 1:] ^ rows[:, :-1], axis=-1).sum()
    return int(pairs + flips)


class ZeroCostScorer:
    """Scores archs of ``space`` at a seeded initialisation on fixed real inputs.

    Example:
        >>> scorer = ZeroCostScorer(space, data.x_train[:64], seed=0)
        >>> scorer.score(arch).ntk_cond
    """

    def __init__(
        self,
        space: SearchSpace,
        inputs: torch.Tensor,
        seed: int = 0,
        ntk_batch: int = 16,
        labels: torch.Tensor | None = None,
    ) -> None:
        if len(inputs) < 2 or tuple(inputs.shape[1:]) != tuple(space.input_shape):
            raise ConfigError(
                f"zero-cost inputs must be >= 2 samples of shape {space.input_shape}, got "
                f"{tuple(inputs.shape)}; pass a batch of the training data"
            )
        self.space, self.inputs, self.seed, self.labels = space, inputs, seed, labels
        self.ntk_batch = max(2, min(ntk_batch, len(inputs)))

    def score(self, arch: Arch) -> ZeroCostScore:
        """The numbers for ``arch``, built from ``seed`` (the global RNG is left alone);
        GSNR only with ``labels``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.space.build(arch)
        x = self.inputs[: self.ntk_batch]
        gsnr = None if self.labels is None else gradient_snr(model, x, self.labels[: len(x)])
        return ZeroCostScore(ntk_condition(model, x), linear_regions(model, x), gsnr)

    def top(self, archs: Sequence[Arch], keep: int) -> list[Arch]:
        """The ``keep`` best of ``archs`` by :meth:`rank_scores`: a training-free filter."""
        ranks = self.rank_scores([self.score(a) for a in archs])
        order = sorted(range(len(archs)), key=lambda i: -ranks[i])
        return [archs[i] for i in order[:keep]]

    @staticmethod
    def rank_scores(scores: Sequence[ZeroCostScore]) -> list[float]:
        """Minus the mean rank (low NTK condition, many regions, high GSNR when every score
        has one; TE-NAS sums the first two, which orders the same); higher is better. Only
        meaningful within one list."""
        from scipy.stats import rankdata  # scipy comes with scikit-learn; imported on use

        if not scores:
            return []
        ranks = [rankdata([s.ntk_cond for s in scores])]
        ranks.append(rankdata([-s.linear_regions for s in scores]))
        if all(s.gsnr is not None for s in scores):
            ranks.append(rankdata([-float(s.gsnr or 0.0) for s in scores]))
        return [-float(np.mean(r)) for r in zip(*ranks)]
