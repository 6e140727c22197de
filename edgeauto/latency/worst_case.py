"""One model for several devices (``edgeauto run --one-model``).

Each device has its own table and budget. A model meets every budget exactly when its worst
ratio ``predicted_d / budget_d`` is at most 1, so the search and the pruner, which know one
predictor and one budget, get that ratio expressed in the first device's milliseconds:
``budget_1 x max_d(predicted_d / budget_d)``. It equals the first device's prediction
whenever that device binds, so every report in ms stays meaningful for it.

Per block (what DNAS's table loss and the cheapest-arch check price) the same worst ratio is
taken block by block: a sum of per-block worst cases is at least every device's own block
sum in those units, so a supernet steered by it errs towards the faster side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgeauto.devices.profile import DeviceProfile
from edgeauto.latency.model import LATENCY_MODELS, LatencyModel
from edgeauto.spaces.key import OpKey


@dataclass(frozen=True)
class Member:
    """One of the devices the model must serve: its profile, budget and latency model."""

    profile: DeviceProfile
    budget_ms: float
    predictor: LatencyModel


@LATENCY_MODELS.register("worst-case")
class WorstCasePredictor(LatencyModel[OpKey]):
    """Latency in the first member's ms of the member whose budget is tightest for ``keys``.

    Not additive (a maximum over devices); monotone when every member is."""

    additive = False

    def __init__(self, members: list[Member]) -> None:
        if len(members) < 2:
            raise ValueError(f"a worst case needs at least two devices, got {len(members)}")
        self.members = members
        self.unit = members[0].budget_ms  # ratios -> the first member's ms

    def ratios(self, keys: Iterable[OpKey]) -> dict[str, float]:
        """Predicted latency over budget, per device name."""
        keys = list(keys)
        return {m.profile.name: m.predictor.predict(keys) / m.budget_ms for m in self.members}

    def predict(self, keys: Iterable[OpKey]) -> float:
        """The tightest member's ratio, in the first member's ms."""
        return self.unit * max(self.ratios(keys).values())

    def block_ms(self, key: OpKey) -> float:
        """Per block, the worst ratio over the members, in the first member's ms."""
        return self.unit * max(m.predictor.block_ms(key) / m.budget_ms for m in self.members)

    def binding(self, keys: Iterable[OpKey]) -> str:
        """The device whose budget ``keys`` come closest to (or exceed most)."""
        ratios = self.ratios(keys)
        return max(ratios, key=ratios.__getitem__)
