"""Progressive SMBO (PNAS, Liu et al., ECCV 2018) under a device latency budget.

PNAS searches in order of complexity: it trains the simplest cells, then repeatedly expands
the best ones by one block, ranks the expansions with a surrogate fitted on everything trained
so far, and trains only the top K. Here "one block" is one more searchable layer (a ``skip``
becomes a block, or a stage one layer deeper; :mod:`edgeauto.search.codec`), expansions whose
predicted latency exceeds the budget are dropped before ranking, and the surrogate is an
ensemble of small MLPs (:mod:`edgeauto.search.surrogate`) ranked optimistically,
``mean + kappa * spread``.

Steps:

1. the simplest archs (every optional block removed) form the first pool; without data the
   pick is the zero-cost rank (TE-NAS, :mod:`edgeauto.search.zero_cost`) when a scorer is
   given, else the prior (``latency``: the heaviest within the budget, since accuracy grows
   with capacity in NAS spaces; or ``random``);
2. each step expands the top-K archs of the previous step by one block, ranks, evaluates K;
3. at the complexity limit (or when no expansion fits the budget) the search refines: the
   one-decision neighbours of the K best archs so far plus fresh samples, ranked the same way.

A step is planned only when every trial of the previous one has been told, so the proposals
do not depend on the order in which parallel trials finish: a study on Ray, resumed or not,
proposes what a sequential one does.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeauto.errors import ConfigError
from edgeauto.latency.roofline import work
from edgeauto.search.base import STRATEGIES, SearchProblem, Strategy, Trial
from edgeauto.search.codec import ArchCodec, codec_for
from edgeauto.search.surrogate import MLPEnsemble, SurrogateConfig
from edgeauto.search.zero_cost import ZeroCostScorer
from edgeauto.spaces.base import Arch

MIN_FIT = 3  # evaluated archs before the surrogate ranks anything
PRIORS = ("latency", "random")  # how candidates are ranked before any data or zero-cost score


@dataclass(frozen=True)
class SMBOConfig:
    """``beam`` (K, archs trained per step; 0: ``ceil(trials / levels)`` capped so there are
    at least four steps), ``pool`` (most candidates ranked per step), ``kappa`` (optimism),
    ``zero_cost_pool`` (most candidates scored training-free before the surrogate has data),
    ``prior`` (the ranking before any data: ``latency``, heaviest within the budget first, or
    ``random``; a zero-cost scorer, when given, replaces it)."""

    beam: int = 0
    pool: int = 256
    kappa: float = 0.5
    zero_cost_pool: int = 32
    prior: str = "latency"
    surrogate: SurrogateConfig = field(default_factory=SurrogateConfig)

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ConfigError(f"smbo prior must be one of {PRIORS}, got {self.prior!r}")
        pools = min(self.pool, self.zero_cost_pool)
        if self.beam < 0 or pools < 1 or not math.isfinite(self.kappa):
            raise ConfigError(
                f"smbo needs beam >= 0, pool and zero_cost_pool >= 1 and a finite kappa, got "
                f"beam={self.beam}, pool={self.pool}, zero_cost_pool={self.zero_cost_pool}, "
                f"kappa={self.kappa}"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Step:
    """One planned step: its phase, how many candidates were ranked, what was picked."""

    number: int
    phase: str
    candidates: int
    picked: list[Arch]
    ranked_by: str


@STRATEGIES.register("smbo")
class ProgressiveSMBO(Strategy):
    """PNAS-style progressive search with an MLP-ensemble surrogate (see the module doc).

    Example:
        >>> smbo = ProgressiveSMBO(problem, SMBOConfig(beam=4))
        >>> arch = smbo.ask()  # ... evaluate ...
        >>> smbo.tell(Trial(0, arch, problem.predict(arch), accuracy))
    """

    def __init__(
        self,
        problem: SearchProblem,
        config: SMBOConfig | None = None,
        scorer: ZeroCostScorer | None = None,
    ) -> None:
        super().__init__(problem)
        self.config = config or SMBOConfig()
        self.scorer = scorer
        self.codec: ArchCodec = codec_for(problem.space)
        self.queue: collections.deque[Arch] = collections.deque()
        self.asked: set[Arch] = set()
        self.steps: list[Step] = []
        self.phase = "progressive"
        self.predictions: dict[Arch, tuple[float, float]] = {}
        self.zero_cost: dict[Arch, dict[str, float | None]] = {}
        self._features: dict[Arch, list[float]] = {}
        self._max_blocks = max(1, self.codec.complexity(self._largest_shape()))
        self.beam = self.config.beam or self._auto_beam()

    # -- ask / tell -------------------------------------------------------------------------
    def ask(self) -> Arch:
        if not self.queue:
            self._plan_step()
        arch = self.queue.popleft()
        self.asked.add(arch)
        return arch

    def ask_batch(self, n: int, outstanding: int) -> list[Arch]:
        """The rest of the current step; the next step only once everything is told."""
        out: list[Arch] = []
        while len(out) < n:
            if not self.queue and (outstanding or out):
                break  # planning needs the results of every arch already handed out
            out.append(self.ask())
        return out

    # -- planning ---------------------------------------------------------------------------
    def _plan_step(self) -> None:
        candidates = self._candidates()
        ranked_by, scores = self._rank(candidates)
        order = sorted(range(len(candidates)), key=lambda i: -scores[i])
        picked = [candidates[i] for i in order[: self.beam]]
        if not picked:  # every arch within the budget was trained: one is trained again
            picked = [self.sample_feasible()]
        self.steps.append(Step(len(self.steps), self.phase, len(candidates), picked, ranked_by))
        self.queue.extend(picked)

    def _candidates(self) -> list[Arch]:
        if self.phase == "progressive":
            if not self.steps:
                pool = self._simplest_pool()
            else:
                parents = self._top(self._trials_of(self.steps[-1].picked))
                pool = [child for p in parents for child in self.codec.grow(p.arch)]
            fresh = self._fresh(pool)
            if fresh:
                return fresh
            self.phase = "refine"  # complexity limit, or no expansion fits the budget
        parents = self._top([t for t in self.result.trials if t.ok])
        pool = [n for p in parents for n in self.codec.neighbours(p.arch)]
        pool += [self.problem.space.sample(self.rng) for _ in range(self.config.pool // 4)]
        return self._fresh(pool)

    def _simplest_pool(self) -> list[Arch]:
        """The simplest archs: random samples stripped of every optional block."""
        pool = [self.codec.simplify(self.cheapest)]
        for _ in range(4 * self.config.pool):
            pool.append(self.codec.simplify(self.problem.space.sample(self.rng)))
        return pool

    def _fresh(self, pool: Sequence[Arch]) -> list[Arch]:
        """Distinct, never-asked, within-budget archs of ``pool``; at most ``config.pool``
        of them (a seeded sample), in a deterministic order."""
        seen: set[Arch] = set()
        out = []
        for arch in pool:
            if arch not in seen and arch not in self.asked and self.problem.fits(arch):
                out.append(arch)
            seen.add(arch)
        if len(out) > self.config.pool:
            out = self.rng.sample(out, self.config.pool)
        return out

    def _trials_of(self, archs: Sequence[Arch]) -> list[Trial]:
        wanted = set(archs)
        return [t for t in self.result.trials if t.arch in wanted and t.ok]

    def _top(self, trials: Sequence[Trial]) -> list[Trial]:
        return sorted(trials, key=lambda t: (-t.accuracy, t.number))[: self.beam]

    # -- ranking ----------------------------------------------------------------------------
    def _rank(self, candidates: list[Arch]) -> tuple[str, list[float]]:
        """Optimistic surrogate scores once it has data; before, zero-cost ranks (with a
        scorer) or the configured prior."""
        if not candidates:
            return "none", []
        surrogate = self.fit_surrogate()
        if surrogate is not None:
            mean, std = surrogate.predict([self.features(a) for a in candidates])
            for a, m, s in zip(candidates, mean, std):
                self.predictions[a] = (float(m), float(s))
            return "surrogate", [float(m + self.config.kappa * s) for m, s in zip(mean, std)]
        if self.scorer is not None:
            if len(candidates) > self.config.zero_cost_pool:  # scoring costs a backward each
                candidates[:] = self.rng.sample(candidates, self.config.zero_cost_pool)
            scores = [self.scorer.score(a) for a in candidates]
            for a, s in zip(candidates, scores):
                self.zero_cost[a] = s.to_json()
            return "zero-cost", ZeroCostScorer.rank_scores(scores)
        if self.config.prior == "latency":
            # no data yet: within a budget, capacity is the best-known bet (accuracy grows
            # with FLOPs across NAS spaces); the seeded jitter breaks ties
            return "latency", [
                self.problem.predict(a) + 1e-9 * self.rng.random() for a in candidates
            ]
        return "random", [self.rng.random() for _ in candidates]

    def fit_surrogate(self, trials: Sequence[Trial] | None = None) -> MLPEnsemble | None:
        """The surrogate fitted on ``trials`` (default: every successful trial told), or
        None with fewer than :data:`MIN_FIT`."""
        data = [t for t in (self.result.trials if trials is None else trials) if t.ok]
        if len(data) < MIN_FIT:
            return None
        data.sort(key=lambda t: t.number)  # the fit must not depend on the order of tells
        surrogate = MLPEnsemble(self.config.surrogate, seed=self.problem.seed + len(self.steps))
        surrogate.fit([self.features(t.arch) for t in data], [t.accuracy for t in data])
        return surrogate

    def features(self, arch: Arch) -> list[float]:
        """One-hot decisions plus size: predicted latency / budget, log FLOPs, blocks."""
        if arch not in self._features:
            keys = self.problem.space.blocks(arch)
            flops = sum(work(k)[0] for k in keys)
            size = [
                self.problem.predict(arch) / self.problem.budget_ms,
                math.log10(max(flops, 1.0)) / 10.0,
                self.codec.complexity(arch) / self._max_blocks,
            ]
            self._features[arch] = self.codec.encode(arch) + size
        return self._features[arch]

    # -- sizing -----------------------------------------------------------------------------
    def _largest_shape(self) -> Arch:
        """An arch with the most blocks: keep growing the cheapest one."""
        arch = self.cheapest
        while grown := self.codec.grow(arch):
            arch = grown[0]
        return arch

    def _auto_beam(self) -> int:
        low = self.codec.complexity(self.codec.simplify(self.cheapest))
        levels = max(1, self._max_blocks - low + 1)
        trials = max(1, self.problem.trials)
        return max(1, min(math.ceil(trials / levels), math.ceil(trials / 4)))
