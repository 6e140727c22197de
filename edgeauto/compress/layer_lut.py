"""A per-layer latency table for any model (NetAdapt's approach), measured on demand.

Models from a search space have block keys and a profiled table. A user's own ``nn.Module``
does not, so its cost is the sum of its conv and linear layers, each timed once on the
device as a one-layer model (conv followed by BN and ReLU, which the converters fold or
fuse into the conv), plus the device's fixed per-model overhead. A layer is keyed by its
shapes, so the many candidate widths pruning tries are each measured only once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from edgeauto.compress.graph import forward_with_hook
from edgeauto.latency.builder import BlockTimer
from edgeauto.latency.model import LATENCY_MODELS, LatencyModel


@dataclass(frozen=True, order=True)
class LayerKey:
    """One conv or linear layer as the runtime sees it."""

    kind: str  # "conv" | "linear"
    cin: int
    cout: int
    h: int = 1
    w: int = 1
    kernel: int = 1
    stride: int = 1
    groups: int = 1

    def module(self) -> tuple[nn.Module, tuple[int, int, int]]:
        """A one-layer model with exactly these shapes, and its input shape (C, H, W)."""
        if self.kind == "linear":
            return _Linear(self.cin, self.cout), (self.cin, 1, 1)
        conv = nn.Conv2d(
            self.cin, self.cout, self.kernel, self.stride, self.kernel // 2, groups=self.groups
        )
        return nn.Sequential(conv, nn.BatchNorm2d(self.cout), nn.ReLU()), (self.cin, self.h, self.w)


class _Linear(nn.Module):
    """A linear layer fed an NCHW tensor (exporters need a 4-D input for our runtimes)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def layer_keys(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerKey]:
    """The key of every conv and linear layer of ``model``, in execution order."""
    keys: list[LayerKey] = []

    def hook(m: nn.Module, inp: tuple, _out: torch.Tensor) -> None:
        x = inp[0]
        if isinstance(m, nn.Conv2d):
            h, w = int(x.shape[2]), int(x.shape[3])
            k, st = m.kernel_size[0], m.stride[0]
            keys.append(LayerKey("conv", m.in_channels, m.out_channels, h, w, k, st, m.groups))
        elif isinstance(m, nn.Linear):
            keys.append(LayerKey("linear", m.in_features, m.out_features))

    forward_with_hook(model, input_shape, hook)
    return keys


@LATENCY_MODELS.register("layer")
class LayerLatency(LatencyModel[LayerKey]):
    """``cost(model)`` in ms: measured layers plus one model overhead (a :data:`CostOf`).

    The latency model of a user's own ``nn.Module``: its keys are :class:`LayerKey` (from
    :func:`layer_keys`), additive, ``predict([])`` the overhead.
    """

    def __init__(self, timer: BlockTimer, input_shape: tuple[int, ...]) -> None:
        self.timer = timer
        self.input_shape = input_shape
        self.entries: dict[LayerKey, float] = {}
        self._overhead: float | None = None

    @property
    def overhead_ms(self) -> float:
        """The device's fixed cost of invoking any model (measured once)."""
        if self._overhead is None:
            self._overhead = self.timer.time_overhead().median_ms
        return self._overhead

    def layer_ms(self, key: LayerKey) -> float:
        """The layer's latency without the per-model overhead (measured on first use)."""
        if key not in self.entries:
            module, shape = key.module()
            stat = self.timer.time_module(module, shape)
            self.entries[key] = max(0.0, stat.median_ms - self.overhead_ms)
        return self.entries[key]

    def block_ms(self, key: LayerKey) -> float:
        """:meth:`layer_ms` (the latency-model role's name for it)."""
        return self.layer_ms(key)

    def predict(self, keys: Iterable[LayerKey]) -> float:
        """The layers' sum plus one model overhead (ms)."""
        return self.overhead_ms + sum(self.layer_ms(k) for k in keys)

    def __call__(self, model: nn.Module) -> float:
        """:meth:`predict` of ``model``'s layers."""
        return self.predict(layer_keys(model, self.input_shape))

    def to_json(self) -> dict[str, Any]:
        """The measured entries, for the run directory."""
        return {
            "overhead_ms": self._overhead,
            "entries": [{"key": asdict(k), "ms": ms} for k, ms in sorted(self.entries.items())],
        }
