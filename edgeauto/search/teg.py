"""TEG analysis: how well each training-free indicator ranks archs by trained accuracy.

Samples distinct archs of a space, scores each at a seeded initialisation (NTK condition
number: trainability; linear regions: expressivity; GSNR: generalization; see
:mod:`edgeauto.search.zero_cost`), trains each briefly (the same proxy training the search
uses) and reports the Spearman correlation of each indicator, and of their combined rank,
with validation accuracy. Signs are such that > 0 means "the indicator agrees".
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.latency.fusion import spearman
from edgeauto.search.objective import ZERO_COST_SAMPLES
from edgeauto.search.zero_cost import ZeroCostScore, ZeroCostScorer
from edgeauto.spaces.base import Arch, SearchSpace
from edgeauto.train import TrainConfig, accuracy, fit


@dataclass(frozen=True)
class ScoredArch:
    """One sampled arch: its indicators at initialisation and its proxy-trained accuracy."""

    arch: Arch
    score: ZeroCostScore
    accuracy: float


def sample_archs(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    """``n`` distinct archs drawn uniformly from ``space``."""
    if n < 3:
        raise ConfigError(f"archs must be >= 3 to rank them, got {n}; raise --archs")
    rng, seen = random.Random(seed), dict[Arch, None]()
    for _ in range(50 * n):
        seen.setdefault(space.sample(rng))
        if len(seen) == n:
            break
    return list(seen)


def score_and_train(
    space: SearchSpace, data: Dataset, arch: Arch, seed: int, cfg: TrainConfig
) -> ScoredArch:
    """Indicators of ``arch`` at the seeded initialisation, then the same init trained."""
    x, y = data.x_train[:ZERO_COST_SAMPLES], data.y_train[:ZERO_COST_SAMPLES]
    score = ZeroCostScorer(space, x, seed, labels=y).score(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = space.build(arch)
    fit(model, data, cfg, seed)
    return ScoredArch(arch, score, accuracy(model, data.x_val, data.y_val))


def correlations(scored: list[ScoredArch]) -> dict[str, float]:
    """Spearman with accuracy of each indicator and of :meth:`ZeroCostScorer.rank_scores`."""
    acc = [s.accuracy for s in scored]
    cond = [s.score.ntk_cond if math.isfinite(s.score.ntk_cond) else math.inf for s in scored]
    return {
        "ntk_cond": -spearman(cond, acc),  # low condition number is the good end
        "linear_regions": spearman([s.score.linear_regions for s in scored], acc),
        "gsnr": spearman([float(s.score.gsnr or 0.0) for s in scored], acc),
        "combined": spearman(ZeroCostScorer.rank_scores([s.score for s in scored]), acc),
    }


def analyze_zero_cost(
    space: SearchSpace,
    data: Dataset,
    archs: int,
    seed: int = 0,
    cfg: TrainConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score and proxy-train ``archs`` sampled archs; their correlations and records."""
    cfg = cfg or TrainConfig(epochs=1, max_batches=60)
    scored = []
    for i, arch in enumerate(sample_archs(space, archs, seed)):
        scored.append(score_and_train(space, data, arch, seed, cfg))
        if progress:
            progress(i + 1, archs)
    records = [
        {"arch": s.arch.to_json(), **s.score.to_json(), "accuracy": s.accuracy} for s in scored
    ]
    return {"spearman": correlations(scored), "archs": records}
