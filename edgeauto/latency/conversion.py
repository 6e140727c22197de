"""An imported table timed with another runtime than its device's: refused, or converted.

A published table carries its authors' runtime. OFA's Note10 table was timed with TFLite, the
runtime now called LiteRT (:data:`RUNTIME_ALIASES`), so it prices LiteRT models as it is.
jh88/fbnet's Raspberry Pi 4 table was timed with TensorFlow 2 eager, layer call by layer call
from Python: a block of a few MFLOPs costs ~9 ms there, nearly all of it Python and op
dispatch, while the ``raspberry-pi-4`` profile runs LiteRT, where one invocation of the whole
network pays such costs once. Priced as it is, every block looks expensive (a search then
skips most layers) and a whole network is over-predicted several times over.

So :func:`check_runtime` refuses such a table for prediction, and ``edgeauto lut import
--convert-to litert`` converts it explicitly with a *measured* :class:`OverheadModel`:

1. here, the same blocks timed with TensorFlow 2 eager (:mod:`edgeauto.latency.eager`, the
   source's protocol) and with LiteRT give ``eager = fixed_here[groups] + scale x litert``:
   a fixed cost per block call (by structure: a grouped block makes more calls) and the
   ratio of the eager kernels' time to LiteRT's;
2. on the device, its own table against this machine's LiteRT times of the same blocks gives
   ``eager = fixed_device[groups] + k x litert_here``: the device's fixed cost per call;
3. the device's LiteRT time of a block is ``(eager - fixed_device[groups]) / scale``: the
   call overhead removed, the eager kernels' time turned into LiteRT's; never below the
   block's roofline floor (those are counted).

The model file holds the per-block measurements of step 1 (with this machine's CPU and
versions), so a conversion is reproducible from it; it is written once by
:func:`measure_overhead` and kept beside the tables. The converted table says so in
``provenance.conversion``, and runs copy that into the manifest and report.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError
from edgeauto.fileio import write_json
from edgeauto.latency.roofline import floor_ms, has_roofline
from edgeauto.latency.table import LatencyStat, LatencyTable
from edgeauto.spaces.base import SearchSpace
from edgeauto.spaces.key import OpKey

#: Former names of a runtime: a table timed with the old name prices the new one as it is.
RUNTIME_ALIASES = {"tflite": "litert"}
#: Source runtime -> runtimes it can be converted to.
CONVERSIONS: dict[str, tuple[str, ...]] = {"tensorflow2-eager": ("litert",)}


def canonical(runtime: str) -> str:
    """The runtime's current name (``tflite`` is LiteRT)."""
    return RUNTIME_ALIASES.get(runtime, runtime)


def check_runtime(table: LatencyTable, profile: DeviceProfile) -> None:
    """Refuse an imported table whose runtime is not the profile's (a one-line ConfigError
    naming the conversion); a converted table's runtime is its target's."""
    p = table.provenance
    if canonical(p.runtime) == profile.runtime:
        return
    fmt, _, where = p.source.partition(" ")
    raise ConfigError(
        f"latency table {table.path} of {p.device} was timed with {p.runtime}, but the "
        f"profile runs {profile.runtime}: its numbers would misprice {profile.runtime} models; "
        f"convert it: edgeauto lut import --format {fmt} {where or '<source>'} --device "
        f"{p.device} --space {p.space} --convert-to {profile.runtime}"
    )


@dataclass(frozen=True)
class BlockPair:
    """One block timed here with the source runtime and with the target runtime, in ms."""

    key: OpKey
    source_ms: float
    target_ms: float


