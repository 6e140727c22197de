"""The capacity strategy: the archs it trains are the most capacious the budget allows."""

from __future__ import annotations

import random

from edgeauto.latency.macs import MacsLatency
from edgeauto.search import STRATEGIES, SearchProblem
from edgeauto.search.capacity import CapacitySearch
from edgeauto.spaces import get_space


def _problem(budget_share: float) -> SearchProblem:
    space = get_space("fbnet-micro", (1, 8, 8), 3)
    lat = MacsLatency()
    costs = sorted(lat.predict(space.blocks(space.sample(random.Random(i)))) for i in range(200))
    budget = costs[int(budget_share * (len(costs) - 1))]
    return SearchProblem(space, lat, budget, lambda a: 0.5, trials=3, seed=0)


def test_capacity_trains_the_most_parameters_within_the_budget() -> None:
    """Its first arch fits and has at least as many parameters as any of 500 random archs
    that fit; its asks come most parameters first, never repeating an arch."""
    problem = _problem(0.5)
    search = STRATEGIES.get("capacity")(problem)
    assert isinstance(search, CapacitySearch)
    result = search.search()
    archs = [t.arch for t in result.trials]
    counts = [search.params(a) for a in archs]
    assert len(set(archs)) == 3 and counts == sorted(counts, reverse=True)
    assert all(problem.fits(a) for a in archs)
    rng = random.Random(1)
    fitting = [a for a in (problem.space.sample(rng) for _ in range(500)) if problem.fits(a)]
    assert fitting and counts[0] >= max(search.params(a) for a in fitting)


def test_capacity_grows_with_the_budget() -> None:
    """A larger budget buys a more capacious first arch (the search follows the budget)."""
    small = STRATEGIES.get("capacity")(_problem(0.2))
    large = STRATEGIES.get("capacity")(_problem(0.9))
    assert large.params(large.ask()) > small.params(small.ask())
