"""Timing statistics: raw per-call samples and their median/p90 summary (:class:`LatencyStat`).

The bottom of every latency figure in edgeauto: runtimes, runners, tables and verification
all time with these, so that "median" and "disturbed round" mean one thing everywhere.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeauto.errors import RunnerError

DISTURBED = 1.10  # a round this much slower than the quickest round was disturbed
#: A measurement whose round medians spread more than this (relative stdev) is not trusted:
#: it is taken again, then reported as unrepeatable. Pinned on a quiet core this machine's
#: rounds spread 0.6-2%; with another job on the other core, 16%.
REPEATABLE = 0.05


@dataclass(frozen=True)
class LatencyStat:
    """Median and 90th percentile of ``runs`` timed runs, in milliseconds."""

    median_ms: float
    p90_ms: float
    runs: int
    #: Relative stdev of the round medians (fresh sessions) the figure pooled, over every
    #: round, disturbed ones included; None when it came from one round or a publication.
    repeatability: float | None = None

    @property
    def repeatable(self) -> bool:
        """Whether its rounds agreed within :data:`REPEATABLE` (unknown counts as agreed)."""
        return self.repeatability is None or self.repeatability <= REPEATABLE

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; ``repeatability`` only when known, so older files keep their bytes."""
        data = asdict(self)
        if self.repeatability is None:
            del data["repeatability"]
        return data

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStat:
        """Summarise raw per-run timings."""
        if not samples_ms:
            raise ValueError("no timing samples")
        ordered = sorted(samples_ms)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        return cls(statistics.median(ordered), p90, len(ordered))

    @classmethod
    def from_rounds(cls, rounds: Sequence[Sequence[float]]) -> LatencyStat:
        """Summarise the rounds (fresh sessions) that were not disturbed, pooled.

        A round whose median is more than :data:`DISTURBED` above the quickest round's was
        slowed by something else on the machine (another process, a neighbour on a shared
        host): measured here, one 200-run session in twelve came out 41% slow while the other
        eleven agreed within 1%. Pooling it in would move the median, so it is dropped, as
        ``timeit`` advises of its slower repeats.
        """
        medians = [statistics.median(r) for r in rounds if r]
        if not medians:
            raise ValueError("no timing samples")
        low = min(medians)
        kept = [x for r in rounds if r and statistics.median(r) <= low * DISTURBED for x in r]
        pooled = cls.from_samples(kept)
        return cls(pooled.median_ms, pooled.p90_ms, pooled.runs, spread(medians))


@dataclass(frozen=True)
class RelativeStat:
    """A model timed beside a fixed reference model in the same interleaved rounds.

    Within the hour this machine drifts by 5-10% between two takes a minute apart (and a
    neighbour on the host can slow one take by 50%), which moves both models alike: over
    twenty takes the model's own median spread 20.5% and its ratio to another net 1.7%
    (``benchmarks/results/reference_timing.json``). ``ratio`` is the median of the per-round ratios, so one round where only
    one of the two was disturbed does not move it.
    """

    ratio: float
    #: Relative stdev of the per-round ratios; None from one round.
    repeatability: float | None
    model: LatencyStat  # as timed now
    reference: LatencyStat  # as timed now, in the same rounds

    @classmethod
    def from_rounds(cls, pairs: Sequence[tuple[LatencyStat, LatencyStat]]) -> RelativeStat:
        """From one (model, reference) pair of single-round stats per round."""
        ratios = [m.median_ms / r.median_ms for m, r in pairs]
        model = _pooled_medians([m for m, _ in pairs])
        return cls(statistics.median(ratios), spread(ratios), model, _pooled_medians(
            [r for _, r in pairs]))  # fmt: skip

    @property
    def repeatable(self) -> bool:
        """Whether the rounds' ratios agreed within :data:`REPEATABLE`."""
        return self.repeatability is None or self.repeatability <= REPEATABLE

    def at(self, reference_ms: float) -> LatencyStat:
        """The model's time when the reference takes ``reference_ms`` (its p90 scaled alike),
        with the ratio's repeatability."""
        scale = self.ratio * reference_ms / self.model.median_ms
        m = self.model
        return LatencyStat(m.median_ms * scale, m.p90_ms * scale, m.runs, self.repeatability)


@dataclass(frozen=True)
class Reference:
    """A run's reference model: its artifact and its time when the run timed it first.

    Every later whole-model timing of the run is taken beside it (:class:`RelativeStat`) and
    read as ``ratio * ms``: the machine as it was then, so that pruning's measurements and the
    verdict's, minutes apart, agree even when the machine drifted between them.
    """

    path: Path
    ms: float
    repeatability: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (the path as a string)."""
        return {"path": str(self.path), "ms": self.ms, "repeatability": self.repeatability}


def _pooled_medians(stats: Sequence[LatencyStat]) -> LatencyStat:
    """Median of the round medians and of their p90s, the runs summed."""
    return LatencyStat(
        statistics.median(s.median_ms for s in stats),
        statistics.median(s.p90_ms for s in stats),
        sum(s.runs for s in stats), spread([s.median_ms for s in stats]),
    )  # fmt: skip


def spread(values: Sequence[float]) -> float | None:
    """Relative (population) stdev of ``values``; None for fewer than two."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if mean > 0 else None


def allowed_cores() -> tuple[int, ...]:
    """The cores this process may run on (all of them where affinity is not supported)."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return tuple(range(os.cpu_count() or 1))


@contextmanager
def pinned(cores: Sequence[int] | None) -> Iterator[None]:
    """Run the block on ``cores`` only (None: where it runs now), then restore the affinity.

    Linux applies it to the calling thread, and threads it starts inherit it: a runtime
    session created inside the block (XNNPACK's or ONNX Runtime's pool) stays on ``cores``.
    Two cores of one machine can differ by 1.6x; a timing that may hop between them is noise.
    """
    if not cores or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def sample_calls(fn: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``fn()`` after ``warmup`` untimed calls."""
    if runs < 1 or warmup < 0:
        raise RunnerError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def time_calls(fn: Callable[[], object], runs: int, warmup: int) -> LatencyStat:
    """Median/p90 of ``runs`` calls of ``fn()`` after ``warmup`` untimed calls."""
    return LatencyStat.from_samples(sample_calls(fn, runs, warmup))
