"""Calibration measured at the start of a run, on a device this machine can time.

The history factor (:func:`edgeauto.latency.calibration.history.calibration_factor`) is the median
over earlier runs' final artifacts: on a device whose speed drifts (a shared machine under
changing load, a board that throttles) it is the speed of an earlier hour. On this project's
benchmark, history factors of 1.38 and 1.32 recorded while the machine was loaded sent the
next runs' models 40% under their budgets once the load was gone. Timing a few whole networks
now, near the budget, takes a few seconds and calibrates search and pruning to the device as
it is. The history is still recorded: remote devices, which cannot be timed here during a
run, are calibrated from it.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from edgeauto.errors import ConfigError
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.spaces.base import Arch, SearchSpace
from edgeauto.timing import Reference

FRESH_ARCHS = 3  # a median of three rejects one disturbed timing
CANDIDATES = 64  # random archs the three nearest the budget are picked from


@dataclass(frozen=True)
class FreshCalibration:
    """The factor ``median(measured / predicted)`` and the whole networks it came from."""

    factor: float
    archs: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"factor": self.factor, "archs": self.archs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FreshCalibration:
        try:
            factor = float(data["factor"])
            archs = list(data["archs"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"calibration record is malformed ({exc}); drop --resume") from None
        if not math.isfinite(factor) or factor <= 0:
            raise ConfigError(f"calibration factor must be > 0, got {factor}; drop --resume")
        return cls(factor, archs)


def near_budget(
    space: SearchSpace, predictor: MeasuringPredictor, budget_ms: float, n: int, seed: int
) -> list[Arch]:
    """``n`` distinct random archs whose predictions are closest to ``budget_ms`` (in ratio):
    the networks the search will compare are the ones whose speed should be right."""
    rng = random.Random(seed)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(CANDIDATES)))

    def distance(arch: Arch) -> float:
        return abs(math.log(predictor.predict(space.blocks(arch)) / budget_ms))

    return sorted(archs, key=distance)[:n]


def measure_calibration(
    predictor: MeasuringPredictor,
    space: SearchSpace,
    input_shape: tuple[int, int, int],
    budget_ms: float,
    seed: int = 0,
    reference: Callable[[nn.Module], Reference] | None = None,
) -> FreshCalibration:
    """Time :data:`FRESH_ARCHS` whole networks near ``budget_ms`` with the predictor's timer
    (one runner call) and compare each with its uncalibrated prediction. With ``reference``
    (which makes the run's reference from the network nearest the budget), they are timed
    beside it and read in its frame (:meth:`~edgeauto.timing.RelativeStat.at`), as the
    run's later timings will be."""
    timer = predictor.timer
    if timer is None:
        raise ConfigError("a fresh calibration needs a device this machine can time")
    archs = near_budget(space, predictor, budget_ms, FRESH_ARCHS, seed)
    nets = [space.build(a) for a in archs]
    if reference is None:
        stats = timer.time_networks(nets, input_shape)
    else:
        ref = reference(nets[0])
        stats = [r.at(ref.ms) for r in timer.time_beside(nets, input_shape, ref.path)]
    rows = [
        {"arch": a.to_json(), "predicted_ms": predictor.uncalibrated(space.blocks(a)),
         "measured_ms": s.median_ms}
        for a, s in zip(archs, stats, strict=True)
    ]  # fmt: skip
    factor = statistics.median(r["measured_ms"] / r["predicted_ms"] for r in rows)
    return FreshCalibration(factor, rows)
