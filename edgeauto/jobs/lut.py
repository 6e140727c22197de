"""``edgeauto lut import``'s job: a published per-layer table turned into a device's table,
converted to the device's runtime when asked (:mod:`edgeauto.latency.conversion`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError
from edgeauto.latency.importers import FORMATS, IMPORTERS, ImportReport, ImportTarget
from edgeauto.latency.importers import import_table as convert
from edgeauto.latency.table import LatencyTable


@dataclass(frozen=True)
class ImportedTable:
    """What :func:`import_table` wrote: the table file and the import's report."""

    path: Path
    report: ImportReport

    @property
    def table(self) -> LatencyTable:
        return self.report.table


def import_table(
    path: str | Path,
    fmt: str | None,
    device: str | None,
    space: str | None,
    *,
    dataset: str = "mnist5k",
    input_shape: tuple[int, int, int] | None = None,
    classes: int = 10,
    out: str | Path | None = None,
    estimate: bool = True,
    origin: str = "",
    convert_to: str | None = None,
) -> ImportedTable:
    """Import the published table at ``path`` (format ``fmt``: ``ofa-yaml`` or ``fbnet-json``)
    as ``device``'s latency table for ``space``, as ``edgeauto lut import`` does.

    The space runs on ``dataset``'s shape and classes, or on ``input_shape`` and ``classes``.
    The table is written to ``out`` (default: the device's place in the tables folder,
    ``$EDGEAUTO_TABLES`` or ``hw_latency/``). ``convert_to="litert"`` converts a table timed
    with another runtime (FBNet's TensorFlow 2 eager); ``estimate=False`` leaves the fixed
    blocks the source never timed missing. Bad input raises a one-line
    :class:`~edgeauto.EdgeAutoError` and writes nothing.

    Example:
        >>> t = edgeauto.import_table("../shared/data/luts/ofa-note10", "ofa-yaml",
        ...                           "samsung-note10", "ofa-mbv3", out="runs/note10.json")
        >>> t.path, len(t.table.entries), t.report.lines()
    """
    from edgeauto.data import dataset_shape
    from edgeauto.devices.profile import load_profile
    from edgeauto.latency.store import table_path

    for flag, value in (("--format", fmt), ("--device", device), ("--space", space)):
        if not value:
            raise ConfigError(
                f"{flag} is required (formats: {', '.join(FORMATS)}); e.g. edgeauto lut "
                "import --format ofa-yaml DIR --device samsung-note10 --space ofa-mbv3"
            )
    assert fmt and device and space  # checked above
    shape, n = (input_shape, classes) if input_shape else dataset_shape(dataset)
    profile = load_profile(device)
    target_file = Path(out) if out else table_path(profile, space)
    target = _target(fmt, profile, space, shape, n, target_file, estimate, origin, convert_to)
    return ImportedTable(target_file, convert(fmt, path, target))


def _target(
    fmt: str,
    profile: DeviceProfile,
    space: str,
    shape: tuple[int, int, int],
    n: int,
    target_file: Path,
    estimate: bool,
    origin: str,
    convert_to: str | None,
) -> ImportTarget:
    """Where and how to write: with the runtime-conversion model when ``convert_to`` asks."""
    from edgeauto.latency.conversion import load_or_measure
    from edgeauto.latency.store import tables_dir
    from edgeauto.spaces import get_space

    model = None
    if convert_to:
        src_rt = IMPORTERS.get(fmt).runtime if fmt in IMPORTERS else ""
        model = load_or_measure(get_space(space, shape, n), src_rt, convert_to, tables_dir())
    return ImportTarget(profile, space, shape, n, target_file, estimate, origin, model)
