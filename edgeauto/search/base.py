"""Search roles: :class:`SearchProblem` in, :class:`SearchResult` out, strategies ask/tell.

A strategy knows nothing of training or latency tables: it sees a space, a latency predictor
(any object with ``block_ms(key)`` and ``predict_keys(keys)``) and an evaluation callback,
as OFA decouples its search from its predictors.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from edgeauto.devices.roofline import check_budget
from edgeauto.errors import BudgetInfeasible, ConfigError
from edgeauto.latency.key import OpKey
from edgeauto.registry import Registry
from edgeauto.spaces.base import Arch, SearchSpace

if TYPE_CHECKING:
    from edgeauto.devices.profile import DeviceProfile


class LatencyPredictor(Protocol):
    """What a strategy needs of a latency model (a :class:`LatencyTable` is one)."""

    def block_ms(self, key: OpKey) -> float: ...

    def predict_keys(self, keys: Iterable[OpKey]) -> float: ...


@dataclass
class SearchProblem:
    """A space, a latency predictor and budget, an evaluator and a trial count.

    With the device's ``profile``, :meth:`check_feasible` also rejects budgets below the
    roofline floor of the space's smallest arch (:mod:`edgeauto.devices.roofline`).
    """

    space: SearchSpace
    latency: LatencyPredictor
    budget_ms: float
    evaluate: Callable[[Arch], float]
    trials: int = 8
    seed: int = 0
    device: str = "device"
    profile: DeviceProfile | None = None

    def predict(self, arch: Arch) -> float:
        return self.latency.predict_keys(self.space.blocks(arch))

    def fits(self, arch: Arch) -> bool:
        return self.predict(arch) <= self.budget_ms

    def check_feasible(self, budget_ms: float | None = None) -> Arch:
        """The cheapest arch; :class:`BudgetInfeasible` when even it exceeds the budget."""
        budget = self.budget_ms if budget_ms is None else budget_ms
        if budget <= 0:
            raise ConfigError(f"latency budget must be > 0 ms, got {budget}")
        if self.profile is not None:  # the physical bound first: it holds for any table
            check_budget(self.space, self.profile, budget)
        cheapest = self.space.cheapest(self.latency.block_ms)
        ms = self.predict(cheapest)
        if ms > budget:
            raise BudgetInfeasible(
                f"latency budget {budget:g} ms is below the smallest architecture's "
                f"predicted {ms:.4f} ms on {self.device} in space {self.space.name}; raise "
                "--latency-ms or pick a smaller space"
            )
        return cheapest


@dataclass
class Trial:
    """One evaluated architecture."""

    number: int
    arch: Arch
    predicted_ms: float
    accuracy: float

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number, "arch": self.arch.to_json(),
            "predicted_ms": self.predicted_ms, "accuracy": self.accuracy,
        }  # fmt: skip


@dataclass
class SearchResult:
    """All trials and the best (highest accuracy, then lowest latency)."""

    trials: list[Trial] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        if not self.trials:
            raise ConfigError("search produced no trials; set trials >= 1")
        return max(self.trials, key=lambda t: (t.accuracy, -t.predicted_ms))


class Strategy(abc.ABC):
    """Sequential ask/tell search. :meth:`search` is the loop; subclasses fill ask/tell."""

    def __init__(self, problem: SearchProblem) -> None:
        self.problem = problem
        self.rng = random.Random(problem.seed)
        self.cheapest = problem.check_feasible()
        self.result = SearchResult()

    @abc.abstractmethod
    def ask(self) -> Arch:
        """The next architecture to evaluate; always within the budget."""

    def tell(self, trial: Trial) -> None:
        """Record an evaluated trial."""
        self.result.trials.append(trial)

    def search(self, on_trial: Callable[[Trial], None] | None = None) -> SearchResult:
        """Run ``problem.trials`` ask/evaluate/tell rounds."""
        if self.problem.trials < 1:
            raise ConfigError(f"trials must be >= 1, got {self.problem.trials}")
        for number in range(self.problem.trials):
            arch = self.ask()
            trial = Trial(number, arch, self.problem.predict(arch), self.problem.evaluate(arch))
            self.tell(trial)
            if on_trial:
                on_trial(trial)
        return self.result

    def sample_feasible(self, tries: int = 2000) -> Arch:
        """Rejection-sample the space; fall back to walks from the cheapest arch."""
        for _ in range(tries):
            arch = self.problem.space.sample(self.rng)
            if self.problem.fits(arch):
                return arch
        return self.mutate_feasible(self.cheapest)

    def mutate_feasible(self, parent: Arch, tries: int = 200) -> Arch:
        """A feasible mutation of ``parent`` (``parent`` itself if none is found)."""
        for _ in range(tries):
            child = self.problem.space.mutate(parent, self.rng)
            if self.problem.fits(child):
                return child
        return parent


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def list_strategies() -> list[str]:
    """Names of the registered search strategies."""
    return STRATEGIES.names()
