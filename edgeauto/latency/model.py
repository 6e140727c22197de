"""The latency-model role: one base, :class:`LatencyModel`; one registry, :data:`LATENCY_MODELS`.

A latency model prices networks made of keys (:class:`~edgeauto.spaces.key.OpKey` for the
search spaces, :class:`~edgeauto.compress.layer_lut.LayerKey` for a user's own model):

- :meth:`LatencyModel.block_ms` is one block's contribution inside a network;
- :meth:`LatencyModel.predict` is the whole network made of ``keys`` (in forward order).

Both are in the model's :attr:`~LatencyModel.cost_unit`: milliseconds on a ``latency``
device, ReLU-equivalents on a ``relu-count`` one (private inference: a ReLU costs orders of
magnitude more than a multiply). Strategies, pruners and budgets never mix units: the budget
is in the unit of the model they are given. An :attr:`~LatencyModel.additive` model
satisfies ``predict(keys) == predict([]) + sum(block_ms(k) for k in keys)``; ``predict([])``
is then the fixed per-network cost (one model invocation; 0 where there is none).

Which model a run prices with is chosen once, from the device profile's ``cost_model``, by
:func:`edgeauto.latency.choose.for_profile`. Every implementation registers in
:data:`LATENCY_MODELS` (timm-style, ``@LATENCY_MODELS.register("name")``) and passes
:func:`edgeauto.testing.check_latency_model`. The registered models: ``table``
(:class:`~edgeauto.latency.table.LatencyTable`), ``naive``, ``fusion``, ``fusion+residual``,
``flops`` (:mod:`edgeauto.latency.fusion`), ``measuring`` (what a ``latency`` device prices
with), ``worst-case`` (several devices), ``relu-count`` (:mod:`edgeauto.latency.relu`),
``macs`` (a deterministic stand-in), ``layer`` (:mod:`edgeauto.compress.layer_lut`).

Example:
    >>> from edgeauto.latency.choose import for_profile
    >>> model = for_profile(profile, table=table, timer=timer)  # relu-count: no table needed
    >>> model.predict(space.blocks(arch))  # in model.cost_unit
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import ClassVar, Generic, TypeVar

from edgeauto.registry import Registry

K = TypeVar("K")

#: Units a model may report in (``LatencyModel.cost_unit``).
MS = "ms"
RELU_EQUIVALENTS = "relu-equivalents"


class LatencyModel(abc.ABC, Generic[K]):
    """Prices a network from its block keys, in :attr:`cost_unit` (``ms`` unless stated).

    Subclasses implement :meth:`block_ms` and :meth:`predict`; they set :attr:`additive` to
    False when ``predict`` is not ``predict([])`` plus the sum of the blocks (a learned
    correction of the whole network, a calibration factor, a worst case over devices).
    """

    #: What :meth:`block_ms` and :meth:`predict` return: ``"ms"`` or ``"relu-equivalents"``.
    cost_unit: ClassVar[str] = MS
    #: ``predict(keys) == predict([]) + sum(block_ms(k) for k in keys)`` (up to rounding).
    additive: ClassVar[bool] = True

    @abc.abstractmethod
    def block_ms(self, key: K) -> float:
        """One block's contribution inside a network (>= 0), in :attr:`cost_unit`."""

    @abc.abstractmethod
    def predict(self, keys: Iterable[K]) -> float:
        """The whole network made of ``keys`` (forward order), in :attr:`cost_unit`; ``predict([])``
        is the fixed per-network cost (>= 0)."""


LATENCY_MODELS: Registry[type[LatencyModel]] = Registry("latency model")