@dataclass(frozen=True)
class OverheadModel:
    """Per-block times of ``space`` here with ``source_runtime`` and ``runtime`` (``pairs``),
    measured on ``cpu`` with ``versions`` on ``date``; see the module doc for the law."""

    source_runtime: str
    runtime: str
    space: str
    pairs: tuple[BlockPair, ...]
    cpu: str
    versions: dict[str, str] = field(default_factory=dict)
    date: str = ""

    def fit_here(self) -> AffineFit:
        """Step 1: ``source = fixed[groups] + scale x target`` on this machine."""
        return fit_affine({p.key: p.source_ms for p in self.pairs},
                          {p.key: p.target_ms for p in self.pairs})  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (keys as :meth:`OpKey.to_json`)."""
        pairs = [{"key": p.key.to_json(), "source_ms": p.source_ms, "target_ms": p.target_ms}
                 for p in self.pairs]  # fmt: skip
        return {**asdict(self), "pairs": pairs}

    @classmethod
    def load(cls, path: Path) -> OverheadModel:
        """Read a model written by :meth:`save`; a bad file is a one-line ConfigError."""
        try:
            data = json.loads(path.read_text())
            pairs = tuple(
                BlockPair(OpKey.from_json(p["key"]), p["source_ms"], p["target_ms"])
                for p in data.pop("pairs")
            )
            return cls(**data, pairs=pairs)
        except (OSError, ValueError, TypeError, KeyError, ConfigError) as exc:
            raise ConfigError(
                f"overhead model {path} cannot be read ({type(exc).__name__}: {exc}); delete "
                "it to measure it again"
            ) from None

    def save(self, path: Path) -> Path:
        """Write atomically."""
        write_json(path, self.to_json())
        return path


@dataclass(frozen=True)
class AffineFit:
    """``y = fixed[groups] + scale x x`` in relative least squares, and its RMSPE."""

    fixed_ms: dict[str, float]
    scale: float
    rmspe: float
    blocks: int


def fit_affine(y: dict[OpKey, float], x: dict[OpKey, float]) -> AffineFit:
    """Least squares in relative error of ``y = fixed[groups] + scale x x`` over the keys
    both hold, one intercept per group count."""
    keys = sorted(k for k in y if k in x)
    groups = sorted({k.groups for k in keys})
    if len(keys) < 2 * len(groups) + 1:
        raise ConfigError(
            f"an overhead fit needs >= {2 * len(groups) + 1} shared blocks, got {len(keys)}; "
            "measure the space's blocks on this machine first (edgeauto profile)"
        )
    ys = np.array([y[k] for k in keys])
    cols = [[1.0 if k.groups == g else 0.0 for k in keys] for g in groups]
    a = np.c_[np.array(cols).T, [x[k] for k in keys]] / ys[:, None]
    coef, *_ = np.linalg.lstsq(a, np.ones_like(ys), rcond=None)
    rmspe = float(np.sqrt(np.mean((a @ coef - 1.0) ** 2)))
    fixed = {str(g): float(c) for g, c in zip(groups, coef)}
    return AffineFit(fixed, float(coef[-1]), rmspe, len(keys))


def model_path(root: Path, source_runtime: str, runtime: str, space: str) -> Path:
    """Where a space's overhead model lives: ``<tables>/conversions/<src>-to-<dst>/``."""
    return root / "conversions" / f"{source_runtime}-to-{runtime}" / f"{space}.json"


def convert_table(table: LatencyTable, model: OverheadModel, profile: DeviceProfile) -> int:
    """Convert ``table``'s measured blocks in place (steps 2 and 3 of the module doc);
    returns how many landed below their roofline floor and were raised to it. Estimated
    entries are dropped: the importer estimates them again from the converted blocks."""
    if table.provenance.runtime != model.source_runtime:
        raise ConfigError(
            f"the overhead model converts {model.source_runtime}, the table was timed with "
            f"{table.provenance.runtime}; use a model for that runtime"
        )
    here = model.fit_here()
    for key in table.estimated:
        del table.entries[key]
    table.estimated = set()
    target = {p.key: p.target_ms for p in model.pairs}
    device = fit_affine({k: s.median_ms for k, s in table.entries.items()}, target)
    raised = 0
    for key, stat in list(table.entries.items()):
        ms = (stat.median_ms - device.fixed_ms[str(key.groups)]) / here.scale
        floor = (floor_ms(key, profile) if has_roofline(profile) else None) or 1e-6
        if ms < floor:
            ms, raised = floor, raised + 1
        table.entries[key] = LatencyStat(ms, ms * stat.p90_ms / stat.median_ms, stat.runs)
    _label(table, model, here, device, raised)
    return raised


