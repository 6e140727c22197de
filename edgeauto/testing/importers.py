"""The conformance suite of table importers (:data:`edgeauto.latency.importers.IMPORTERS`).

Checked on a real published source (the caller's: this package ships none): the imported
table's keys lie in the target space, every entry is a positive latency, its provenance says
where the numbers came from, the table on disk is the one returned, and importing again gives
the same numbers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import TableImportError
from edgeauto.fileio import sha256_file
from edgeauto.latency.importers import IMPORTERS, ImportReport, ImportTarget, import_table
from edgeauto.latency.table import LatencyTable
from edgeauto.spaces import get_space


def check_importer(
    name: str,
    source: Path,
    profile: DeviceProfile,
    space: str,
    input_shape: tuple[int, int, int],
    classes: int,
) -> ImportReport:
    """Import ``source`` (format ``name``) for ``profile`` and ``space`` at ``input_shape``;
    returns the report of the first import."""
    cls = IMPORTERS.get(name)
    assert cls.name == name, f"importer {name!r} calls itself {cls.name!r}"
    assert cls.units and cls.runtime and cls.notes, f"importer {name!r} lacks units/runtime/notes"
    with tempfile.TemporaryDirectory() as tmp:
        target = ImportTarget(profile, space, input_shape, classes, Path(tmp) / "t.json")
        report = import_table(name, source, target)
        _check_table(report, target)
        _check_provenance(report.table, name, source, profile, space)
        again = import_table(name, source, ImportTarget(*_fields(target, Path(tmp) / "u.json")))
        assert again.table.entries == report.table.entries, "a second import differs"
        try:
            import_table(
                name, Path(tmp) / "absent", ImportTarget(*_fields(target, Path(tmp) / "v"))
            )
        except TableImportError:
            pass
        else:
            raise AssertionError("importing a missing source must raise TableImportError")
    return report


def _fields(target: ImportTarget, out: Path) -> tuple:
    return (target.profile, target.space, target.input_shape, target.num_classes, out)


def _check_table(report: ImportReport, target: ImportTarget) -> None:
    table = report.table
    space = get_space(target.space, target.input_shape, target.num_classes)
    assert table.entries, "the import holds no entry"
    stray = set(table.entries) - space.all_keys()
    assert not stray, f"{len(stray)} keys outside space {target.space}: {sorted(stray)[0]}"
    for key, stat in table.entries.items():
        assert 0 < stat.median_ms <= stat.p90_ms, f"{key.describe()}: bad stat {stat}"
    assert table.estimated <= set(table.entries), "estimated keys without an entry"
    assert set(report.estimated) == table.estimated, "the report lists other estimated keys"
    assert report.missing == sorted(space.all_keys() - set(table.entries)), "wrong missing list"
    saved = LatencyTable.load(target.out)
    assert saved.sha256() == table.sha256(), "the table on disk is not the one returned"


def _check_provenance(
    table: LatencyTable, name: str, source: Path, profile: DeviceProfile, space: str
) -> None:
    p = table.provenance
    assert p.imported and p.source == f"{name} {source}", f"source {p.source!r}"
    assert (p.device, p.space) == (profile.name, space), f"provenance {p.device}/{p.space}"
    assert p.runtime == IMPORTERS.get(name).runtime and p.source_units and p.notes, p
    assert p.source_files, "provenance names no source file"
    root = source if source.is_dir() else source.parent
    for file, digest in p.source_files.items():
        assert sha256_file(root / file) == digest, f"{file}: recorded hash differs"
