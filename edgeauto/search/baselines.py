"""Baseline strategies: random search and regularized evolution (Real et al., 2019)."""

from __future__ import annotations

import collections

from edgeauto.search.base import STRATEGIES, SearchProblem, Strategy, Trial
from edgeauto.spaces.base import Arch


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Uniform samples of the space that fit the budget, never repeating an arch."""

    def ask(self) -> Arch:
        seen = {t.arch for t in self.result.trials}
        for _ in range(50):
            arch = self.sample_feasible()
            if arch not in seen:
                return arch
        return arch


@STRATEGIES.register("evolution")
class RegularizedEvolution(Strategy):
    """Aging evolution: tournament-select a parent, mutate it, drop the oldest member."""

    population_size = 4
    tournament = 2

    def __init__(self, problem: SearchProblem) -> None:
        super().__init__(problem)
        self.population: collections.deque[Trial] = collections.deque(maxlen=self.population_size)

    def ask(self) -> Arch:
        if len(self.population) < self.population_size:
            return self.sample_feasible()
        contenders = self.rng.sample(list(self.population), self.tournament)
        parent = max(contenders, key=lambda t: t.accuracy)
        return self.mutate_feasible(parent.arch)

    def tell(self, trial: Trial) -> None:
        super().tell(trial)
        self.population.append(trial)
