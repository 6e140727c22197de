"""The conformance suite of latency models (:data:`edgeauto.latency.model.LATENCY_MODELS`).

Every registered model is built by its entry in :data:`EXAMPLES` from a :class:`LatencyFixture`
(a table measured on this machine, the space it covers, a local timer), and must then be:
finite and non-negative; deterministic; indifferent to how ``keys`` are iterated; additive
when it says so (``predict(keys) == predict([]) + sum(block_ms)``, so order-free and monotone
under removing blocks); JSON-serialisable where it has ``to_json`` (and loadable back where it
has ``from_json``); stable in its ``signature`` where it has one.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeauto.compress.layer_lut import LayerLatency, layer_keys
from edgeauto.devices.profile import load_profile
from edgeauto.latency.builder import (
    BlockTimer,
    TimingSettings,
    fill_table,
    make_timer,
    open_device_table,
    validate_table,
)
from edgeauto.latency.choose import for_profile
from edgeauto.latency.fusion import MIN_TRAIN, get_predictor
from edgeauto.latency.macs import MacsLatency
from edgeauto.latency.model import LATENCY_MODELS, MS, RELU_EQUIVALENTS, LatencyModel
from edgeauto.latency.table import LatencyTable, WholeModelRun
from edgeauto.latency.worst_case import Member, WorstCasePredictor
from edgeauto.spaces import get_space
from edgeauto.spaces.base import SearchSpace

#: Few runs per key: the checks test invariants, not accuracy.
FEW = TimingSettings(runs=30, warmup=3, rounds=1)
REL = 1e-9  # relative tolerance of sums taken in another order


@dataclass
class LatencyFixture:
    """What examples are built from: a measured ``table`` holding every key of ``space``, and
    a timer of this machine (made on first use) for the models that measure."""

    table: LatencyTable
    space: SearchSpace
    timer: BlockTimer | None = None
    _runs: list[WholeModelRun] | None = field(default=None, repr=False)

    @classmethod
    def measure(
        cls, root: Path, space: str = "fbnet-micro", shape: tuple[int, int, int] = (1, 8, 8)
    ) -> LatencyFixture:
        """Measure the table of ``space`` at ``shape`` on this machine under ``root``."""
        profile, built = load_profile("host"), get_space(space, shape, 10)
        timer = make_timer(profile, FEW)
        table = open_device_table(profile, built.name, timer, root)
        fill_table(table, table.missing(built.all_keys()), timer)
        return cls(table, built, timer)

    def host_timer(self) -> BlockTimer:
        """A timer of this machine (the fixture's own, or one made now and kept)."""
        if self.timer is None:
            self.timer = make_timer(load_profile("host"), FEW)
        return self.timer

    def runs(self) -> list[WholeModelRun]:
        """Whole networks measured end to end: the table's validation runs when it has
        enough, else :data:`~edgeauto.latency.fusion.MIN_TRAIN` measured now (on a copy)."""
        if self._runs is None:
            usable = [r for r in self.table.validation if not self.table.missing(r.keys)]
            if len(usable) < MIN_TRAIN:
                copy = LatencyTable.from_json(self.table.to_json())  # no path: never saved
                usable = validate_table(copy, self.space, self.host_timer(), MIN_TRAIN)
            self._runs = usable
        return self._runs

    def networks(self, n: int = 3) -> list[list[Any]]:
        """The keys of ``n`` seeded random archs of the space, in forward order."""
        rng = random.Random(0)
        archs = [self.space.sample(rng) for _ in range(n)]
        return [self.space.blocks(a) for a in archs]


@dataclass
class Example:
    """A model to check and networks (key lists) to check it on."""

    model: LatencyModel
    networks: list[list[Any]]


def _table_family(name: str) -> Callable[[LatencyFixture], Example]:
    def build(fx: LatencyFixture) -> Example:
        return Example(get_predictor(name, fx.table, fx.runs()), fx.networks())

    return build


def _worst_case(fx: LatencyFixture) -> Example:
    host, phone = load_profile("host"), load_profile("pixel-7")
    nets = fx.networks()
    own = for_profile(host, table=fx.table)
    budget = max(own.predict(n) for n in nets)
    members = [Member(host, budget, own), Member(phone, budget / 100, MacsLatency())]
    return Example(WorstCasePredictor(members), nets)


def _layer(fx: LatencyFixture) -> Example:
    shape = fx.space.input_shape
    rng = random.Random(1)
    models = [fx.space.build(fx.space.sample(rng)) for _ in range(2)]
    return Example(LayerLatency(fx.host_timer(), shape), [layer_keys(m, shape) for m in models])


#: How each registered latency model is built for its check; a model without an entry fails.
EXAMPLES: dict[str, Callable[[LatencyFixture], Example]] = {
    "table": lambda fx: Example(fx.table, fx.networks()),
    "naive": _table_family("naive"),
    "fusion": _table_family("fusion"),
    "fusion+residual": _table_family("fusion+residual"),
    "flops": _table_family("flops"),
    "measuring": lambda fx: Example(
        for_profile(load_profile("host"), table=fx.table), fx.networks()
    ),
    "worst-case": _worst_case,
    "relu-count": lambda fx: Example(for_profile(load_profile("pi-relu")), fx.networks()),
    "macs": lambda fx: Example(MacsLatency(), fx.networks()),
    "layer": _layer,
}


def check_latency_model(
    name: str, fixture: LatencyFixture | None = None, example: Example | None = None
) -> None:
    """Check the registered latency model ``name`` (built from :data:`EXAMPLES` over
    ``fixture``, measured here when not given; or the given ``example``)."""
    cls = LATENCY_MODELS.get(name)
    if example is None:
        if name not in EXAMPLES:
            raise AssertionError(
                f"latency model {name!r} has no example in edgeauto.testing.latency.EXAMPLES; "
                "add how to build it (or pass example=)"
            )
        if fixture is None:
            fixture = LatencyFixture.measure(Path(tempfile.mkdtemp(prefix="edgeauto-check-")))
        example = EXAMPLES[name](fixture)
    model, nets = example.model, example.networks
    assert type(model) is cls, f"the example of {name!r} is a {type(model).__name__}, not {cls}"
    assert model.cost_unit in (MS, RELU_EQUIVALENTS), f"unknown unit {model.cost_unit!r}"
    assert nets and all(nets), "the example needs non-empty networks"
    _check_values(model, nets)
    _check_repeatable(model, nets)
    if model.additive:
        _check_additive(model, nets)
    _check_records(model, nets)


def _finite(value: object, what: str) -> float:
    assert isinstance(value, int | float) and not isinstance(value, bool), f"{what}: {value!r}"
    assert math.isfinite(value) and value >= 0, f"{what} must be finite and >= 0, got {value}"
    return float(value)


def _check_values(model: LatencyModel, nets: Sequence[list[Any]]) -> None:
    """Every block, every network and the empty network: finite, non-negative numbers."""
    _finite(model.predict([]), "predict([])")
    for keys in nets:
        _finite(model.predict(keys), "predict(keys)")
        for key in keys:
            _finite(model.block_ms(key), f"block_ms({key})")


def _check_repeatable(model: LatencyModel, nets: Sequence[list[Any]]) -> None:
    """The same number again, and whatever iterable carries the keys."""
    for keys in nets:
        first = model.predict(keys)
        assert model.predict(list(keys)) == first, "predict is not deterministic"
        assert model.predict(iter(keys)) == first, "predict(iterator) != predict(list)"
        assert model.predict(tuple(keys)) == first, "predict(tuple) != predict(list)"
        assert [model.block_ms(k) for k in keys] == [model.block_ms(k) for k in keys], (
            "block_ms is not deterministic"
        )


def _check_additive(model: LatencyModel, nets: Sequence[list[Any]]) -> None:
    """``predict(keys) == predict([]) + sum(block_ms)``; hence order-free and monotone."""
    fixed = model.predict([])
    for keys in nets:
        total = model.predict(keys)
        parts = fixed + sum(model.block_ms(k) for k in keys)
        assert math.isclose(total, parts, rel_tol=REL, abs_tol=1e-12), (
            f"additive model: predict {total} != predict([]) + sum(block_ms) {parts}"
        )
        rev = model.predict(list(reversed(keys)))
        assert math.isclose(rev, total, rel_tol=REL, abs_tol=1e-12), "depends on block order"
        sub = keys[::2]
        assert model.predict(sub) <= total * (1 + REL) + 1e-12, "removing blocks raised the cost"
        assert model.predict(keys + keys) >= total, "adding blocks lowered the cost"


def _check_records(model: LatencyModel, nets: Sequence[list[Any]]) -> None:
    """``to_json`` is plain JSON (loadable back by ``from_json`` where the class has it, with
    the same predictions); ``signature`` is a stable string."""
    if hasattr(model, "to_json"):
        data = model.to_json()
        assert json.loads(json.dumps(data)) == data, "to_json is not plain JSON"
        if hasattr(type(model), "from_json"):
            back = type(model).from_json(data)
            for keys in nets:
                assert back.predict(keys) == model.predict(keys), "from_json predicts otherwise"
    if hasattr(model, "signature"):
        sig = model.signature()
        assert isinstance(sig, str) and sig and sig == model.signature(), f"bad signature {sig!r}"
