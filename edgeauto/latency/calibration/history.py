"""Calibration from verified artifacts: the history of (predicted, measured) pairs.

Calibration: every run that measures its final artifact on the device appends
(predicted, measured) to the table's ``history`` (saved atomically with the table);
later predictions for that table (device, runtime, space) are multiplied by the median of
``measured / predicted`` over the last :data:`WINDOW` entries predicted the same way, once
there are :data:`MIN_ENTRIES` of them (a median of fewer cannot reject one bad run).

"""

from __future__ import annotations

import datetime as dt
import statistics

from edgeauto.latency.table import LatencyTable, Verification

WINDOW = 10
MIN_ENTRIES = 3


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
