"""Training-free scores of an untrained network (TE-NAS, Chen et al., ICLR 2021).

Two numbers at initialisation, on a batch of real inputs:

- **NTK condition number** ``lambda_max / lambda_min`` of the empirical neural tangent kernel
  ``J J^T`` (``J``: per-sample gradients of the summed logits): lower trains faster.
- **Linear regions**: how many distinct activation patterns (which linear piece every
  unit of every piecewise-linear activation is on) the network produces along segments
  between real inputs: higher is more expressive.

TE-NAS ranks candidates by each and sums the ranks; :meth:`ZeroCostScorer.rank_scores` does
the same (higher is better). SMBO uses it to pick the first archs to train before the surrogate
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
    """The two TE-NAS numbers of one arch at initialisation."""

    ntk_cond: float
    linear_regions: int

    def to_json(self) -> dict[str, float | None]:
        """JSON-safe: a singular kernel's infinite condition number is ``null``."""
        cond = self.ntk_cond if np.isfinite(self.ntk_cond) else None
        return {"ntk_cond": cond, "linear_regions": self.linear_regions}


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
        self, space: SearchSpace, inputs: torch.Tensor, seed: int = 0, ntk_batch: int = 16
    ) -> None:
        if len(inputs) < 2 or tuple(inputs.shape[1:]) != tuple(space.input_shape):
            raise ConfigError(
                f"zero-cost inputs must be >= 2 samples of shape {space.input_shape}, got "
                f"{tuple(inputs.shape)}; pass a batch of the training data"
            )
        self.space, self.inputs, self.seed = space, inputs, seed
        self.ntk_batch = max(2, min(ntk_batch, len(inputs)))

    def score(self, arch: Arch) -> ZeroCostScore:
        """Both numbers for ``arch``, built from ``seed`` (the global RNG is left alone)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.space.build(arch)
        x = self.inputs[: self.ntk_batch]
        return ZeroCostScore(ntk_condition(model, x), linear_regions(model, x))

    @staticmethod
    def rank_scores(scores: Sequence[ZeroCostScore]) -> list[float]:
        """TE-NAS's combination: minus the summed ranks (low NTK condition, many regions);
        higher is better. Only meaningful within one list."""
        from scipy.stats import rankdata  # scipy comes with scikit-learn; imported on use

        if not scores:
            return []
        cond = rankdata([s.ntk_cond for s in scores])
        regions = rankdata([-s.linear_regions for s in scores])
        return [-float(a + b) for a, b in zip(cond, regions)]
