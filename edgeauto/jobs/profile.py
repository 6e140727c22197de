"""``edgeauto profile``'s job: time every block of a space on a device (local, ssh, adb) and
write or extend its table; optionally time whole networks as the predictor's validation data."""

from __future__ import annotations

from pathlib import Path

from edgeauto.devices.profile import DeviceProfile
from edgeauto.latency.table import LatencyTable
from edgeauto.progress import NullReporter, Reporter


def build_table(
    prof: DeviceProfile,
    space_name: str,
    shape: tuple[int, int, int],
    n: int,
    root: Path | None,
    validate: int = 0,
    reporter: Reporter | None = None,
    precision: str = "fp32",
) -> LatencyTable:
    """Open or start the device's table at ``precision`` and measure the space's missing keys
    through its runner; then ``validate`` random whole networks end to end."""
    from edgeauto.latency.builder import (
        TimingSettings,
        fill_table,
        make_timer,
        open_device_table,
        validate_table,
    )
    from edgeauto.spaces import get_space

    reporter = reporter or NullReporter()
    sp = get_space(space_name, shape, n)
    timer = make_timer(prof, TimingSettings(), precision)
    where = f"{prof.runtime} {precision}, {prof.connection.target()}"
    try:
        table = open_device_table(prof, sp.name, timer, root)
        missing = table.missing(sp.all_keys())
        if missing or table.overhead is None or validate:
            timer.runner.describe()  # reach the device before converting anything
        if missing or table.overhead is None:
            desc = f"profiling {len(missing)} blocks on {prof.name} ({where})"
            with reporter.task(desc, len(missing)) as task:
                fill_table(table, missing, timer, lambda d, t, _k: task.update(d, t))
        if validate:
            desc = f"timing {validate} whole networks on {prof.name} ({where})"
            with reporter.task(desc, validate) as task:
                validate_table(table, sp, timer, validate, lambda d, t, _k: task.update(d, t))
    finally:
        timer.close()
    return table
