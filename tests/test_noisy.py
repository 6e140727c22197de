"""NOISY: function-preserving morphisms, fitness pruning, depth control, search, strategy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.grow.noisy import (
    Move,
    NoisyConfig,
    NoisyMLP,
    add_neurons,
    apply_move,
    count_params,
    depth_moves,
    eligible_moves,
    insert_layer,
    noisy_search,
    prune_neurons,
    remove_layer,
    width_ratio,
)
from edgeauto.search import STRATEGIES, SearchProblem, Trial
from edgeauto.search.morphism import NoisySearch
from edgeauto.spaces import Arch, get_space
from edgeauto.testing.conformance import MacsLatency


def _model(widths: list[int], seed: int = 0) -> NoisyMLP:
    return NoisyMLP.create(64, widths, 10, torch.Generator().manual_seed(seed))


def _x(n: int = 128) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def _same(model: NoisyMLP, change: Callable[[NoisyMLP], object], x: torch.Tensor) -> None:
    """``change(model)`` leaves the outputs on ``x`` as they were."""
    before = model(x)
    change(model)
    assert torch.allclose(model(x), before, atol=1e-5, rtol=0)


def test_adding_neurons_preserves_outputs() -> None:
    model, x = _model([8, 6]), _x()
    gen = torch.Generator().manual_seed(2)
    _same(model, lambda m: add_neurons(m, 0, 5, gen), x)
    _same(model, lambda m: add_neurons(m, 1, 3, gen), x)
    assert model.widths == [13, 9]
    assert model.linears[0].weight[-5:].abs().sum() > 0  # real incoming weights
    assert model.linears[1].weight[:6, -5:].abs().sum() == 0  # zero outgoing weights
    assert model.linears[2].weight[:, -3:].abs().sum() == 0


@pytest.mark.parametrize("relu", [True, False])
def test_inserting_an_identity_layer_preserves_outputs(relu: bool) -> None:
    model, x = _model([8, 6]), _x()
    model.relu[0] = relu
    _same(model, lambda m: insert_layer(m, 0), x)
    assert model.widths == [8, 8, 6] and model.relu[:2] == [relu, relu]


def test_removing_a_linear_layer_folds_it_exactly() -> None:
    model, x = _model([8, 6]), _x()
    model.relu[1] = False  # no non-linearity: the fold is exact
    _same(model, lambda m: remove_layer(m, 1), x)
    assert model.widths == [8] and model.linears[-1].in_features == 8
    with pytest.raises(ConfigError, match="at least one hidden layer"):
        remove_layer(model, 0)


def test_pruning_removes_the_least_fit_neurons_first() -> None:
    model, x = _model([8]), _x()
    with torch.no_grad():
        model.linears[1].weight[:, 5] = 0  # neuron 5 sends nothing on
        model.linears[1].weight[:, 2] *= 1e-3  # neuron 2 almost nothing
    removed: list[int] = []
    _same(model, lambda m: removed.extend(prune_neurons(m, 0, 1, x)), x)
    assert removed == [5] and model.widths == [7]
    assert prune_neurons(model, 0, 1, x) == [2]  # index 2 is still 2 after dropping 5
    assert prune_neurons(model, 0, 100, x) and model.widths == [1]  # one neuron always stays
    assert prune_neurons(model, 0, 1, x) == []


def test_depth_follows_the_width_ratios() -> None:
    model = _model([32])  # ratio 32 / sqrt(64 * 10) = 1.26
    assert width_ratio(model, 0) == pytest.approx(32 / 640**0.5)
    assert depth_moves(model, NoisyConfig(split_ratio=1.2, merge_ratio=0.1)) == [Move("insert", 0)]
    assert depth_moves(model, NoisyConfig(split_ratio=1.3, merge_ratio=0.1)) == []
    cfg = NoisyConfig(split_ratio=1.2, merge_ratio=0.15)
    apply_move(model, Move("insert", 0), cfg, _x(), torch.Generator())
    assert model.widths == [32, 32]
    prune_neurons(model, 1, 30, _x())  # ratio of layer 1: 2 / sqrt(32 * 10) = 0.11
    # layer 0 now feeds 2 units (ratio 32 / sqrt(64 * 2) = 2.8): it may split again
    assert depth_moves(model, cfg) == [Move("insert", 0), Move("remove", 1)]
    assert depth_moves(model, NoisyConfig(split_ratio=3.0, merge_ratio=0.1)) == []
    apply_move(model, Move("remove", 1), cfg, _x(), torch.Generator())
    assert model.widths == [32]
    assert "remove" not in eligible_moves(_model([2]), cfg)  # the last hidden layer stays


def test_noisy_search_improves_and_is_reproducible(digits: Dataset) -> None:
    cfg = NoisyConfig(steps=6, candidates=2, train_batches=10, lr=1e-2, max_params=3000)
    first = noisy_search(digits, cfg)
    assert first.accuracy > first.start_accuracy + 0.3, (first.start_accuracy, first.accuracy)
    assert len(first.history) == 6 and all(r.params <= 3000 for r in first.history)
    assert first.history[-1].params == count_params(first.model) == first.params
    assert first.history[-1].widths == tuple(first.model.widths)
    again = noisy_search(digits, cfg)
    assert again.history == first.history and again.accuracy == first.accuracy
    for a, b in zip(again.model.state_dict().values(), first.model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("field", "value"),
    [("steps", 0), ("candidates", 0), ("neurons", 0), ("start_width", 0), ("train_batches", 0),
     ("merge_ratio", 0.0), ("split_ratio", 0.05), ("lr", 0.0), ("param_penalty", -1.0),
     ("max_params", 0), ("holdout", 1.0)],
)  # fmt: skip
def test_bad_config_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"NoisyConfig.*{field}"):
        NoisyConfig(**{field: value})


def _problem(trials: int) -> tuple[SearchProblem, float]:
    """fbnet-micro with a budget between its cheapest and its largest architecture; accuracy
    grows with latency, so the search wants to grow up to the budget."""
    space, lat = get_space("fbnet-micro", (1, 8, 8), 3), MacsLatency()
    low = lat.predict(space.blocks(space.cheapest(lat.block_ms)))
    budget = 1.4 * low

    def evaluate(arch: Arch) -> float:
        return 1.0 - 1.0 / (1.0 + 100 * lat.predict(space.blocks(arch)))

    return SearchProblem(space, lat, budget, evaluate, trials, seed=3), budget


def test_noisy_strategy_respects_the_budget_and_grows() -> None:
    problem, budget = _problem(12)
    assert STRATEGIES.get("noisy") is NoisySearch
    result = NoisySearch(problem).search()
    assert len(result.trials) == 12
    assert all(t.predicted_ms <= budget and problem.fits(t.arch) for t in result.trials)
    assert result.trials[0].arch == problem.space.cheapest(problem.latency.block_ms)
    assert result.best.accuracy > result.trials[0].accuracy  # it grew from the seed
    with pytest.raises(ConfigError, match="candidates"):
        NoisySearch(problem, candidates=0)


def test_noisy_batches_propose_what_a_sequential_search_does() -> None:
    problem, _ = _problem(10)
    sequential = [t.arch for t in NoisySearch(problem).search().trials]
    batched = NoisySearch(problem)
    archs: list[Arch] = []
    while len(archs) < 10:
        for arch in batched.ask_batch(10 - len(archs), 0):
            batched.tell(Trial(len(archs), arch, problem.predict(arch), problem.evaluate(arch)))
            archs.append(arch)
    assert archs == sequential
    assert batched.ask_batch(4, outstanding=1) == []  # no new step while one is running
