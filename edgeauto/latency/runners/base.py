"""The :class:`Runner` role: time artifacts on a device, whichever way the device is reached.

One runner serves both table building (many small block models per call, :meth:`measure_many`)
and verification of a finished artifact (:meth:`measure`). The runtime follows the artifact's
suffix: ``.tflite`` is timed with LiteRT, ``.onnx`` with ONNX Runtime.

Example:
    >>> with get_runner(load_profile("raspberry-pi-4")) as runner:
    ...     stat = runner.measure(Path("model.tflite"), threads=4, runs=100, warmup=20)
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Protocol, TypeVar

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import RunnerError
from edgeauto.latency.cores import resolve_cores
from edgeauto.registry import Registry
from edgeauto.timing import LatencyStat, RelativeStat

#: Times an unrepeatable measurement is taken again before it is reported as such.
RETRIES = 2

#: Artifact suffix -> runtime name, as registered in :data:`edgeauto.export.runtimes.RUNTIMES`.
SUFFIX_RUNTIME: dict[str, str] = {".tflite": "litert", ".onnx": "onnxruntime"}


@dataclass(frozen=True)
class DeviceInfo:
    """What a runner reports about its device, for a table's provenance."""

    cpu_model: str
    runtime_version: str
    #: The version of the device's Python that runs edgeauto's scripts; None: it has none.
    python: str | None = None


class Runner(abc.ABC):
    """Times artifacts on one device. Registered in :data:`RUNNERS` under its connection kind.

    Subclasses implement :meth:`measure_many` (one device round trip for a batch of models,
    pinned to :attr:`cores`) and :meth:`describe`. Callers time with :meth:`measure_all` or
    :meth:`measure`, which re-take an unrepeatable figure. Every failure to reach or use the
    device is a :class:`RunnerError` whose one-line message names the device and the fix.
    """

    kind: ClassVar[str]
    #: Blocks per :meth:`measure_many` call when building a table; the table is saved after
    #: each call, so this is also what a cut connection can lose.
    batch_size: ClassVar[int] = 8

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        #: The cores every timing runs on (the profile's ``cpu_affinity``), None: unpinned.
        self.cores: tuple[int, ...] | None = resolve_cores(profile)

    @abc.abstractmethod
    def measure_many(
        self, artifacts: Sequence[Path], threads: int, runs: int, warmup: int, rounds: int = 1
    ) -> list[LatencyStat]:
        """Median/p90 of ``runs`` batch-1 runs after ``warmup``, per artifact, in order.

        ``rounds`` fresh sessions per artifact are pooled. Either every artifact is timed or
        a :class:`RunnerError` is raised: callers never see a partial batch.
        """

    @abc.abstractmethod
    def describe(self) -> DeviceInfo:
        """CPU model and the version of the profile's runtime, as found on the device."""

    def run_python(self, args: Sequence[str], files: dict[str, Path]) -> str | None:
        """Run ``python ARGS`` on the device in a fresh folder holding ``files`` (name there ->
        path here); its stdout, or None where the device has no Python (a phone).

        A failure is a :class:`RunnerError` naming the device and the script's last words.
        """
        return None  # a hook: only runners whose devices run Python override it

    def measure_all(
        self, artifacts: Sequence[Path], threads: int, runs: int, warmup: int, rounds: int = 1
    ) -> list[LatencyStat]:
        """:meth:`measure_many`, then each figure whose rounds disagree (beyond
        :data:`~edgeauto.timing.REPEATABLE`) taken again, up to :data:`RETRIES` times; the
        steadiest take is kept. One still unsteady says so in its ``repeatability``."""

        def take(picked: Sequence[Path]) -> list[LatencyStat]:
            return self.measure_many(picked, threads, runs, warmup, rounds)

        return _retaken(artifacts, take)

    def measure_beside(
        self, artifacts: Sequence[Path], reference: Path, threads: int, runs: int, warmup: int,
        rounds: int,
    ) -> list[RelativeStat]:  # fmt: skip
        """Each artifact timed relative to ``reference`` (:class:`RelativeStat`): ``rounds``
        interleaved rounds of one fresh session each, artifacts then reference. A figure
        whose ratios disagree is taken again (as in :meth:`measure_all`)."""
        check_counts(runs, warmup, rounds)

        def take(picked: Sequence[Path]) -> list[RelativeStat]:
            return self._beside(picked, reference, threads, runs, warmup, rounds)

        return _retaken(artifacts, take)

    def _beside(
        self, artifacts: Sequence[Path], reference: Path, threads: int, runs: int, warmup: int,
        rounds: int,
    ) -> list[RelativeStat]:  # fmt: skip
        takes = [
            self.measure_many([*artifacts, reference], threads, runs, warmup, 1)
            for _ in range(rounds)
        ]
        return [
            RelativeStat.from_rounds([(take[i], take[-1]) for take in takes])
            for i in range(len(artifacts))
        ]

    def measure(
        self, artifact: Path, threads: int, runs: int, warmup: int, rounds: int = 1
    ) -> LatencyStat:
        """Time one artifact (see :meth:`measure_all`)."""
        return self.measure_all([artifact], threads, runs, warmup, rounds)[0]

    def close(self) -> None:
        """Release connections or temp files (nothing by default)."""
        return None  # a hook, not abstract: most runners hold nothing between calls

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Figure(Protocol):
    @property
    def repeatable(self) -> bool: ...
    @property
    def repeatability(self) -> float | None: ...


F = TypeVar("F", bound=_Figure)


def _retaken(artifacts: Sequence[Path], take: Callable[[Sequence[Path]], list[F]]) -> list[F]:
    """``take(artifacts)``, then each figure whose rounds disagree (beyond
    :data:`~edgeauto.timing.REPEATABLE`) taken again, up to :data:`RETRIES` times; the steadier
    take is kept."""
    stats = take(artifacts)
    for _ in range(RETRIES):
        redo = [i for i, s in enumerate(stats) if not s.repeatable]
        if not redo:
            break
        for i, stat in zip(redo, take([artifacts[i] for i in redo])):
            stats[i] = min(stats[i], stat, key=lambda s: s.repeatability or 0.0)
    return stats


def runtime_of(artifact: Path) -> str:
    """The runtime that times ``artifact``, from its suffix."""
    try:
        return SUFFIX_RUNTIME[Path(artifact).suffix]
    except KeyError:
        raise RunnerError(
            f"artifact {artifact} has suffix {Path(artifact).suffix!r}; runners time "
            f"{', '.join(SUFFIX_RUNTIME)} files; export the model to one of them"
        ) from None


def last_line(text: str) -> str:
    """The last non-blank line of a tool's output (what it said last: usually why it failed)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def check_counts(runs: int, warmup: int, rounds: int) -> None:
    """Timing counts a runner accepts (the same rules on every device)."""
    if runs < 1 or warmup < 0 or rounds < 1:
        raise RunnerError(
            f"runs and rounds must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}, "
            f"rounds={rounds}; fix the timing settings"
        )


RUNNERS: Registry[type[Runner]] = Registry("runner")


def get_runner(profile: DeviceProfile) -> Runner:
    """The runner for the profile's connection kind, ready to use (close it when done)."""
    return RUNNERS.get(profile.connection.kind)(profile)


def list_runners() -> list[str]:
    """Names (connection kinds) of the registered runners."""
    return RUNNERS.names()
