"""``edgeauto lut import``'s job: a published per-layer table turned into a device's table,
converted to the device's runtime when asked (:mod:`edgeauto.latency.conversion`)."""

from __future__ import annotations

from pathlib import Path

from edgeauto.errors import ConfigError
from edgeauto.latency.importers import ImportReport


def import_lut(
    fmt: str | None,
    path: str,
    device: str | None,
    space: str | None,
    shape: tuple[int, int, int],
    n: int,
    out_file: str | None = None,
    estimate: bool = True,
    origin: str = "",
    convert_to: str | None = None,
) -> tuple[ImportReport, Path]:
    """Import ``path`` (format ``fmt``) as ``device``'s table for ``space``; returns the
    report and the file written (default: the device's place in the tables folder)."""
    from edgeauto.devices.profile import load_profile
    from edgeauto.latency.conversion import load_or_measure
    from edgeauto.latency.importers import FORMATS, IMPORTERS, ImportTarget, import_table
    from edgeauto.latency.store import table_path, tables_dir
    from edgeauto.spaces import get_space

    for flag, value in (("--format", fmt), ("--device", device), ("--space", space)):
        if not value:
            raise ConfigError(
                f"{flag} is required (formats: {', '.join(FORMATS)}); e.g. edgeauto lut "
                "import --format ofa-yaml DIR --device samsung-note10 --space ofa-mbv3"
            )
    assert fmt and device and space  # checked above
    profile = load_profile(device)
    target_file = Path(out_file) if out_file else table_path(profile, space)
    model = None
    if convert_to:
        src_rt = IMPORTERS.get(fmt).runtime if fmt in IMPORTERS else ""
        model = load_or_measure(get_space(space, shape, n), src_rt, convert_to, tables_dir())
    target = ImportTarget(profile, space, shape, n, target_file, estimate, origin, model)
    return import_table(fmt, path, target), target_file
