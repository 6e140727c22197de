"""``edgeauto profile``: time every block of a space on a device and write its table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeauto.cli.common import (
    Precision,
    SshHost,
    SshKey,
    SshKnownHosts,
    err,
    fail,
    out,
    parse_shape,
)
from edgeauto.errors import ConfigError, EdgeAutoError

if TYPE_CHECKING:
    from edgeauto.devices.profile import DeviceProfile
    from edgeauto.latency.table import LatencyTable


def profile(
    device: Annotated[
        list[str] | None,
        typer.Option(
            help="Device profile name or YAML path; repeat for a fleet of boards, profiled "
            "at once (one Ray actor each).",
            show_default="host",
        ),
    ] = None,
    space: Annotated[str, typer.Option(help="Search space to profile.")] = "fbnet-lite",
    dataset: Annotated[
        str, typer.Option(help="Dataset whose input shape to profile for.")
    ] = "mnist5k",
    input_shape: Annotated[
        str | None, typer.Option(help="C,H,W instead of a dataset's shape.")
    ] = None,
    classes: Annotated[int, typer.Option(help="Class count with --input-shape.")] = 10,
    tables: Annotated[
        str | None, typer.Option(help="Latency tables folder (default hw_latency/).")
    ] = None,
    host: SshHost = None,
    key: SshKey = None,
    known_hosts: SshKnownHosts = None,
    precision: Precision = "fp32",
    validate: Annotated[
        int,
        typer.Option(
            help="Also measure N random whole networks end to end and store them with the table "
            "(validation data; trains the residual correction of the predictor)."
        ),
    ] = 0,
) -> None:
    """Time every block of SPACE on DEVICE (local, ssh, adb); write or extend its table."""
    # Blocks are converted here and timed on the device by its runner. An interrupted run
    # keeps every finished batch: the same command again measures only what is missing.
    from edgeauto.jobs.profile import build_table
    from edgeauto.progress import RichReporter

    try:
        profs = _load_devices(device or ["host"], host, key, known_hosts)
        shape, n = parse_shape(input_shape, classes, dataset)
        if validate < 0:
            raise ConfigError(f"--validate must be >= 0 networks, got {validate}; fix --validate")
        root = Path(tables) if tables else None
        if len(profs) > 1:
            _profile_fleet(profs, space, shape, n, root, validate, precision)
            return
        table = build_table(profs[0], space, shape, n, root, validate, RichReporter(), precision)
    except EdgeAutoError as exc:
        fail(exc)
    out.print(f"{len(table.entries)} entries, overhead {table.overhead_ms():.4f} ms: {table.path}")
    if validate:
        _print_validation(table)


def _load_devices(
    devices: list[str], host: str | None, key: str | None, known_hosts: str | None
) -> list[DeviceProfile]:
    """Each ``--device``'s profile with the ssh overrides applied (``--host``: one board)."""
    from edgeauto.devices.profile import load_profile, with_overrides

    if len(devices) > 1 and host:
        raise ConfigError(
            "--host names one board; with several --device give each board its host in "
            "its profile YAML (connection.host)"
        )
    return [with_overrides(load_profile(d), host, key, known_hosts) for d in devices]


def _profile_fleet(
    profs: list[DeviceProfile],
    space: str,
    shape: tuple[int, int, int],
    n: int,
    root: Path | None,
    validate: int,
    precision: str,
) -> None:
    """Several boards at once: one line per board as it finishes; exit 2 if any failed."""
    from edgeauto.jobs.fleet import BoardResult, profile_fleet

    def line(r: BoardResult) -> None:
        if r.ok:
            done = f"{r.entries} entries ({r.measured} measured, {r.wall_s:.1f} s): {r.path}"
            out.print(f"{r.device}: {done}", markup=False, highlight=False)
        else:
            err.print(f"{r.device}: error: {r.error}", markup=False, highlight=False)

    results = profile_fleet(profs, space, shape, n, root, validate, line, precision)
    if not all(r.ok for r in results):  # each failure was its board's line
        raise typer.Exit(2)


def _print_validation(table: LatencyTable) -> None:
    """How the predictors do on the table's whole networks (in-sample for the residual)."""
    from edgeauto.latency.fusion import MIN_TRAIN, Score, cross_validated, get_predictor

    runs = [r for r in table.validation if not table.missing(r.keys)]
    measured = [r.measured_ms for r in runs]
    out.print(f"{len(runs)} whole networks measured end to end (validation data)")
    if len(runs) < 2:
        return
    for name in ("naive", "fusion"):
        s = Score.of([get_predictor(name, table).predict(r.keys) for r in runs], measured)
        out.print(f"  {name:16s} within 10% {s.within_10pct:6.1%}  RMSPE {s.rmspe:6.1%}")
    if len(runs) >= MIN_TRAIN + 2:  # cross-validated: each net predicted by a model without it
        folds = min(5, len(runs))
        pred = cross_validated(lambda: get_predictor("fusion+residual", table), runs, folds)
        s = Score.of(pred, measured)
        out.print(f"  fusion+residual  within 10% {s.within_10pct:6.1%}  RMSPE {s.rmspe:6.1%} (CV)")
