"""The cost model of a ``relu-count`` device (private inference): ReLUs plus weighted MACs.

On such a device a ReLU costs orders of magnitude more than a multiply (it is evaluated
under a cryptographic protocol), so a budget is a count of ReLU-equivalents, not ms.
"""

from __future__ import annotations

from collections.abc import Iterable

from edgeauto.latency.model import LATENCY_MODELS, RELU_EQUIVALENTS, LatencyModel
from edgeauto.linearize.snl import relu_cost
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.modules import block_for_key


@LATENCY_MODELS.register("relu-count")
class ReluCost(LatencyModel[OpKey]):
    """A ``relu-count`` device's cost of blocks: ReLUs + ``flop_weight`` x MACs per sample,
    counted on the block built from each key (once; cached). Strategies see it as their
    latency model: its unit is ReLU-equivalents instead of ms, and an empty network costs 0."""

    cost_unit = RELU_EQUIVALENTS

    def __init__(self, flop_weight: float) -> None:
        self.flop_weight = flop_weight
        self._cost: dict[OpKey, float] = {}

    def block_ms(self, key: OpKey) -> float:
        """ReLU-equivalents of the block ``key`` (the name is the role's; the unit is not ms)."""
        if key not in self._cost:
            shape = (key.cin,) if key.kind == "linear" else (key.cin, key.h, key.w)
            self._cost[key] = relu_cost(block_for_key(key), shape, self.flop_weight)
        return self._cost[key]

    def predict(self, keys: Iterable[OpKey]) -> float:
        """ReLU-equivalents of the network made of ``keys``: the sum of its blocks."""
        return sum(self.block_ms(k) for k in keys)
