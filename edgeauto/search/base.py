"""Search roles: :class:`SearchProblem` in, :class:`SearchResult` out, strategies ask/tell.

A strategy knows nothing of training or latency tables: it sees a space, a latency model
(:class:`~edgeauto.latency.model.LatencyModel`: ``block_ms(key)`` and ``predict(keys)``)
and an evaluation callback, as OFA decouples its search from its predictors.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgeauto.errors import BudgetInfeasible, ConfigError
from edgeauto.latency.model import LatencyModel
from edgeauto.latency.roofline import check_budget
from edgeauto.limits import Limits, estimate
from edgeauto.registry import Registry
from edgeauto.spaces.base import Arch, SearchSpace

if TYPE_CHECKING:
    from edgeauto.data import Dataset
    from edgeauto.devices.profile import DeviceProfile


@dataclass
class SearchProblem:
    """A space, a latency model and budget (in the model's unit), an evaluator and a trial count.

    With the device's ``profile``, :meth:`check_feasible` also rejects budgets below the
    roofline floor of the space's smallest arch (:mod:`edgeauto.latency.roofline`).
    ``data`` is for strategies that train on their own (``dnas`` trains a supernet); the
    others only call ``evaluate``. ``limits`` bounds parameters, model size and peak
    activations besides latency (:mod:`edgeauto.limits`); :meth:`fits` checks both.
    """

    space: SearchSpace
    latency: LatencyModel
    budget_ms: float
    evaluate: Callable[[Arch], float]
    trials: int = 8
    seed: int = 0
    device: str = "device"
    profile: DeviceProfile | None = None
    data: Dataset | None = None
    limits: Limits | None = None
    # search-then-compress aims above the budget it prunes to: archs predicted below
    # ``floor_ms`` fit, but sampling and mutation prefer the band [floor_ms, budget_ms]
    floor_ms: float = 0.0

    def predict(self, arch: Arch) -> float:
        return self.latency.predict(self.space.blocks(arch))

    def fits(self, arch: Arch) -> bool:
        """Within the latency budget and, when given, the other ``limits``."""
        if self.predict(arch) > self.budget_ms:
            return False
        return self.limits is None or not self.limits.violations(estimate(self.space.blocks(arch)))

    def aims(self, arch: Arch) -> bool:
        """:meth:`fits`, and predicted at or above ``floor_ms``."""
        return self.fits(arch) and self.predict(arch) >= self.floor_ms

    def check_feasible(self, budget_ms: float | None = None) -> Arch:
        """The cheapest arch; :class:`BudgetInfeasible` when even it exceeds the budget."""
        budget = self.budget_ms if budget_ms is None else budget_ms
        if budget <= 0:
            raise ConfigError(f"latency budget must be > 0 ms, got {budget}")
        if self.profile is not None:  # the physical bound first: it holds for any table
            check_budget(self.space, self.profile, budget)
        cheapest = self.space.cheapest(self.latency.block_ms)
        self._check_limits(cheapest)
        ms = self.predict(cheapest)
        if ms > budget:
            raise BudgetInfeasible(
                f"latency budget {budget:g} ms is below the smallest architecture's "
                f"predicted {ms:.4f} ms on {self.device} in space {self.space.name}; raise "
                "--latency-ms or pick a smaller space"
            )
        return cheapest

    def _check_limits(self, cheapest: Arch) -> None:
        """:class:`BudgetInfeasible` when the smallest arch already breaks a limit.

        The fastest arch is the smallest in these spaces; a limit it breaks is one no arch of
        the space meets, so the search would have nothing to train."""
        if self.limits is None:
            return
        if broken := self.limits.violations(estimate(self.space.blocks(cheapest))):
            raise BudgetInfeasible(
                f"the smallest architecture of space {self.space.name} already has "
                f"{'; '.join(broken)}; raise that limit or pick a smaller space"
            )


@dataclass
class Trial:
    """One evaluated architecture, as the run directory's ``trials.jsonl`` records it.

    ``status`` is ``ok`` or ``failed`` (the evaluation raised, crashed or timed out; ``error``
    says how, ``accuracy`` is 0). ``metrics`` holds what the evaluation measured beyond
    accuracy (e.g. the zero-cost scores at initialisation); ``seed`` is the training seed,
    ``wall_s`` and ``worker`` (``host:pid``) where and how long it ran.
    """

    number: int
    arch: Arch
    predicted_ms: float
    accuracy: float
    status: str = "ok"
    seed: int | None = None
    wall_s: float | None = None
    worker: str | None = None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number, "arch": self.arch.to_json(),
            "predicted_ms": self.predicted_ms, "accuracy": self.accuracy, "status": self.status,
            "seed": self.seed, "wall_s": self.wall_s, "worker": self.worker, "error": self.error,
            "metrics": self.metrics,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        """Inverse of :meth:`to_json`; malformed input raises :class:`ConfigError`."""
        try:
            return cls(
                int(data["number"]), Arch.from_json(data["arch"]), float(data["predicted_ms"]),
                float(data["accuracy"]), str(data.get("status", "ok")), data.get("seed"),
                data.get("wall_s"), data.get("worker"), data.get("error"),
                dict(data.get("metrics") or {}),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"trial record needs number, arch, predicted_ms and accuracy: {exc!r}"
            ) from None


@dataclass
class SearchResult:
    """All trials and the best (highest accuracy, then lowest latency)."""

    trials: list[Trial] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        """The best successful trial; failed trials never win."""
        ok = [t for t in self.trials if t.ok]
        if not ok:
            failed = len(self.trials)
            raise ConfigError(
                f"search produced no successful trial ({failed} failed); set trials >= 1 and "
                "see the errors in trials.jsonl"
            )
        return max(ok, key=lambda t: (t.accuracy, -t.predicted_ms))


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

    def ask_batch(self, n: int, outstanding: int) -> list[Arch]:
        """Up to ``n`` architectures that can be evaluated now, with ``outstanding`` asked but
        not yet told; parallel drivers (:func:`edgeauto.search.study.run_study`) call this.

        The default is sequential: one arch, and only when nothing is outstanding, so that
        what a strategy proposes never depends on which of several trials finished first.
        Strategies whose proposals come in independent batches (``smbo``) override it.
        """
        return [self.ask()] if n > 0 and outstanding == 0 else []

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
        """Rejection-sample the space, in the problem's band for the first half of the tries
        (:meth:`SearchProblem.aims`); fall back to walks from the cheapest arch."""
        for i in range(tries):
            arch = self.problem.space.sample(self.rng)
            if self._accept(arch, i, tries):
                return arch
        return self.mutate_feasible(self.cheapest)

    def mutate_feasible(self, parent: Arch, tries: int = 200) -> Arch:
        """A feasible mutation of ``parent``, in the band if one is found in the first half of
        the tries (``parent`` itself if none fits)."""
        for i in range(tries):
            child = self.problem.space.mutate(parent, self.rng)
            if self._accept(child, i, tries):
                return child
        return parent

    def _accept(self, arch: Arch, attempt: int, tries: int) -> bool:
        if self.problem.floor_ms > 0 and attempt < tries // 2:
            return self.problem.aims(arch)
        return self.problem.fits(arch)


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def list_strategies() -> list[str]:
    """Names of the registered search strategies."""
    return STRATEGIES.names()
