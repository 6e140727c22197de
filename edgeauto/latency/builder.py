"""Build latency tables by timing each block alone with the device's real runtime.

Every block is exported to ONNX and converted to the runtime's artifact on this machine, then
timed on the device by its runner (local, SSH or ADB): median and p90 of ``runs`` runs after
``warmup``. Blocks go to the runner in batches (one round trip per batch on remote devices) and
the table is saved atomically after each batch, so an interrupted run resumes where it stopped
and a re-run skips measured keys.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError, RunnerError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.quantize import export_int8_timed
from edgeauto.export.runtimes import Runtime, get_runtime
from edgeauto.fileio import locked
from edgeauto.killpoints import kill_point
from edgeauto.latency.cores import survey
from edgeauto.latency.runners import DeviceInfo, Runner, get_runner
from edgeauto.latency.store import PRECISIONS, load_if_exists, table_path
from edgeauto.latency.table import LatencyStat, LatencyTable, Provenance, WholeModelRun
from edgeauto.spaces.base import Arch, SearchSpace
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.modules import Stem, block_for_key
from edgeauto.timing import RelativeStat, allowed_cores
from edgeauto.version import __version__

Progress = Callable[[int, int, OpKey | None], None]


#: Rounds of a timing relative to a reference (:meth:`BlockTimer.time_beside`): the ratio is
#: a median of per-round ratios, which needs a few of them.
RELATIVE_ROUNDS = 5


@dataclass(frozen=True)
class TimingSettings:
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
    """Exports and converts single modules here, and times them on the device via a runner.

    Conversion always runs on this machine (the device needs only its runtime); the
    :class:`~edgeauto.latency.runners.Runner` decides where the artifacts are timed.
    ``precision="int8"`` converts every module to a full-integer LiteRT model instead
    (:func:`check_precision`: LiteRT only).
    """

    def __init__(
        self,
        runtime: Runtime,
        threads: int,
        settings: TimingSettings,
        runner: Runner,
        precision: str = "fp32",
    ) -> None:
        self.runtime, self.threads, self.settings, self.runner = runtime, threads, settings, runner
        self.precision = precision
        self._dir = tempfile.TemporaryDirectory(prefix="edgeauto-profile-")

    def export(
        self,
        module: nn.Module,
        input_shape: tuple[int, int, int],
        name: str,
        calibration: np.ndarray | None = None,
    ) -> Path:
        """``module`` converted as this timer times it (runtime, precision), in its work
        folder under ``name``: the file is replaced by the next export of that name."""
        work = Path(self._dir.name)
        onnx_path = export_onnx(module.train(False), input_shape, work / f"{name}.onnx")
        if self.precision == "int8":  # calibrated on fixed-seed random inputs unless given
            return export_int8_timed(onnx_path, work / f"{name}.tflite", input_shape, calibration)
        return self.runtime.from_onnx(onnx_path, work / f"{name}{self.runtime.suffix}")

    def _measure(self, artifacts: list[Path]) -> list[LatencyStat]:
        s = self.settings
        return self.runner.measure_all(artifacts, self.threads, s.runs, s.warmup, s.rounds)

    def time_module(
        self,
        module: nn.Module,
        input_shape: tuple[int, int, int],
        calibration: np.ndarray | None = None,
    ) -> LatencyStat:
        """Export, convert and time ``module`` for a batch-1 input of ``input_shape``.

        ``calibration`` (NCHW float32 inputs) sets an int8 model's scales; without it they
        come from fixed-seed random inputs. fp32 ignores it.
        """
        return self._measure([self.export(module, input_shape, "block", calibration)])[0]

    def time_beside(
        self,
        modules: Sequence[nn.Module],
        input_shape: tuple[int, int, int],
        reference: Path,
        calibration: np.ndarray | None = None,
    ) -> list[RelativeStat]:
        """Whole ``modules`` timed relative to the ``reference`` artifact in the same
        interleaved rounds (:meth:`Runner.measure_beside`): figures the machine's drift
        leaves alone."""
        arts = [
            self.export(m, input_shape, f"beside{i}", calibration) for i, m in enumerate(modules)
        ]
        s, rounds = self.settings, max(self.settings.rounds, RELATIVE_ROUNDS)
        return self.runner.measure_beside(arts, reference, self.threads, s.runs, s.warmup, rounds)

    def time_keys(self, keys: Sequence[OpKey]) -> list[LatencyStat]:
        """Time the block of every key in one runner call (one round trip on remote devices)."""
        artifacts = [
            self.export(block_for_key(k), (k.cin, k.h, k.w), f"block{i}")
            for i, k in enumerate(keys)
        ]
        return self._measure(artifacts)

    def time_key(self, key: OpKey) -> LatencyStat:
        return self.time_keys([key])[0]

    def time_networks(
        self, modules: Sequence[nn.Module], input_shape: tuple[int, int, int]
    ) -> list[LatencyStat]:
        """Time whole networks end to end, in one runner call (one round trip)."""
        artifacts = [self.export(m, input_shape, f"net{i}") for i, m in enumerate(modules)]
        return self._measure(artifacts)

    def time_overhead(self) -> LatencyStat:
        """A one-channel 3x3 conv on a 1x1 input: the fixed cost of invoking any model."""
        return self.time_module(Stem(1, 1, 1), (1, 1, 1))

    def close(self) -> None:
        """Close the runner and remove the converted blocks."""
        self.runner.close()
        self._dir.cleanup()


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
    profile: DeviceProfile,
    runtime: Runtime,
    space: str,
    s: TimingSettings,
    info: DeviceInfo | None = None,
    cores: tuple[int, ...] | None = None,
    precision: str = "fp32",
) -> LatencyTable:
    """An empty table whose provenance names the device's CPU, runtime version, precision
    and the cores its figures are timed on.

    ``info`` is what the device's runner reported (:meth:`Runner.describe`); without it the
    figures come from this machine (local devices) or the profile's spec.
    """
    if info is None:
        local = profile.connection.kind == "local"
        info = DeviceInfo(cpu_model() if local else profile.spec.cpu, runtime.version())
    prov = Provenance(
        device=profile.name, cpu_model=info.cpu_model, runtime=runtime.name,
        runtime_version=info.runtime_version, threads=profile.threads, runs=s.runs * s.rounds,
        warmup=s.warmup, space=space, date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        edgeauto_version=__version__, cpu_affinity=list(cores) if cores else None,
        core_speeds_ms=_core_speeds(profile, runtime) if cores else None, precision=precision,
    )  # fmt: skip
    return LatencyTable(prov)


def _core_speeds(profile: DeviceProfile, runtime: Runtime) -> dict[str, float] | None:
    """The survey behind ``cpu_affinity: auto`` (None for listed cores)."""
    if profile.cpu_affinity != "auto" or len(allowed_cores()) <= profile.threads:
        return None
    return {str(c): ms for c, ms in survey(runtime.name).speeds_ms.items()}


def check_compatible(
    table: LatencyTable,
    profile: DeviceProfile,
    runtime: Runtime,
    space: str | None = None,
    runtime_version: str | None = None,
    cores: tuple[int, ...] | None = None,
    precision: str | None = None,
) -> None:
    """A table is used and extended only with measurements taken the same way: same device,
    runtime, threads, cores and (when given) space, runtime version and precision."""
    p = table.provenance
    check_cores(table, cores)
    if precision is not None and p.precision != precision:
        raise ConfigError(
            f"latency table {table.path} holds {p.precision} timings, not {precision} (other "
            f"kernels: they must not mix); run with --precision {p.precision}, or move the "
            f"table away and re-run edgeauto profile --device {p.device} --space {p.space} "
            f"--precision {precision}"
        )
    if (p.device, p.runtime, p.threads) != (profile.name, runtime.name, profile.threads):
        raise ConfigError(
            f"latency table {table.path} was measured for ({p.device}, {p.runtime}, {p.threads} "
            f"threads), not ({profile.name}, {runtime.name}, {profile.threads} threads); "
            "delete it or pass another --tables directory"
        )
    if space is not None and p.space != space:
        raise ConfigError(
            f"latency table {table.path} is for space {p.space!r}, not {space!r}; its keys "
            f"would not match: delete it or re-run edgeauto profile --space {space}"
        )
    if runtime_version is not None and p.runtime_version != runtime_version:
        raise ConfigError(
            f"latency table {table.path} was measured with {p.runtime} {p.runtime_version}, but "
            f"{runtime_version} runs here; numbers of two versions must not mix: delete the "
            f"table and re-run edgeauto profile, or install {p.runtime} {p.runtime_version}"
        )


def check_cores(table: LatencyTable, cores: tuple[int, ...] | None) -> None:
    """A measured table is used only on the cores it was timed on (two cores of one machine
    differ by up to 1.6x): one line naming the fix otherwise. Imported tables are exempt."""
    p = table.provenance
    built = tuple(p.cpu_affinity) if p.cpu_affinity else None
    if p.imported or cores is None or built == cores:
        return
    was = f"on cores {list(built)}" if built else "unpinned"
    raise ConfigError(
        f"latency table {table.path} was timed {was}, but {p.device} now times on cores "
        f"{list(cores)}; set cpu_affinity: {list(built) if built else list(cores)} in the "
        f"profile, or rebuild the table (delete it, or pass another --tables folder)"
    )


def fill_table(
    table: LatencyTable,
    keys: Iterable[OpKey],
    timer: BlockTimer,
    progress: Progress | None = None,
    batch: int | None = None,
) -> int:
    """Measure every key of ``keys`` missing from ``table``; returns how many were measured.

    Keys go to the runner ``batch`` at a time (default: the runner's ``batch_size``) and the
    table is saved atomically after the overhead and after every batch. A failure mid-way
    (a cut SSH connection, say) raises with every finished batch on disk, and a re-run skips
    them: only missing keys are measured.
    """
    todo = table.missing(keys)
    size = batch or timer.runner.batch_size
    if table.overhead is None:
        table.overhead = timer.time_overhead()
        save_table(table)
    for start in range(0, len(todo), size):
        chunk = todo[start : start + size]
        if progress:
            progress(start, len(todo), chunk[0])
        stats = timer.time_keys(chunk)  # all of the batch or an error: no half-filled batch
        table.entries.update(zip(chunk, stats))
        save_table(table)
        kill_point("table_batch")
    if progress:
        progress(len(todo), len(todo), None)
    return len(todo)


def save_table(table: LatencyTable) -> None:
    """Save under the table's lock, first taking in what another builder saved meanwhile."""
    if table.path:
        with locked(table.path):
            merge_saved(table)
            table.save()


def merge_saved(table: LatencyTable) -> None:
    """Add to ``table`` the entries (and overhead) its file on disk has and it lacks.

    Two processes filling the same table (two ``edgeauto profile`` or runs on one device)
    then both keep what the other measured instead of the last save winning. A file measured
    another way (other device, runtime, threads or space) is left to overwrite as before.
    """
    assert table.path is not None  # callers check
    try:
        disk = load_if_exists(table.path)
    except ConfigError:
        return  # a damaged file is replaced by this (valid) table
    mine, theirs = table.provenance, disk.provenance if disk else None
    if disk is None or theirs is None:
        return
    fields = ("device", "runtime", "threads", "space", "cpu_affinity", "precision")
    if any(getattr(theirs, f) != getattr(mine, f) for f in fields):
        return
    for key, stat in disk.entries.items():
        table.entries.setdefault(key, stat)
    table.overhead = table.overhead or disk.overhead


def check_precision(profile: DeviceProfile, precision: str) -> None:
    """``precision`` is one of :data:`PRECISIONS`, and int8 only on a LiteRT device (int8
    models are full-integer ``.tflite`` files)."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}; fix --precision"
        )
    if precision == "int8" and profile.runtime != "litert":
        raise ConfigError(
            f"--precision int8 needs a litert device (full-integer .tflite), but {profile.name} "
            f"runs {profile.runtime}; drop --precision int8 or pick a litert device"
        )


def make_timer(
    profile: DeviceProfile, settings: TimingSettings, precision: str = "fp32"
) -> BlockTimer:
    """A timer for the profile's device, reached through its connection's runner, converting
    modules at ``precision``.

    Close it when done (:meth:`BlockTimer.close`).
    """
    check_precision(profile, precision)
    runner = get_runner(profile)
    runtime = get_runtime(profile.runtime)
    return BlockTimer(runtime, profile.threads, settings, runner, precision)


def open_device_table(
    profile: DeviceProfile, space: str, timer: BlockTimer, root: Path | None = None
) -> LatencyTable:
    """The device's table for ``space`` at the timer's precision from ``root`` (default
    ``hw_latency/``), or a new one.

    A new table asks the device for its CPU and runtime version (and so fails early, before
    any block is converted, when the device cannot be reached or lacks the runtime). Nothing
    is written until something is measured.
    """
    path = table_path(profile, space, root, timer.precision)
    table = load_if_exists(path)
    if table is None:
        info = timer.runner.describe()
        cores = timer.runner.cores
        table = new_table(
            profile, timer.runtime, space, timer.settings, info, cores, timer.precision
        )
        table.path = path
    # Only this machine's runtime version is known without a round trip to the device.
    version = timer.runtime.version() if profile.connection.kind == "local" else None
    check_compatible(
        table, profile, timer.runtime, space, version, timer.runner.cores, timer.precision
    )
    return table


def validate_table(
    table: LatencyTable,
    space: SearchSpace,
    timer: BlockTimer,
    n: int,
    progress: Progress | None = None,
) -> list[WholeModelRun]:
    """Measure ``n`` random archs of ``space`` end to end and add them to ``table.validation``.

    Each whole network is exported, converted and timed like a block (same runtime, threads
    and settings). Archs are new on every call (the seed follows the runs already stored) and
    the table is saved after every runner batch, so an interrupted call keeps what it
    measured. Every block of the archs must be in the table (profile the space first).
    """
    if n < 1:
        raise ConfigError(f"--validate must be >= 1 networks, got {n}")
    archs = _new_archs(table, space, n)
    missing = table.missing(k for a in archs for k in space.blocks(a))
    if missing:
        table.lookup(missing[0])  # raises TableMiss naming the fix, before anything is timed
    added: list[WholeModelRun] = []
    for start in range(0, len(archs), timer.runner.batch_size):
        if progress:
            progress(start, len(archs), None)
        chunk = archs[start : start + timer.runner.batch_size]
        stats = timer.time_networks([space.build(a) for a in chunk], space.input_shape)
        when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        for arch, st in zip(chunk, stats):
            keys = tuple(space.blocks(arch))
            added.append(
                WholeModelRun(keys, st.median_ms, st.p90_ms, st.runs, when, arch.to_json())
            )
        table.validation.extend(added[-len(chunk) :])
        save_table(table)
    if progress:
        progress(len(archs), len(archs), None)
    return added


def _new_archs(table: LatencyTable, space: SearchSpace, n: int) -> list[Arch]:
    """``n`` distinct random archs not yet in ``table.validation`` (fewer if the space is small)."""
    rng = random.Random(len(table.validation))
    seen = {json.dumps(v.arch, sort_keys=True) for v in table.validation}
    archs: list[Arch] = []
    for _ in range(50 * n):  # small spaces run out of new archs: stop, do not loop forever
        arch = space.sample(rng)
        text = json.dumps(arch.to_json(), sort_keys=True)
        if text not in seen:
            seen.add(text)
            archs.append(arch)
            if len(archs) == n:
                break
    return archs


def local_timer(profile: DeviceProfile, settings: TimingSettings) -> BlockTimer:
    """A timer for a profile reached locally (:func:`make_timer` serves every connection)."""
    if profile.connection.kind != "local":
        raise RunnerError(
            f"device {profile.name!r} is reached over {profile.connection.kind}; local_timer "
            "times this machine only; use make_timer(profile, settings) for its runner"
        )
    return make_timer(profile, settings)
