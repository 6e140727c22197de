"""A deterministic latency model from multiply-adds alone: no table, no runtime, no device.

Strategies and pruners must not depend on where latency numbers come from; this one needs
nothing measured, so conformance suites and tests run in milliseconds with it. It is not a
prediction of any real device.
"""

from __future__ import annotations

from collections.abc import Iterable

from edgeauto.latency.model import LATENCY_MODELS, LatencyModel
from edgeauto.spaces.key import OpKey

#: "ms" per multiply-add, per block and per network (fixed, so results are reproducible)
MS_PER_MAC = 1e-6
BLOCK_MS = 1e-4
NETWORK_MS = 1e-3


@LATENCY_MODELS.register("macs")
class MacsLatency(LatencyModel[OpKey]):
    """Latency ~ multiply-adds of a key: ``1e-6`` per MAC, ``1e-4`` per block, ``1e-3`` per
    network (additive)."""

    def block_ms(self, key: OpKey) -> float:
        """The block's MACs (expand, depthwise, project) x :data:`MS_PER_MAC` + :data:`BLOCK_MS`."""
        oh, ow = key.out_hw
        width = key.hidden or key.cin
        macs = key.cin * key.hidden * key.h * key.w + width * key.kernel**2 * oh * ow
        return MS_PER_MAC * (macs + width * key.cout * oh * ow) + BLOCK_MS

    def predict(self, keys: Iterable[OpKey]) -> float:
        """The blocks' sum plus :data:`NETWORK_MS`."""
        return sum(self.block_ms(k) for k in keys) + NETWORK_MS
