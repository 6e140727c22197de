"""Build latency tables by timing each block alone with the device's real runtime.

Every block is exported to ONNX, converted to the runtime's artifact, and timed: median and
p90 of ``runs`` runs after ``warmup``. The table is saved atomically every few keys, so an
interrupted run resumes where it stopped and a re-run skips measured keys.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError, RunnerError
from edgeauto.export.onnx import export_onnx
from edgeauto.latency.key import OpKey
from edgeauto.latency.table import LatencyStat, LatencyTable, Provenance
from edgeauto.runtimes import Runtime, get_runtime
from edgeauto.spaces.modules import Stem, block_for_key
from edgeauto.version import __version__

Progress = Callable[[int, int, OpKey | None], None]
SAVE_EVERY = 8


@dataclass(frozen=True)
class ProfileSettings:
    """How to time: runs and warm-up runs per session, sessions (rounds) per key."""

    runs: int = 100
    warmup: int = 30
    rounds: int = 3

    def __post_init__(self) -> None:
        if self.runs < 30:
            raise ConfigError(f"runs must be >= 30 for a stable median and p90, got {self.runs}")
        if self.warmup < 1:
            raise ConfigError(f"warmup must be >= 1, got {self.warmup}")
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds}")


class BlockTimer:
    """Times single modules with one runtime on the local machine."""

    def __init__(self, runtime: Runtime, threads: int, settings: ProfileSettings) -> None:
        self.runtime, self.threads, self.settings = runtime, threads, settings
        self._dir = tempfile.TemporaryDirectory(prefix="edgeauto-profile-")

    def time_module(self, module: nn.Module, input_shape: tuple[int, int, int]) -> LatencyStat:
        """Export, convert and time ``module`` for a batch-1 input of ``input_shape``."""
        work = Path(self._dir.name)
        onnx_path = export_onnx(module.train(False), input_shape, work / "block.onnx")
        artifact = self.runtime.from_onnx(onnx_path, work / f"block{self.runtime.suffix}")
        s = self.settings
        return self.runtime.measure(artifact, self.threads, s.runs, s.warmup, s.rounds)

    def time_key(self, key: OpKey) -> LatencyStat:
        return self.time_module(block_for_key(key), (key.cin, key.h, key.w))

    def time_overhead(self) -> LatencyStat:
        """A one-channel 3x3 conv on a 1x1 input: the fixed cost of invoking any model."""
        return self.time_module(Stem(1, 1, 1), (1, 1, 1))


def cpu_model() -> str:
    """The CPU model name of this machine (best effort)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def new_table(
    profile: DeviceProfile, runtime: Runtime, space: str, s: ProfileSettings
) -> LatencyTable:
    """An empty table with this machine's provenance."""
    prov = Provenance(
        device=profile.name, cpu_model=cpu_model() if profile.connection.kind == "local" else profile.spec.cpu,
        runtime=runtime.name, runtime_version=runtime.version(), threads=profile.threads,
        runs=s.runs * s.rounds, warmup=s.warmup, space=space,
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), edgeauto_version=__version__,
    )  # fmt: skip
    return LatencyTable(prov)


def check_compatible(table: LatencyTable, profile: DeviceProfile, runtime: Runtime) -> None:
    """A table is extended only with measurements taken the same way."""
    p = table.provenance
    if (p.device, p.runtime, p.threads) != (profile.name, runtime.name, profile.threads):
        raise ConfigError(
            f"latency table {table.path} was measured for ({p.device}, {p.runtime}, {p.threads} "
            f"threads), not ({profile.name}, {runtime.name}, {profile.threads} threads); "
            "delete it or pass another --tables directory"
        )


def fill_table(
    table: LatencyTable, keys: Iterable[OpKey], timer: BlockTimer, progress: Progress | None = None
) -> int:
    """Measure every key of ``keys`` missing from ``table``; save as it goes. Returns count."""
    todo = table.missing(keys)
    if table.overhead is None:
        table.overhead = timer.time_overhead()
    for i, key in enumerate(todo, 1):
        if progress:
            progress(i - 1, len(todo), key)
        table.entries[key] = timer.time_key(key)
        if table.path and (i % SAVE_EVERY == 0 or i == len(todo)):
            table.save()
    if progress:
        progress(len(todo), len(todo), None)
    return len(todo)


def local_timer(profile: DeviceProfile, settings: ProfileSettings) -> BlockTimer:
    """A timer for a profile reached locally; other connections need their runner."""
    if profile.connection.kind != "local":
        raise RunnerError(
            f"device {profile.name!r} is reached over {profile.connection.kind}; this build "
            "profiles local devices only (remote SSH/ADB runners come with the table builder "
            "for real devices); profile on the device itself or use --device host"
        )
    return BlockTimer(get_runtime(profile.runtime), profile.threads, settings)
