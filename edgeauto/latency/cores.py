"""Which cores a device's timings run on: a profile's ``cpu_affinity``, resolved.

``auto`` (this machine only) times one fixed reference model on each core this process may
use, in interleaved rounds, and keeps the fastest cores whose rounds agree within
:data:`~edgeauto.timing.REPEATABLE`, one per thread. The survey is done once per machine and
runtime and cached in the user's cache folder (``$EDGEAUTO_CACHE``, else
``$XDG_CACHE_HOME/edgeauto``, else ``~/.cache/edgeauto``): a later run re-times nothing, and
so uses the cores its tables were built on. Measured on this project's 2-vCPU host: the same
model took 0.63 ms pinned to core 0 and 1.03 ms on core 1; unpinned, rounds hopped between
them.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from edgeauto.devices.profile import AUTO, DeviceProfile, host_cpu_name
from edgeauto.errors import ConfigError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import Runtime, get_runtime
from edgeauto.fileio import cache_dir, write_json
from edgeauto.timing import REPEATABLE, allowed_cores, pinned, spread

SURVEY_ROUNDS = 7
SURVEY_RUNS = 60
_MEMO: dict[str, CoreSurvey] = {}


@dataclass(frozen=True)
class CoreSurvey:
    """Each core's median time of the reference model (ms) and the spread of its rounds."""

    cpu_model: str
    runtime: str
    runtime_version: str
    speeds_ms: dict[int, float]
    spreads: dict[int, float]
    date: str

    def fastest(self, n: int) -> tuple[int, ...]:
        """The ``n`` fastest cores, steady ones (spread within REPEATABLE) first."""
        ranked = sorted(self.speeds_ms, key=lambda c: (self.spreads[c] > REPEATABLE,
                                                       self.speeds_ms[c]))  # fmt: skip
        return tuple(sorted(ranked[:n]))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (core numbers as strings, as JSON keys must be)."""
        data = asdict(self)
        data["speeds_ms"] = {str(c): v for c, v in self.speeds_ms.items()}
        data["spreads"] = {str(c): v for c, v in self.spreads.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CoreSurvey:
        """Inverse of :meth:`to_json`."""
        speeds = {int(c): float(v) for c, v in data["speeds_ms"].items()}
        spreads = {int(c): float(v) for c, v in data["spreads"].items()}
        fields = {k: data[k] for k in ("cpu_model", "runtime", "runtime_version", "date")}
        return cls(speeds_ms=speeds, spreads=spreads, **fields)


def resolve_cores(profile: DeviceProfile) -> tuple[int, ...] | None:
    """The cores the profile's timings run on; None when the profile does not pin.

    A local profile's explicit cores must be ones this process may use; ``auto`` surveys.
    """
    cores = profile.cpu_affinity
    if cores is None:
        return None
    if cores != AUTO:
        if profile.connection.kind == "local" and not set(cores) <= set(allowed_cores()):
            raise ConfigError(
                f"device {profile.name}: cpu_affinity {list(cores)} names cores this process "
                f"cannot use (allowed: {list(allowed_cores())}); fix cpu_affinity or use auto"
            )
        return tuple(sorted(cores))
    allowed = allowed_cores()
    if len(allowed) <= profile.threads:
        return allowed  # nothing to choose between
    return survey(profile.runtime).fastest(profile.threads)


def survey(runtime_name: str) -> CoreSurvey:
    """This machine's per-core speeds for ``runtime_name``: memoised, cached on disk, or
    measured now (a few seconds, once)."""
    allowed = allowed_cores()
    runtime = get_runtime(runtime_name)
    key = f"{runtime.name}-{runtime.version()}-{'_'.join(map(str, allowed))}"
    if key in _MEMO:
        return _MEMO[key]
    path = cache_dir() / f"cores-{key}.json"
    found = _load(path)
    if found is None or found.cpu_model != host_cpu_name():
        found = _measure(runtime, allowed)
        write_json(path, found.to_json())
    _MEMO[key] = found
    return found


def _load(path: Path) -> CoreSurvey | None:
    try:
        return CoreSurvey.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent or damaged: measure again


def reference_model() -> nn.Module:
    """A fixed small CNN at 3x64x64 (~0.08 ms on one x86 core), mostly compute rather than
    invocation cost: conv, depthwise, pointwise, pool, FC."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 3, 1, 1, groups=32),
        nn.ReLU(), nn.Conv2d(32, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, 2, 1, groups=64),
        nn.ReLU(), nn.Conv2d(64, 128, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(128, 10),
    ).train(False)  # fmt: skip


def _measure(runtime: Runtime, cores: tuple[int, ...]) -> CoreSurvey:
    """Interleaved rounds (core 0, core 1, ..., core 0, ...) so a drift in the machine's load
    spreads over every core instead of biasing one."""
    medians: dict[int, list[float]] = {c: [] for c in cores}
    with tempfile.TemporaryDirectory(prefix="edgeauto-cores-") as tmp:
        onnx_path = export_onnx(reference_model(), (3, 64, 64), Path(tmp) / "ref.onnx")
        art = runtime.from_onnx(onnx_path, Path(tmp) / f"ref{runtime.suffix}")
        for _ in range(SURVEY_ROUNDS):
            for c in cores:
                with pinned([c]):
                    medians[c].append(statistics.median(runtime.sample(art, 1, SURVEY_RUNS, 10)))
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return CoreSurvey(
        host_cpu_name(), runtime.name, runtime.version(),
        {c: statistics.median(m) for c, m in medians.items()},
        {c: spread(m) or 0.0 for c, m in medians.items()}, when,
    )  # fmt: skip
