"""A device's latency table for a space, ready to predict with: loaded, checked, and (on a
device this machine can time) filled with the blocks it lacks."""

from __future__ import annotations

from pathlib import Path

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import TableMiss
from edgeauto.export.runtimes import get_runtime
from edgeauto.latency.builder import (
    BlockTimer,
    TimingSettings,
    check_compatible,
    check_precision,
    fill_table,
    make_timer,
    open_device_table,
)
from edgeauto.latency.choose import for_profile
from edgeauto.latency.cores import resolve_cores
from edgeauto.latency.importers import usable_imported
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.latency.roofline import warn_below_floor
from edgeauto.latency.store import load_if_exists, table_path
from edgeauto.latency.table import LatencyTable
from edgeauto.progress import Reporter
from edgeauto.spaces.base import SearchSpace


def open_table(
    profile: DeviceProfile,
    space: SearchSpace,
    reporter: Reporter,
    root: Path | None = None,
    precision: str = "fp32",
) -> tuple[LatencyTable, MeasuringPredictor]:
    """Load the device's table for ``space`` at ``precision`` (``fp32``, or ``int8`` on a
    LiteRT device), measuring missing keys when the device is local.

    A remote device (ssh, adb) is not contacted here: its table must exist (``edgeauto
    profile`` builds it through the device's runner), or :class:`TableMiss` names the command.
    An imported table of the device (``edgeauto lut import``) is used as it is, never extended.
    The predictor holds the timer: close it (``predictor.timer.close()``) when done.
    """
    check_precision(profile, precision)
    if profile.connection.kind == "local":
        timer: BlockTimer | None = make_timer(profile, TimingSettings(), precision)
        table = open_device_table(profile, space.name, timer, root)
    else:
        timer, path = None, table_path(profile, space.name, root, precision)
        table = load_if_exists(path)
        if table is None:
            flag = " --precision int8" if precision == "int8" else ""
            raise TableMiss(
                f"no latency table for {profile.name} ({profile.runtime}) at {path}; build it with "
                f"edgeauto profile --device {profile.name} --space {space.name}{flag}"
            )
        if not usable_imported(table, profile):
            runtime, cores = get_runtime(profile.runtime), resolve_cores(profile)
            check_compatible(table, profile, runtime, space.name, cores=cores, precision=precision)
    warn_below_floor(table, profile)  # faster than physics allows: flagged, not rejected
    missing = table.missing(space.all_keys())
    if missing and timer is not None:
        desc = f"profiling {len(missing)} blocks on {profile.name} ({profile.runtime})"
        with reporter.task(desc, len(missing)) as task:
            fill_table(table, missing, timer, lambda d, t, _k: task.update(d, t))
    model = for_profile(profile, table=table, timer=timer)
    assert isinstance(model, MeasuringPredictor)  # a latency device: the measuring table
    return table, model
