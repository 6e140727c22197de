"""``noisy``: NOISY's grow-from-small, keep-the-best-fitting rule on a space's architectures.

:mod:`edgeauto.grow.noisy` applies NOISY to the neurons of an MLP. A search space's
architectures have no neurons to add one by one, but they have the same kind of moves: the
space's one-decision mutations turn a ``skip`` into a block or back (a layer added or
removed), widen or narrow a stage, and change a block's kernel or expansion (capacity and
non-linearity up or down). The strategy is NOISY on those moves:

1. the first trial is the space's cheapest architecture, the small seed NOISY grows from;
2. each step proposes ``candidates`` random one-decision morphisms of the incumbent that fit
   the latency budget and the other limits (``problem.fits``) and were not evaluated before;
3. once a step's trials are all told, the incumbent becomes the best-fitting architecture
   seen: highest ``accuracy - penalty * predicted_ms / budget_ms`` (ties keep the older), so
   a larger architecture has to pay for its latency;
4. when every morphism of the incumbent was tried already, the step restarts from a random
   feasible architecture (the noise that gets a hill climb out of a local optimum).

A step's candidates are independent, so :meth:`NoisySearch.ask_batch` hands them out together
to parallel drivers; the next step is planned only after all were told, in trial order, so
what is proposed does not depend on which trial finished first.
"""

from __future__ import annotations

import math

from edgeauto.errors import ConfigError
from edgeauto.search.base import STRATEGIES, SearchProblem, Strategy, Trial
from edgeauto.spaces.base import Arch

_TRIES_PER_CANDIDATE = 40  # mutations drawn per wanted candidate before giving up on the step


@STRATEGIES.register("noisy")
class NoisySearch(Strategy):
    """NOISY morphism search: ``candidates`` budget-respecting morphisms of the incumbent per
    step, keeping the best-fitting (accuracy less ``penalty`` per budget's worth of latency)."""

    def __init__(self, problem: SearchProblem, candidates: int = 3, penalty: float = 0.02) -> None:
        if candidates < 1:
            raise ConfigError(f"noisy candidates must be >= 1, got {candidates}")
        if not 0 <= penalty < math.inf:
            raise ConfigError(f"noisy penalty must be finite and >= 0, got {penalty}")
        super().__init__(problem)
        self.candidates, self.penalty = candidates, penalty
        self.incumbent: Trial | None = None
        self.queue: list[Arch] = [self.cheapest]  # step 0: the seed alone

    def fitness(self, trial: Trial) -> float:
        """What "best fitting" means: accuracy less the latency penalty; failures never win."""
        if not trial.ok:
            return -math.inf
        return trial.accuracy - self.penalty * trial.predicted_ms / self.problem.budget_ms

    def ask(self) -> Arch:
        if not self.queue:
            self._plan()
        return self.queue.pop(0)

    def ask_batch(self, n: int, outstanding: int) -> list[Arch]:
        """The rest of the current step; a new step only once nothing is outstanding."""
        if n < 1 or (not self.queue and outstanding):
            return []
        if not self.queue:
            self._plan()
        picked, self.queue = self.queue[:n], self.queue[n:]
        return picked

    def tell(self, trial: Trial) -> None:
        super().tell(trial)
        if self.incumbent is None or self.fitness(trial) > self.fitness(self.incumbent):
            self.incumbent = trial

    def _plan(self) -> None:
        """Queue the next step's morphisms of the incumbent (or a restart when none is new)."""
        seen = {t.arch for t in self.result.trials}
        parent = self.incumbent.arch if self.incumbent is not None else self.cheapest
        picks: list[Arch] = []
        for _ in range(self.candidates * _TRIES_PER_CANDIDATE):
            child = self.problem.space.mutate(parent, self.rng)
            if child not in seen and child not in picks and self.problem.fits(child):
                picks.append(child)
                if len(picks) == self.candidates:
                    break
        self.queue = picks or [self._restart(seen)]

    def _restart(self, seen: set[Arch]) -> Arch:
        """A random feasible architecture, unseen when one can be found."""
        arch = self.sample_feasible()
        for _ in range(10):  # a small space may have no unseen feasible arch left
            if arch not in seen:
                break
            arch = self.sample_feasible()
        return arch
