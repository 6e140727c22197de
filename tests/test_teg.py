"""TEG indicators: GSNR, the three-way combined rank, the filter and ``analyze zero-cost``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.search.teg import analyze_zero_cost, sample_archs
from edgeauto.search.zero_cost import ZeroCostScore, ZeroCostScorer, gradient_snr
from edgeauto.train import TrainConfig


def test_gsnr_is_high_when_samples_agree(digits: Dataset) -> None:
    """One digit class repeated: every sample pulls the same way, so the ratio is larger
    than on a batch of mixed classes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x, y = digits.x_train, digits.y_train
    same = (y == 3).nonzero().flatten()[:16]
    mixed = torch.arange(16)
    assert gradient_snr(model, x[same], y[same]) > 2 * gradient_snr(model, x[mixed], y[mixed])
    assert model.training  # scored on a copy


def test_combined_rank_uses_gsnr_when_present() -> None:
    base = [ZeroCostScore(2.0, 50), ZeroCostScore(2.0, 50), ZeroCostScore(9.0, 10)]
    assert ZeroCostScorer.rank_scores(base)[0] == ZeroCostScorer.rank_scores(base)[1]
    with_g = [ZeroCostScore(2.0, 50, 0.1), ZeroCostScore(2.0, 50, 0.9), ZeroCostScore(9.0, 10, 0.5)]
    ranks = ZeroCostScorer.rank_scores(with_g)
    assert ranks[1] > ranks[0] > ranks[2]
    assert ZeroCostScore(1.0, 2, 0.5).to_json()["gsnr"] == 0.5


def test_scorer_top_filters_by_rank(micro_space, digits: Dataset) -> None:
    x, y = digits.x_train[:16], digits.y_train[:16]
    scorer = ZeroCostScorer(micro_space, x, seed=0, labels=y)
    archs = sample_archs(micro_space, 4, seed=1)
    scores = [scorer.score(a) for a in archs]
    assert all(s.gsnr is not None and s.gsnr > 0 for s in scores)
    ranks = ZeroCostScorer.rank_scores(scores)
    best = max(range(4), key=lambda i: ranks[i])
    assert scorer.top(archs, 2)[0] == archs[best] and len(scorer.top(archs, 2)) == 2


def test_analyze_zero_cost_on_digits(micro_space, digits: Dataset) -> None:
    result = analyze_zero_cost(micro_space, digits, 3, seed=0, cfg=TrainConfig(epochs=2))
    assert set(result["spearman"]) == {"ntk_cond", "linear_regions", "gsnr", "combined"}
    assert all(-1 <= r <= 1 for r in result["spearman"].values())
    accs = [a["accuracy"] for a in result["archs"]]
    assert len(accs) == 3 and len({json.dumps(a["arch"]) for a in result["archs"]}) == 3
    assert min(accs) > 0.2  # trained above chance: the correlations are about real accuracy


def test_analyze_cli(cli, tmp_path: Path) -> None:
    path = tmp_path / "teg.json"
    args = ["analyze", "zero-cost", "--archs", "4", "--dataset", "digits", "--space"]
    result = cli(*args, "fbnet-micro", "--batches", "4", "--json", str(path))
    assert result.exit_code == 0, result.stderr
    assert "combined" in result.stdout and "gsnr" in json.loads(path.read_text())["archs"][0]
    bad = cli(*args, "fbnet-micro", "--archs", "2")
    assert bad.exit_code == 2 and "--archs" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_sample_archs_rejects_too_few(micro_space) -> None:
    with pytest.raises(ConfigError, match="archs must be >= 3"):
        sample_archs(micro_space, 2, seed=0)
    assert len(set(sample_archs(micro_space, 10, seed=random.Random(0).randrange(9)))) == 10
