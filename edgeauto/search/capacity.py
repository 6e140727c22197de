"""Capacity-first search: train the archs with the most parameters the budget allows.

Why (``benchmarks/results/proxy_fidelity.json``, CIFAR-10, ``cifar-mbv2``): of 12 archs
predicted at 0.7-1.0x a 0.404 ms host budget, the parameter count ranked their validation
accuracy after the final recipe with Spearman 0.85, where the proxies a search trains
ranked it at 0.56 (2 epochs), 0.06 (1 epoch) and 0.56 (30 batches, every arch at chance),
and the zero-cost score (TE-NAS ranks) at -0.14. At a fixed latency the count is a free
predictor, better than any proxy these machines can afford: the arch found by maximising
it (754k parameters) reached 0.480 against 0.468 for the best of the 12 random ones.

So the search here sees only two predictors and a constraint, as OFA's evolution does: an
evolution on the parameter count (from the block keys, no model built) within the latency
budget ranks the candidates, and the trials train the top ones with the proxy, which only
vetoes an arch that fails to learn (the best trial still wins by proxy accuracy).
"""

from __future__ import annotations

from edgeauto.limits import estimate
from edgeauto.search.base import STRATEGIES, SearchProblem, Strategy
from edgeauto.spaces.base import Arch

POPULATION = 32  # feasible archs the evolution starts from
CYCLES = 600  # mutations tried (about 2 s for cifar-mbv2: each costs a table look-up)
TOURNAMENT = 8


@STRATEGIES.register("capacity")
class CapacitySearch(Strategy):
    """Regularised evolution on the parameter count within the budget; the trials are its
    most capacious distinct archs, best first."""

    def __init__(self, problem: SearchProblem) -> None:
        super().__init__(problem)
        self._ranked: list[Arch] | None = None

    def params(self, arch: Arch) -> int:
        """The arch's parameter count, from its block keys."""
        return estimate(self.problem.space.blocks(arch)).params

    def ask(self) -> Arch:
        if self._ranked is None:
            self._ranked = self.rank()
        seen = {t.arch for t in self.result.trials}
        for arch in self._ranked:
            if arch not in seen:
                return arch
        return self.sample_feasible()  # more trials than distinct archs found

    def rank(self) -> list[Arch]:
        """Every distinct feasible arch the evolution met, most parameters first."""
        population = [self.sample_feasible() for _ in range(POPULATION)]
        met = {a: self.params(a) for a in population}
        for _ in range(CYCLES):
            parent = max(self.rng.sample(population, TOURNAMENT), key=met.__getitem__)
            child = self.mutate_feasible(parent, tries=20)
            if child is parent:
                continue
            met.setdefault(child, self.params(child))
            population = [*population[1:], child]  # aging: the oldest leaves
        return sorted(met, key=lambda a: (-met[a], self.problem.predict(a)))