def _label(
    table: LatencyTable, model: OverheadModel, here: AffineFit, device: AffineFit, raised: int
) -> None:
    """Provenance of a converted table: its runtime becomes the target's, and says how."""
    record = {
        "from_runtime": model.source_runtime, "to_runtime": model.runtime,
        "scale": here.scale, "fixed_here_ms": here.fixed_ms, "fit_here_rmspe": here.rmspe,
        "fixed_device_ms": device.fixed_ms, "fit_device_rmspe": device.rmspe,
        "blocks": here.blocks, "raised_to_floor": raised, "measured_on": model.cpu,
        "versions": model.versions, "measured": model.date,
    }  # fmt: skip
    note = (
        f" Converted from {model.source_runtime} to {model.runtime}: block = (source - "
        f"device fixed cost per call) / {here.scale:.3f} (eager/LiteRT kernel time, measured "
        f"on {model.cpu}); see edgeauto/latency/conversion.py."
    )
    p = table.provenance
    table.provenance = replace(p, runtime=model.runtime, conversion=record, notes=p.notes + note)


def measure_overhead(
    space: str, keys: list[OpKey], host_table: LatencyTable, rounds: int = 12
) -> OverheadModel:
    """Time ``keys`` here with TensorFlow 2 eager and pair them with ``host_table``'s times
    (the target runtime, this machine). Each eager time is the least of ``rounds``
    published-protocol means: other load on this machine only ever adds time."""
    import tensorflow as tf

    from edgeauto.latency.eager import build_block, time_eager

    pairs = []
    for key in sorted(k for k in keys if k in host_table.entries):
        block = build_block(key)
        eager = min(time_eager(block, (key.h, key.w, key.cin)) for _ in range(rounds))
        pairs.append(BlockPair(key, eager, host_table.entries[key].median_ms))
    p = host_table.provenance
    versions = {"tensorflow": tf.__version__, p.runtime: p.runtime_version}
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return OverheadModel("tensorflow2-eager", p.runtime, space, tuple(pairs), p.cpu_model,
                         versions, when)  # fmt: skip


def load_or_measure(
    space: SearchSpace, source_runtime: str, runtime: str, root: Path
) -> OverheadModel:
    """The overhead model of ``space`` kept under ``root`` (``model_path``), or, when there is
    none, measured now (this machine's LiteRT table of the space is filled first: a few
    minutes) and saved there."""
    if source_runtime not in CONVERSIONS or runtime not in CONVERSIONS[source_runtime]:
        known = ", ".join(f"{s} -> {'/'.join(t)}" for s, t in CONVERSIONS.items())
        raise ConfigError(
            f"no conversion from {source_runtime} to {runtime} (known: {known}); import "
            "without --convert-to, or time the device with its own runtime (edgeauto profile)"
        )
    path = model_path(root, source_runtime, runtime, space.name)
    if path.exists():
        return OverheadModel.load(path)
    from edgeauto.devices.profile import load_profile
    from edgeauto.latency.builder import TimingSettings, fill_table, make_timer, open_device_table

    host = load_profile("host").model_copy(update={"runtime": runtime})
    keys = [k for k in space.all_keys() if k.kind == "mbconv"]
    timer = make_timer(host, TimingSettings())
    try:
        table = open_device_table(host, space.name, timer, root)
        fill_table(table, keys, timer)
    finally:
        timer.close()
    model = measure_overhead(space.name, keys, table)
    model.save(path)
    return model
