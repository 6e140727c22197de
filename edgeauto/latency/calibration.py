"""Calibration from verified artifacts, and emulation of a device that cannot be reached.

Calibration: every run that measures its final artifact on the device appends
(predicted, measured) to the table's ``history`` (saved atomically with the table);
later predictions for that table (device, runtime, space) are multiplied by the median of
``measured / predicted`` over the last :data:`WINDOW` entries predicted the same way, once
there are :data:`MIN_ENTRIES` of them (a median of fewer cannot reject one bad run).

Emulation: with the device out of reach, its latency is estimated as the artifact measured
on this machine times a device/host ratio, fitted by least squares on the log ratios of the
blocks both tables share (:func:`fit_ratio`). The fit's error (RMSPE of the blocks around
the one ratio) goes with every emulated number; reports label it ``emulated``.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from edgeauto.errors import ConfigError
from edgeauto.latency.key import OpKey
from edgeauto.latency.table import LatencyStat, LatencyTable, Verification

WINDOW = 10
MIN_ENTRIES = 3
#: Shared blocks a device/host ratio needs before it is trusted.
MIN_SHARED = 3


def calibration_factor(
    table: LatencyTable, signature: str, window: int = WINDOW, min_entries: int = MIN_ENTRIES
) -> float:
    """Median ``measured / predicted`` of the last ``window`` history entries predicted by
    ``signature``; 1.0 until there are ``min_entries`` of them."""
    same = [h for h in table.history if h.predictor == signature][-window:]
    if len(same) < min_entries:
        return 1.0
    return statistics.median(h.measured_ms / h.predicted_ms for h in same)


def record_verification(
    table: LatencyTable, model_sha256: str, predicted_ms: float, measured_ms: float, signature: str
) -> Verification:
    """Append one verified artifact to ``table.history`` and save the table atomically.

    ``predicted_ms`` must be the uncalibrated prediction (before :func:`calibration_factor`),
    or the factor would chase its own corrections. An artifact verified again (a resumed
    run) replaces its earlier entry: one vote per model in the median.
    """
    for name, value in (("predicted_ms", predicted_ms), ("measured_ms", measured_ms)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(
                f"a verification needs positive finite latencies, got {name}={value!r}; the "
                "measurement or prediction failed: re-run the measurement"
            )
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    entry = Verification(model_sha256, predicted_ms, measured_ms, signature, when)
    table.history = [h for h in table.history if h.model_sha256 != model_sha256] + [entry]
    if table.path:
        table.save()
    return entry


@dataclass(frozen=True)
class RatioFit:
    """``device ≈ ratio x host`` on ``shared`` blocks; ``rmspe`` is the fit's error."""

    ratio: float
    rmspe: float
    shared: int
    weighted: bool

    def emulate(self, host: LatencyStat) -> LatencyStat:
        """The device's stat estimated from the host's stat of the same artifact."""
        return LatencyStat(host.median_ms * self.ratio, host.p90_ms * self.ratio, host.runs)

    def to_json(self) -> dict[str, float | int | bool]:
        return asdict(self)


def _pairs(
    device: LatencyTable, host: LatencyTable, keys: Sequence[OpKey] | None
) -> list[tuple[float, float, float]]:
    """(device ms, host ms, weight) per shared block, plus the invocation overhead.

    Without ``keys``: every block both tables measured, weighted equally. With the keys of
    one network: its blocks, weighted by their share of its host time, so the ratio is the
    one that network sees. Estimated entries (an import's guesses) are never used.
    """
    ov = [(device.overhead_ms(), host.overhead_ms())] if device.overhead and host.overhead else []
    if keys is None:
        shared = [k for k in device.entries if k in host.entries and k not in device.estimated]
        pairs = [(device.entries[k].median_ms, host.entries[k].median_ms) for k in shared]
        return [(d, h, 1.0) for d, h in pairs]
    shared = [k for k in keys if k in device.entries and k in host.entries]
    shared = [k for k in shared if k not in device.estimated]
    pairs = [(device.block_ms(k), host.block_ms(k)) for k in shared] + ov
    return [(d, h, h) for d, h in pairs if d > 0 and h > 0]


def fit_ratio(
    device: LatencyTable, host: LatencyTable, keys: Sequence[OpKey] | None = None
) -> RatioFit:
    """Least-squares fit of ``log device = log ratio + log host`` over shared blocks.

    With ``keys`` (one network's blocks), each block counts by its share of the network's
    host time, the overhead-free block costs are compared and the invocation overhead is one
    more pair: a network spends its time unevenly, and a whole model pays one invocation.
    """
    pairs = _pairs(device, host, keys)
    if len(pairs) < MIN_SHARED:
        raise ConfigError(
            f"cannot fit a device/host ratio: the tables of {device.provenance.device} and "
            f"{host.provenance.device} share {len(pairs)} usable blocks, need >= {MIN_SHARED}; "
            f"measure both for the same space (edgeauto profile --space {device.provenance.space})"
        )
    total = sum(w for _, _, w in pairs)
    log_ratio = sum(w * math.log(d / h) for d, h, w in pairs) / total
    ratio = math.exp(log_ratio)
    sq = sum(w * ((ratio * h - d) / d) ** 2 for d, h, w in pairs) / total
    return RatioFit(ratio, math.sqrt(sq), len(pairs), keys is not None)
