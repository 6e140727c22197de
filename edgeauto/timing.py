"""Timing statistics: raw per-call samples and their median/p90 summary (:class:`LatencyStat`).

The bottom of every latency figure in edgeauto: runtimes, runners, tables and verification
all time with these, so that "median" and "disturbed round" mean one thing everywhere.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgeauto.errors import RunnerError

DISTURBED = 1.10  # a round this much slower than the quickest round was disturbed


@dataclass(frozen=True)
class LatencyStat:
    """Median and 90th percentile of ``runs`` timed runs, in milliseconds."""

    median_ms: float
    p90_ms: float
    runs: int

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
        return cls.from_samples(kept)


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
