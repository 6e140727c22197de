"""The pieces of progressive SMBO: arch codecs, the MLP-ensemble surrogate, zero-cost scores,
and the strategy's steps (PNAS order, budget, ask/tell, batches independent of tell order)."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch
from helpers import DIGITS_CLASSES, DIGITS_SHAPE
from torch import nn

from edgeauto.errors import BudgetInfeasible, ConfigError
from edgeauto.latency.fusion import spearman
from edgeauto.search import STRATEGIES, SearchProblem, Trial
from edgeauto.search.codec import LayerwiseCodec, codec_for
from edgeauto.search.smbo import ProgressiveSMBO, SMBOConfig
from edgeauto.search.surrogate import MLPEnsemble, SurrogateConfig
from edgeauto.search.zero_cost import (
    ZeroCostScore,
    ZeroCostScorer,
    linear_regions,
    ntk_condition,
)
from edgeauto.spaces import get_space
from edgeauto.testing.conformance import MacsLatency

SPACES = ["fbnet-lite", "fbnet-micro", "ofa-mbv3", "fbnet-cifar"]


# -- codec ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPACES)
def test_codec_moves_stay_in_the_space(name: str) -> None:
    space = get_space(name, (1, 28, 28), 10)
    codec = codec_for(space)
    rng = random.Random(0)
    for _ in range(5):
        arch = space.sample(rng)
        simple = codec.simplify(arch)
        space.validate(simple)
        assert codec.complexity(simple) <= codec.complexity(arch)
        assert codec.simplify(simple) == simple, "simplify must be idempotent"
        for child in codec.grow(simple)[:40]:
            space.validate(child)
            assert codec.complexity(child) == codec.complexity(simple) + 1, child.describe()
        neighbours = codec.neighbours(arch)
        assert neighbours and arch not in neighbours
        for n in neighbours[:60]:
            space.validate(n)
        vec = codec.encode(arch)
        assert len(vec) == codec.width and set(vec) <= {0.0, 1.0}
        assert sum(vec) == sum(v is not None for v in codec.values(arch))


def test_layerwise_neighbours_differ_in_one_decision() -> None:
    space = get_space("fbnet-lite", (1, 28, 28), 10)
    codec = codec_for(space)
    assert isinstance(codec, LayerwiseCodec)
    arch = space.sample(random.Random(3))
    base = codec.values(arch)
    for n in codec.neighbours(arch):
        assert sum(a != b for a, b in zip(base, codec.values(n))) == 1
    # every neighbour is listed once: widths (1+2+2 others) + layers (5+6 others x 2 ...)
    assert len(set(codec.neighbours(arch))) == len(codec.neighbours(arch))


# -- surrogate ------------------------------------------------------------------------------
def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, 12)).astype(float)
    y = x @ np.linspace(-1, 2, 12) + 0.05 * rng.standard_normal(n)
    return x, y


def test_surrogate_ranks_held_out_points_and_is_seeded() -> None:
    x, y = _toy(60, 0)
    xt, yt = _toy(40, 1)
    s = MLPEnsemble(SurrogateConfig(members=4, steps=200), seed=0)
    s.fit(x, y)
    mean, std = s.predict(xt)
    assert spearman(mean.tolist(), yt.tolist()) > 0.8
    assert (std > 0).all(), "members trained on different resamples must disagree somewhere"
    again = MLPEnsemble(SurrogateConfig(members=4, steps=200), seed=0)
    again.fit(x, y)
    np.testing.assert_array_equal(again.predict(xt)[0], mean)
    other = MLPEnsemble(SurrogateConfig(members=4, steps=200), seed=1)
    other.fit(x, y)
    assert not np.array_equal(other.predict(xt)[0], mean)


def test_surrogate_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MLPEnsemble(SurrogateConfig(members=2, steps=5), seed=7).fit(*_toy(5, 0))
    assert torch.equal(torch.rand(3), expected)


def test_surrogate_bad_input() -> None:
    s = MLPEnsemble()
    with pytest.raises(ConfigError, match="not fitted"):
        s.predict([[0.0]])
    with pytest.raises(ConfigError, match=">= 2 rows"):
        s.fit([[0.0]], [1.0])
    with pytest.raises(ConfigError, match="members must be >= 1"):
        SurrogateConfig(members=0)


# -- zero-cost ------------------------------------------------------------------------------
def test_linear_regions_count_crossings() -> None:
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert linear_regions(linear, x) == 4, "no activation: one region per segment"
    torch.manual_seed(0)
    narrow = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 10))
    wide = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    assert 4 < linear_regions(narrow, x) < linear_regions(wide, x)


def test_ntk_condition_of_a_real_model(micro_space, digits) -> None:
    model = micro_space.build(micro_space.sample(random.Random(0)))
    cond = ntk_condition(model, digits.x_train[:8])
    assert math.isfinite(cond) and cond >= 1.0
    assert model.training, "scoring works on a copy; the caller's model keeps its mode"


def test_zero_cost_scorer_is_seeded_and_ranks(micro_space, digits) -> None:
    scorer = ZeroCostScorer(micro_space, digits.x_train[:16], seed=0)
    archs = [micro_space.sample(random.Random(i)) for i in range(3)]
    scores = [scorer.score(a) for a in archs]
    assert scores == [scorer.score(a) for a in archs]
    assert all(s.linear_regions > 8 for s in scores)
    ranked = ZeroCostScorer.rank_scores(
        [ZeroCostScore(2.0, 100), ZeroCostScore(50.0, 10), ZeroCostScore(5.0, 50)]
    )
    assert ranked.index(max(ranked)) == 0 and ranked.index(min(ranked)) == 1
    assert ZeroCostScore(math.inf, 3).to_json()["ntk_cond"] is None
    with pytest.raises(ConfigError, match="zero-cost inputs"):
        ZeroCostScorer(micro_space, digits.x_train[:1])


# -- strategy -------------------------------------------------------------------------------
def _target_landscape(space, target):
    """Accuracy falls with the number of decisions that differ from ``target``."""
    codec = codec_for(space)
    goal = codec.values(target)

    def evaluate(arch) -> float:
        return 1.0 - sum(a != b for a, b in zip(codec.values(arch), goal)) / len(goal)

    return evaluate


def _problem(space_name: str, trials: int, seed: int, budget_x: float = 50.0, evaluate=None):
    space = get_space(space_name, (1, 28, 28), 10)
    lat = MacsLatency()
    low = lat.predict(space.blocks(space.cheapest(lat.block_ms)))
    target = space.sample(random.Random(99))
    evaluate = evaluate or _target_landscape(space, target)
    return SearchProblem(space, lat, low * budget_x, evaluate, trials=trials, seed=seed)


def _drive(strategy: ProgressiveSMBO, n: int) -> list[Trial]:
    out = []
    for number in range(n):
        arch = strategy.ask()
        trial = Trial(number, arch, strategy.problem.predict(arch), strategy.problem.evaluate(arch))
        strategy.tell(trial)
        out.append(trial)
    return out


def test_smbo_is_registered_and_validates_config() -> None:
    assert STRATEGIES.get("smbo") is ProgressiveSMBO
    with pytest.raises(ConfigError, match="beam >= 0"):
        SMBOConfig(beam=-1)
    with pytest.raises(ConfigError, match="prior must be one of"):
        SMBOConfig(prior="flops")
    shuffled = ProgressiveSMBO(_problem("fbnet-lite", 4, 0), SMBOConfig(prior="random"))
    shuffled.ask()
    assert shuffled.steps[0].ranked_by == "random"
    with pytest.raises(BudgetInfeasible):
        _ = ProgressiveSMBO(_problem("fbnet-lite", 4, 0, budget_x=0.5))


def test_smbo_steps_follow_pnas_order() -> None:
    """Step 0: the simplest archs; then each step adds one block to a top-K arch of the step
    before; every arch fits the budget and none repeats."""
    problem = _problem("fbnet-lite", 24, 0, budget_x=8.0)
    smbo = ProgressiveSMBO(problem, SMBOConfig(beam=3, prior="random"))
    trials = _drive(smbo, 24)
    codec = smbo.codec
    low = codec.complexity(codec.simplify(smbo.cheapest))
    assert all(codec.complexity(a) == low for a in smbo.steps[0].picked)
    assert smbo.steps[0].ranked_by == "random" and smbo.steps[1].ranked_by == "surrogate"
    progressive = [s for s in smbo.steps if s.phase == "progressive"]
    assert len(progressive) >= 3
    by_arch = {t.arch: t for t in trials}
    for prev, step in itertools.pairwise(progressive):
        parents = sorted((by_arch[a] for a in prev.picked), key=lambda t: -t.accuracy)[:3]
        children = {c for p in parents for c in codec.grow(p.arch)}
        for arch in step.picked:
            assert arch in children, f"{arch.describe()} is not a one-block expansion of a top arch"
    assert all(t.predicted_ms <= problem.budget_ms for t in trials)
    assert len({t.arch for t in trials}) == len(trials)
    assert all(a in smbo.predictions for s in smbo.steps[1:] for a in s.picked)


def test_latency_prior_starts_from_the_heaviest_simplest_archs() -> None:
    problem = _problem("fbnet-lite", 6, 0, budget_x=8.0)
    smbo = ProgressiveSMBO(problem, SMBOConfig(beam=3))
    first = [problem.predict(a) for a in smbo.ask_batch(3, 0)]
    assert smbo.steps[0].ranked_by == "latency" and first == sorted(first, reverse=True)
    codec = smbo.codec
    simplest = {codec.simplify(problem.space.sample(random.Random(i))) for i in range(300)}
    feasible = [a for a in simplest if problem.fits(a)]
    heavier = [a for a in feasible if problem.predict(a) > min(first)]
    assert len(heavier) < len(feasible) / 10, "the prior must pick from the top of the pool"


def test_smbo_beats_random_on_a_known_landscape() -> None:
    """Same budget of evaluations, same seeds: the surrogate must find archs nearer the
    target than uniform sampling does."""
    smbo_best, random_best = [], []
    for seed in range(3):
        smbo_best.append(
            max(t.accuracy for t in _drive(ProgressiveSMBO(_problem("fbnet-lite", 30, seed)), 30))
        )
        rnd = STRATEGIES.get("random")(_problem("fbnet-lite", 30, seed)).search()
        random_best.append(max(t.accuracy for t in rnd.trials))
    assert sum(smbo_best) > sum(random_best), (smbo_best, random_best)


def test_ask_batch_waits_for_the_step_and_ignores_tell_order() -> None:
    def run(reverse: bool) -> list:
        smbo = ProgressiveSMBO(_problem("fbnet-lite", 12, 1), SMBOConfig(beam=3))
        first = smbo.ask_batch(5, outstanding=0)
        assert len(first) == 3, "one step is at most beam archs"
        assert smbo.ask_batch(5, outstanding=3) == [], "next step needs the results first"
        trials = [
            Trial(i, a, smbo.problem.predict(a), smbo.problem.evaluate(a))
            for i, a in enumerate(first)
        ]
        for t in reversed(trials) if reverse else trials:
            smbo.tell(t)
        return first + smbo.ask_batch(5, outstanding=0)

    assert run(False) == run(True)


def test_warm_start_picks_the_zero_cost_best(micro_table, digits) -> None:
    space = get_space("fbnet-micro", DIGITS_SHAPE, DIGITS_CLASSES)
    budget = 10 * micro_table.predict(space.blocks(space.cheapest(micro_table.block_ms)))
    problem = SearchProblem(space, micro_table, budget, lambda a: 0.5, trials=6, seed=0)
    scorer = ZeroCostScorer(space, digits.x_train[:16], seed=0)
    smbo = ProgressiveSMBO(problem, SMBOConfig(beam=2), scorer)
    picked = smbo.ask_batch(2, 0)
    assert smbo.steps[0].ranked_by == "zero-cost"
    pool = list(smbo.zero_cost)
    ranks = ZeroCostScorer.rank_scores([scorer.score(a) for a in pool])
    best_two = {pool[i] for i in np.argsort(ranks)[-2:]}
    assert set(picked) == best_two
