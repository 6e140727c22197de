"""Latency predictors over a table. :class:`MeasuringPredictor` closes the loop on the host:
a key the table lacks (a pruned block, say) is measured with the real runtime, added to the
table and saved, so every later run predicts it from measurement."""

from __future__ import annotations

from collections.abc import Iterable

from edgeauto.latency.key import OpKey
from edgeauto.latency.profiler import BlockTimer
from edgeauto.latency.table import LatencyTable


class MeasuringPredictor:
    """Table lookups; misses are measured when a local timer is available, else raise."""

    def __init__(self, table: LatencyTable, timer: BlockTimer | None = None) -> None:
        self.table = table
        self.timer = timer
        self.measured_on_demand = 0

    def _ensure(self, keys: Iterable[OpKey]) -> None:
        missing = self.table.missing(keys)
        if not missing or self.timer is None:
            return  # lookup() below raises TableMiss with the fix
        for key in missing:
            self.table.entries[key] = self.timer.time_key(key)
        self.measured_on_demand += len(missing)
        if self.table.path:
            self.table.save()

    def block_ms(self, key: OpKey) -> float:
        self._ensure([key])
        return self.table.block_ms(key)

    def predict_keys(self, keys: Iterable[OpKey]) -> float:
        keys = list(keys)
        self._ensure(keys)
        return self.table.predict_keys(keys)
