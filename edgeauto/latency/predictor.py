"""The latency predictor a run uses. :class:`MeasuringPredictor` closes the loop on the host:
a key the table lacks (a pruned block, say) is measured with the real runtime, added to the
table and saved, so every later run predicts it from measurement. Predictions come from the
table's best model (:func:`edgeauto.latency.fusion.best_predictor`: fusion-aware, with the
learned residual once the table has whole networks measured end to end), times the
calibration factor of the artifacts verified so far (:mod:`edgeauto.latency.calibration.history`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edgeauto.latency.builder import BlockTimer, save_table
from edgeauto.latency.calibration.history import calibration_factor
from edgeauto.latency.fusion import Predictor, best_predictor
from edgeauto.latency.model import LATENCY_MODELS, LatencyModel
from edgeauto.latency.table import LatencyTable
from edgeauto.spaces.key import OpKey


@LATENCY_MODELS.register("measuring")
class MeasuringPredictor(LatencyModel[OpKey]):
    """Table lookups; misses are measured when a local timer is available, else raise.

    ``model`` (default: the table's best) predicts whole networks; ``calibration``
    (default: from the table's history, fixed for this predictor's life so that one run
    predicts consistently) multiplies it. What a ``latency`` device prices with
    (:func:`edgeauto.latency.model.for_profile`). Not additive: :meth:`block_ms` is the
    table's uncalibrated block (what ranks blocks), :meth:`predict` the calibrated network.
    """

    additive = False

    def __init__(
        self,
        table: LatencyTable,
        timer: BlockTimer | None = None,
        model: Predictor | None = None,
        calibration: float | None = None,
    ) -> None:
        self.table = table
        self.timer = timer
        self.measured_on_demand = 0
        self.model = model or best_predictor(table)
        self.calibration = (
            calibration_factor(table, self.model.signature())
            if calibration is None
            else calibration
        )
        self.calibration_source = "history" if calibration is None else "given"

    def recalibrate(self, factor: float, source: str) -> None:
        """Use ``factor`` from now on (a run sets it once, before its first prediction)."""
        self.calibration, self.calibration_source = factor, source

    def _ensure(self, keys: Iterable[OpKey]) -> None:
        missing = self.table.missing(keys)
        if not missing or self.timer is None:
            return  # lookup() below raises TableMiss with the fix
        for key in missing:
            self.table.entries[key] = self.timer.time_key(key)
        self.measured_on_demand += len(missing)
        save_table(self.table)

    def block_ms(self, key: OpKey) -> float:
        """The table's block (overhead removed, uncalibrated), measured first if missing."""
        self._ensure([key])
        return self.table.block_ms(key)

    def uncalibrated(self, keys: Iterable[OpKey]) -> float:
        """The model's prediction before calibration (what history records)."""
        keys = list(keys)
        self._ensure(keys)
        return self.model.predict(keys)

    def predict(self, keys: Iterable[OpKey]) -> float:
        """The model's prediction times the calibration factor (ms)."""
        return self.uncalibrated(keys) * self.calibration

    def to_json(self) -> dict[str, Any]:
        """Which model and calibration factor produced this run's predictions."""
        return {
            **self.model.to_json(), "signature": self.model.signature(),
            "calibration": self.calibration, "calibration_source": self.calibration_source,
        }  # fmt: skip
