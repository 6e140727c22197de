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
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    entry = Verification(model_sha256, predicted_ms, measured_ms, signature, when)
    entry.check(table.path)  # before anything changes: a bad number never reaches the file
    table.history = [h for h in table.history if h.model_sha256 != model_sha256] + [entry]
    if table.path:
        table.save()
    return entry


@dataclass(frozen=True)
class RatioFit:
    """``device ≈ ratio x host``, fitted on the blocks both tables share.

    ``rmspe`` is the fit's error: the root-mean-square relative error of every shared block
    (``shared`` of them) predicted as ``ratio x host``. ``blocks`` and ``blocks_rmspe`` are
    the same for the blocks the ratio was fitted on (one network's, time-weighted), when the
    fit was for one network.
    """

    ratio: float
    rmspe: float
    shared: int
    blocks: int
    blocks_rmspe: float

    def emulate(self, host: LatencyStat) -> LatencyStat:
        """The device's stat estimated from the host's stat of the same artifact."""
        return LatencyStat(host.median_ms * self.ratio, host.p90_ms * self.ratio, host.runs)

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def _pairs(
    device: LatencyTable, host: LatencyTable, keys: Sequence[OpKey] | None = None
) -> list[tuple[float, float, float]]:
    """(device ms, host ms, weight) per shared block: the blocks' medians as measured.

    Without ``keys``: every block both tables measured, weighted equally. With the keys of
    one network: its blocks (repeats count), weighted by their host time. Medians are
    compared as measured, invocation overhead included: the overhead-free costs of small
    blocks are differences of near-equal numbers, and a network of small blocks is itself
    mostly overhead. Estimated entries (an import's guesses) are never used.
    """
    pool = device.entries.keys() if keys is None else keys
    shared = [k for k in pool if k in host.entries and k in device.entries]
    pairs = [
        (device.entries[k].median_ms, host.entries[k].median_ms)
        for k in shared
        if k not in device.estimated
    ]
    return [(d, h, 1.0 if keys is None else h) for d, h in pairs]


def _fit(pairs: list[tuple[float, float, float]]) -> float:
    """Weighted least squares of ``log d = log ratio + log h``: the weighted mean log ratio."""
    total = sum(w for _, _, w in pairs)
    return math.exp(sum(w * math.log(d / h) for d, h, w in pairs) / total)


def _rmspe(pairs: list[tuple[float, float, float]], ratio: float) -> float:
    total = sum(w for _, _, w in pairs)
    return math.sqrt(sum(w * ((ratio * h - d) / d) ** 2 for d, h, w in pairs) / total)


def fit_ratio(
    device: LatencyTable, host: LatencyTable, keys: Sequence[OpKey] | None = None
) -> RatioFit:
    """Least-squares fit of ``log device = log ratio + log host`` over shared blocks.

    With ``keys`` (one network's blocks) the ratio is fitted on those blocks, each weighted
    by its host time: a network spends its time unevenly, and its ratio is the one its heavy
    blocks see (on host LiteRT vs ONNX Runtime tables this tracked whole networks about
    twice as closely as one ratio for the whole table). The error is still reported over
    every shared block, which is what an arbitrary network's blocks scatter by.
    """
    everything = _pairs(device, host)
    fitted = everything if keys is None else _pairs(device, host, keys)
    if len(fitted) < MIN_SHARED:
        p = device.provenance
        raise ConfigError(
            f"cannot fit a device/host ratio: the tables of {p.device} and "
            f"{host.provenance.device} share {len(fitted)} measured blocks"
            f"{' of the model' if keys is not None else ''}, need >= {MIN_SHARED}; measure "
            f"both for the same space and input shape (edgeauto profile --space {p.space})"
        )
    ratio = _fit(fitted)
    return RatioFit(
        ratio, _rmspe(everything, ratio), len(everything), len(fitted), _rmspe(fitted, ratio)
    )
