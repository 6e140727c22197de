"""A fleet of boards: several devices' latency tables built at once, one Ray actor per board.

Each board's table is built exactly as ``edgeauto profile --device D`` builds it
(:func:`edgeauto.jobs.profile.build_table`): saved after every batch, so an interrupted fleet
re-run measures only what each board still misses. Boards are independent: one that fails
(unreachable, its worker killed) comes back as a :class:`BoardResult` carrying a one-line
error while the others finish. A single device runs in this process, without Ray.

The work of a board is mostly waiting on the board and converting blocks here, so an actor
asks Ray for :data:`BOARD_CPUS` of a CPU: a 2-CPU local cluster runs four boards at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError, EdgeAutoError

#: CPUs of the local Ray cluster a fleet starts (when none runs in this process yet).
RAY_CPUS = 2
#: Ray CPUs one board's actor reserves: small, so that boards run concurrently.
BOARD_CPUS = 0.5


@dataclass(frozen=True)
class BoardResult:
    """One board of a fleet: its table (entries, path) or the one-line error that stopped it."""

    device: str
    entries: int = 0
    measured: int = 0
    path: Path | None = None
    error: str | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


OnResult = Callable[[BoardResult], None]


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line (Ray's and runners' messages span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:limit]


def profile_board(
    prof: DeviceProfile,
    space_name: str,
    shape: tuple[int, int, int],
    n: int,
    root: Path | None,
    validate: int = 0,
    precision: str = "fp32",
) -> BoardResult:
    """Build (or extend) one board's table; an :class:`EdgeAutoError` becomes its result."""
    from edgeauto.jobs.profile import build_table
    from edgeauto.latency.store import load_if_exists, table_path
    from edgeauto.spaces import get_space

    start = time.perf_counter()
    try:
        name = get_space(space_name, shape, n).name
        before = load_if_exists(table_path(prof, name, root, precision))
        table = build_table(prof, space_name, shape, n, root, validate, None, precision)
    except EdgeAutoError as exc:
        return BoardResult(prof.name, error=one_line(exc), wall_s=time.perf_counter() - start)
    measured = len(table.entries) - (len(before.entries) if before else 0)
    wall = time.perf_counter() - start
    return BoardResult(prof.name, len(table.entries), measured, table.path, wall_s=wall)


class BoardActor:
    """A board's Ray actor (a process of its own): builds that board's table when asked."""

    def build(self, prof: DeviceProfile, *args: Any) -> BoardResult:
        return profile_board(prof, *args)


def check_fleet(profiles: Sequence[DeviceProfile]) -> None:
    """A fleet names each device once, and times none on this machine's CPUs."""
    if not profiles:
        raise ConfigError("no device to profile; give at least one --device")
    names = [p.name for p in profiles]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(
            f"device {twice[0]!r} is given twice (both would fill one table); give each "
            "--device once"
        )
    local = [p.name for p in profiles if p.connection.kind == "local"]
    if local and len(profiles) > 1:
        # the other boards' blocks are converted on these CPUs while it is being timed
        raise ConfigError(
            f"device {local[0]!r} is timed on this machine, whose CPUs the fleet's other "
            f"boards use to convert blocks; profile {local[0]} alone (one --device)"
        )


def profile_fleet(
    profiles: Sequence[DeviceProfile],
    space_name: str,
    shape: tuple[int, int, int],
    n: int,
    root: Path | None = None,
    validate: int = 0,
    on_result: OnResult | None = None,
    precision: str = "fp32",
) -> list[BoardResult]:
    """Build every board's table, several boards at once; results in ``profiles`` order.

    One board runs here, in this process; several run as Ray actors on a local cluster
    started for the call (or the one this process already joined). ``on_result`` hears of
    each board as it finishes.
    """
    check_fleet(profiles)
    if len(profiles) == 1:
        results = [profile_board(profiles[0], space_name, shape, n, root, validate, precision)]
        if on_result:
            on_result(results[0])
        return results
    args = (space_name, shape, n, root, validate, precision)
    by_name = _on_ray(profiles, args, on_result or _quiet)
    return [by_name[p.name] for p in profiles]


def profile(
    devices: Sequence[str | Path | DeviceProfile],
    space: str = "fbnet-lite",
    dataset: str = "mnist5k",
    *,
    input_shape: tuple[int, int, int] | None = None,
    classes: int = 10,
    tables: str | Path | None = None,
    validate: int = 0,
    on_result: OnResult | None = None,
    precision: str = "fp32",
) -> list[BoardResult]:
    """Build or extend the latency table of ``space`` on each device; one result per device.

    Like ``edgeauto profile --device A --device B``: several devices are profiled at once
    (one Ray actor each), one alone in this process. A board that fails does not stop the
    others: its result carries the one-line error (``result.ok`` is False). Bad input (an
    unknown device, a device given twice) raises :class:`~edgeauto.ConfigError` first.

    Example:
        >>> results = edgeauto.profile(["pi-a.yaml", "pi-b.yaml"], space="fbnet-micro",
        ...                            input_shape=(1, 8, 8))
        >>> [(r.device, r.entries, r.error) for r in results]
    """
    from edgeauto.data import dataset_shape
    from edgeauto.devices.profile import load_profile

    if validate < 0:
        raise ConfigError(f"validate must be >= 0 networks, got {validate}; fix validate")
    profs = [d if isinstance(d, DeviceProfile) else load_profile(d) for d in devices]
    shape, n = (input_shape, classes) if input_shape else dataset_shape(dataset)
    root = Path(tables) if tables is not None else None
    return profile_fleet(profs, space, shape, n, root, validate, on_result, precision)


def _quiet(_result: BoardResult) -> None:
    pass


def _on_ray(
    profiles: Sequence[DeviceProfile], args: tuple[Any, ...], on_result: OnResult
) -> dict[str, BoardResult]:
    """One actor per board; each result handed to ``on_result`` as it comes."""
    import ray

    from edgeauto.search.executors import connect_ray

    owns = connect_ray(None, RAY_CPUS)
    cls = ray.remote(BoardActor).options(num_cpus=BOARD_CPUS, max_restarts=0)
    actors = [cls.remote() for _ in profiles]
    started = time.perf_counter()
    pending = {a.build.remote(p, *args): p.name for a, p in zip(actors, profiles)}
    results: dict[str, BoardResult] = {}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(done[0])
            results[name] = _collect(done[0], name, time.perf_counter() - started)
            on_result(results[name])
    finally:
        for actor in actors:  # an interrupted fleet leaves no worker timing a board
            ray.kill(actor)
        if owns:
            ray.shutdown()
    return results


def _collect(ref: Any, name: str, wall_s: float) -> BoardResult:
    """The actor's result, or its crash as the board's one-line error."""
    import ray

    try:
        result: BoardResult = ray.get(ref)
        return result
    except ray.exceptions.ActorDiedError:
        error = (
            "WorkerDied: the board's worker process died before finishing (killed?); its "
            "finished batches are saved: run the same command again to resume"
        )
    except ray.exceptions.RayTaskError as exc:  # a bug, not bad input: name it, go on
        error = one_line(exc.cause if exc.cause is not None else exc)
    except ray.exceptions.RayError as exc:
        error = one_line(exc)
    return BoardResult(name, error=error, wall_s=wall_s)
