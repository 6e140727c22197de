"""Import published per-layer latency tables into :class:`LatencyTable`, with provenance.

Formats (:data:`IMPORTERS`, one :class:`Importer` each; ``FORMATS`` lists their names):

``ofa-yaml``
    Once-for-All's per-layer YAML (mit-han-lab/once-for-all,
    ``tutorial/checkpoints/latency_table@note10/<res>_lookup_table.yaml``): a mapping
    ``'<layer>-input:HxWxC-output:HxWxC[-expand:..-kernel:..-stride:..-idskip:..-se:..-hs:..]'``
    to ``{count, mean, std}``, mean in ms, one file per resolution. PATH is a file or a folder
    of them. Layer names map to keys of the ``ofa-mbv3`` space: ``Conv`` (3x3 stride-2 h-swish
    stem), ``expanded_conv``, ``Conv_1`` (1x1 final expand), ``AvgPool2D``, ``Conv_2``
    (feature mix) and ``Logits``.
``fbnet-json``
    jh88/fbnet's ``lookup_table_pi.json``: a list over the 28 supernet layers, ``null`` for
    the fixed ones, else one latency per candidate (FBNet's order, ``skip`` last where
    allowed) in microseconds, each the mean of 10 Python-timed TensorFlow 2 eager calls. The
    list has no keys: positions map to keys through the ``fbnet-cifar`` space's schedule.

Statistics: ``median_ms`` holds the source's mean (neither source gives a median), ``p90_ms``
is mean + 1.2816 std (normal approximation; FBNet gives no spread), ``runs`` the source's
count. A key measured in several places (several OFA files, FBNet's three identical layers of
a stage) pools them: count-weighted mean, and a std that includes the spread of the means.

Nothing is dropped silently: source entries that map to no key are listed in the report by
name, with the reason. Keys the search space needs for the target dataset that the source
never measured (a resize for 28x28 data, a 1-channel stem, a 10-class classifier; FBNet's
fixed stem and head) are *estimated* when the profile has a roofline: ``a + b * floor``,
with the block's roofline floor and ``a``, ``b`` fitted on the measured entries of the same
kind (all entries when the source has fewer than two of that kind). They are marked
``estimated`` in the table and listed in the report. Searchable ``mbconv`` blocks are never estimated. Any malformed input raises a
one-line :class:`TableImportError` before anything is written; the table is written
atomically.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError, TableImportError
from edgeauto.fileio import sha256_file
from edgeauto.latency.conversion import OverheadModel, check_runtime, convert_table
from edgeauto.latency.roofline import check_floor, floor_ms, has_roofline
from edgeauto.latency.table import LatencyStat, LatencyTable, Provenance
from edgeauto.registry import Registry
from edgeauto.spaces import get_space
from edgeauto.spaces.base import SearchSpace
from edgeauto.spaces.fbnet_cifar import FBNetCifarSpace
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.staged import StagedSpace
from edgeauto.version import __version__

Z90 = 1.2816  # 90th percentile of the standard normal


@dataclass(frozen=True)
class Sample:
    """One source measurement of a key: mean and std in ms, and its run count."""

    mean_ms: float
    std_ms: float
    count: int


@dataclass
class FileReport:
    """What one source file held: entries read, how many mapped, and the ones that did not."""

    name: str
    sha256: str
    entries: int
    mapped: int
    unmapped: list[str] = field(default_factory=list)
    modified: float = 0.0  # the file's modification time (the source's date)


@dataclass
class ImportReport:
    """The outcome of an import: the table, per-file counts and every key not measured."""

    fmt: str
    table: LatencyTable
    files: list[FileReport]
    pooled: int = 0
    estimated: list[OpKey] = field(default_factory=list)
    missing: list[OpKey] = field(default_factory=list)
    below_floor: list[tuple[OpKey, float, float]] = field(default_factory=list)

    @property
    def mapped(self) -> int:
        return sum(f.mapped for f in self.files)

    @property
    def unmapped(self) -> list[str]:
        return [f"{f.name}: {u}" for f in self.files for u in f.unmapped]

    def lines(self) -> list[str]:
        """A human summary, one fact per line (the CLI prints it)."""
        out = [f"{f.name}: {f.entries} entries, {f.mapped} mapped, {len(f.unmapped)} unmapped"
               for f in self.files]  # fmt: skip
        out += [f"  unmapped: {u}" for u in self.unmapped]
        out.append(f"{len(self.table.entries)} keys ({self.pooled} pooled from several entries)")
        out += _listed("estimated (not in the source, labelled in the table)", self.estimated)
        out += _listed(
            "missing (neither measured nor estimated: predicting them fails)", self.missing
        )
        if self.below_floor:
            out.append(f"{len(self.below_floor)} entries below the roofline floor:")
            out += [
                f"  {k.describe()}: {m:.4g} ms < floor {f:.4g} ms" for k, m, f in self.below_floor
            ]
        return out


def _listed(title: str, keys: list[OpKey]) -> list[str]:
    return [f"{len(keys)} {title}:", *(f"  {k.describe()}" for k in keys)] if keys else []


# -- shared checks -------------------------------------------------------------------------


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def source_date(files: list[FileReport]) -> str:
    """The source's date: its newest file's modification time (UTC), never the import's, so
    that importing the same files again writes the same table."""
    newest = max((f.modified for f in files), default=0.0)
    return dt.datetime.fromtimestamp(newest, dt.UTC).isoformat(timespec="seconds")


def _number(path: Path, where: str, name: str, value: Any, positive: bool = True) -> float:
    """``value`` as a finite float (> 0 if ``positive``, else >= 0), or a one-line error."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        need = "a positive finite number" if positive else "a finite number >= 0"
        raise TableImportError(
            f"{path}: {where}: {name} is {value!r}, must be {need}; the file is corrupt, "
            "fix or re-download it"
        )
    return float(value)


def pool(samples: list[Sample]) -> LatencyStat:
    """One stat from one or more samples of a key (count-weighted, see the module doc)."""
    n = sum(s.count for s in samples)
    mean = sum(s.count * s.mean_ms for s in samples) / n
    second = sum(s.count * (s.std_ms**2 + s.mean_ms**2) for s in samples) / n
    std = math.sqrt(max(second - mean**2, 0.0))
    return LatencyStat(mean, mean + Z90 * std, n)


# -- OFA YAML --------------------------------------------------------------------------------

_SHAPE = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def _shape(text: str) -> tuple[int, int, int]:
    m = _SHAPE.match(text)
    if not m:
        raise ValueError(f"shape {text!r} is not HxWxC")
    h, w, c = (int(v) for v in m.groups())
    return h, w, c


def _stride(h: int, oh: int) -> int:
    stride = max(1, round(h / oh))
    if -(-h // stride) != oh:
        raise ValueError(f"{h} -> {oh} is no integer stride")
    return stride


def _ofa_mbconv(fields: dict[str, str], inp: tuple[int, int, int], out: str) -> OpKey:
    (h, w, cin), (oh, _, cout) = inp, _shape(out)
    mid, k, s = int(fields["expand"]), int(fields["kernel"]), int(fields["stride"])
    if -(-h // s) != oh:
        raise ValueError(f"stride {s} does not take {h} to {oh}")
    residual = fields["idskip"] == "1"
    if residual and (s != 1 or cin != cout):
        raise ValueError("idskip:1 but the shapes differ")
    # OFA's "expand" is the depthwise width; equal to cin means no expansion conv (ratio 1)
    return OpKey(
        "mbconv", cin, 0 if mid == cin else mid, cout, h, w, k, s, residual=residual,
        se=fields["se"] == "1", act="hswish" if fields["hs"] == "1" else "relu",
    )  # fmt: skip


def parse_ofa_key(name: str) -> OpKey:
    """The :class:`OpKey` of one OFA layer name; ``ValueError``/``KeyError`` if it has none."""
    op, *parts = name.split("-")
    fields = dict(p.split(":", 1) for p in parts if ":" in p)
    if len(fields) != len(parts):
        raise ValueError("a field is not 'name:value'")
    h, w, cin = _shape(fields["input"])
    if op == "expanded_conv":
        return _ofa_mbconv(fields, (h, w, cin), fields["output"])
    if op == "Logits":
        return OpKey("linear", cin, 0, int(fields["output"]), h, w, act="none")
    oh, ow, cout = _shape(fields["output"])
    if op == "Conv":  # OFA's first conv: 3x3, h-swish (OFAMobileNetV3)
        return OpKey("stem", cin, 0, cout, h, w, 3, _stride(h, oh), act="hswish")
    if op == "Conv_1" and (oh, ow) == (h, w):  # final expand: 1x1 conv + BN + h-swish
        return OpKey("conv", cin, 0, cout, h, w, 1, 1, act="hswish")
    if op == "AvgPool2D" and (oh, ow, cout) == (1, 1, cin):
        return OpKey("pool", cin, 0, cin, h, w)
    if op == "Conv_2" and (h, w, oh, ow) == (1, 1, 1, 1):  # feature mix on the pooled vector
        return OpKey("linear", cin, 0, cout, 1, 1, act="hswish")
    raise ValueError(f"layer type {op!r} with these shapes is not in OFA's MobileNetV3 tables")


def _ofa_sample(path: Path, name: str, value: Any) -> Sample:
    if not isinstance(value, dict) or "mean" not in value:
        raise TableImportError(
            f"{path}: entry {name!r} must be a mapping with 'mean' (and 'count', 'std'), got "
            f"{value!r}; this is not an OFA latency table (for FBNet's JSON use --format "
            "fbnet-json)"
        )
    mean = _number(path, name, "mean", value["mean"])
    std = _number(path, name, "std", value.get("std", 0.0), positive=False)
    count = _number(path, name, "count", value.get("count", 1))
    return Sample(mean, std, int(count))


def _read_yaml(path: Path) -> dict[Any, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TableImportError(f"{path} cannot be read: {exc}; check the path") from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise TableImportError(
            f"{path} is not valid YAML ({problem}); the file is truncated or not an OFA table"
        ) from None
    if not isinstance(data, dict) or not data:
        got = "an empty file" if not data else type(data).__name__
        raise TableImportError(
            f"{path}: an OFA latency table is a YAML mapping of layer names to "
            f"{{count, mean, std}}, got {got}; for FBNet's JSON list use --format fbnet-json"
        )
    return data


def read_ofa_file(path: Path, samples: dict[OpKey, list[Sample]]) -> FileReport:
    """Add the samples of one OFA YAML file to ``samples``; report what did not map."""
    data = _read_yaml(path)
    report = FileReport(path.name, sha256_file(path), len(data), 0, modified=_mtime(path))
    for name, value in data.items():
        sample = _ofa_sample(path, str(name), value)
        try:
            key = parse_ofa_key(str(name))
        except (ValueError, KeyError, ConfigError) as exc:
            report.unmapped.append(f"{name} ({exc})")
            continue
        samples.setdefault(key, []).append(sample)
        report.mapped += 1
    return report


def _ofa_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.glob("*.yaml")) if path.is_dir() else []
    if not files:
        raise TableImportError(f"{path} is neither an OFA .yaml file nor a folder holding some")
    return files


def _check_ofa_complete(path: Path, keys: set[OpKey], space_name: str) -> None:
    """Every key of the space at the file's resolution (RGB, 1000 classes) must be there."""
    stems = [k for k in keys if k.kind == "stem"]
    if len(stems) != 1:
        raise TableImportError(
            f"{path}: expected one first-conv entry (Conv-input:RxRx3-...), found {len(stems)}; "
            "the file is truncated or not one resolution of an OFA MobileNetV3 table"
        )
    res = stems[0].h
    space = get_space(space_name, (3, res, res), 1000)
    if not isinstance(space, StagedSpace) or res not in space.resolutions:
        raise TableImportError(
            f"{path}: space {space_name} has no resolution {res}; OFA MobileNetV3 tables "
            "need --space ofa-mbv3"
        )
    lost = sorted(space.keys_at(res) - keys)
    if lost:
        raise TableImportError(
            f"{path}: {len(lost)} of the {len(space.keys_at(res))} blocks of {space_name} at "
            f"{res} px are missing (first: {lost[0].describe()}); the file is truncated or was "
            "measured for another space"
        )


def read_ofa(path: Path, space_name: str) -> tuple[dict[OpKey, list[Sample]], list[FileReport]]:
    """All samples of an OFA file or folder, each file checked for completeness."""
    samples: dict[OpKey, list[Sample]] = {}
    reports = []
    for file in _ofa_files(path):
        own: dict[OpKey, list[Sample]] = {}
        reports.append(read_ofa_file(file, own))
        _check_ofa_complete(file, set(own), space_name)
        for key, found in own.items():
            samples.setdefault(key, []).extend(found)
    return samples, reports


# -- FBNet JSON ------------------------------------------------------------------------------

FBNET_LAYERS = 28  # conv1, bn1, 22 searchable layers, conv2, bn2, pooling, dense
FBNET_FIRST = 2  # index of the first searchable layer


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TableImportError(f"{path} cannot be read: {exc}; check the path") from None
    except json.JSONDecodeError as exc:
        raise TableImportError(
            f"{path} is not valid JSON ({exc}); the file is truncated or not an FBNet table "
            "(for OFA's YAML use --format ofa-yaml)"
        ) from None


def _fbnet_expected(space: FBNetCifarSpace) -> list[int]:
    """Number of values each of the 28 supernet entries must hold (0: null)."""
    counts = [len(space.layer_choices(i, j)) for i, j in space.searchable_layers()]
    return [0] * FBNET_FIRST + counts + [0] * (FBNET_LAYERS - FBNET_FIRST - len(counts))


def _check_fbnet_shape(path: Path, data: Any, expected: list[int]) -> None:
    if not isinstance(data, list) or len(data) != len(expected):
        got = f"a list of {len(data)}" if isinstance(data, list) else type(data).__name__
        raise TableImportError(
            f"{path}: an FBNet CIFAR table is a JSON list over the {len(expected)} supernet "
            f"layers (null or one latency per candidate), got {got}; for OFA's YAML use "
            "--format ofa-yaml"
        )
    for i, (entry, n) in enumerate(zip(data, expected)):
        size = len(entry) if isinstance(entry, list) else None
        if (n == 0 and entry is not None) or (n and size != n):
            raise TableImportError(
                f"{path}: supernet layer {i} holds {entry if size is None else f'{size} values'}"
                f", expected {'null' if n == 0 else f'{n} candidate latencies'}; the file is "
                "truncated or not jh88/fbnet's 22-layer CIFAR table"
            )


def read_fbnet(path: Path, space: SearchSpace) -> tuple[dict[OpKey, list[Sample]], FileReport]:
    """Samples of jh88/fbnet's positional table, mapped through ``fbnet-cifar``'s schedule."""
    if not isinstance(space, FBNetCifarSpace):
        raise TableImportError(
            f"fbnet-json tables are positional and need the fbnet-cifar layer schedule; got "
            f"--space {space.name}; use --space fbnet-cifar"
        )
    data = _read_json(path)
    _check_fbnet_shape(path, data, _fbnet_expected(space))
    report = FileReport(path.name, sha256_file(path), 0, 0, modified=_mtime(path))
    samples: dict[OpKey, list[Sample]] = {}
    layers = space.searchable_layers()
    for offset, (stage, j) in enumerate(layers):
        for choice, value in zip(space.layer_choices(stage, j), data[FBNET_FIRST + offset]):
            where = f"layer {FBNET_FIRST + offset} candidate {choice.name}"
            us = _number(path, where, "latency", value)
            report.entries += 1
            if choice.is_skip:  # our spaces give skip no block; FBNet charges the call
                report.unmapped.append(f"{where} ({us:.1f} us: skip has no block here)")
                continue
            key = space.layer_key(space.resolutions[0], stage, j, choice)
            samples.setdefault(key, []).append(Sample(us / 1000.0, 0.0, 10))
            report.mapped += 1
    return samples, report


# -- estimates for keys the source never measured -------------------------------------------


def _affine(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares ``measured = a + b * floor`` with ``a >= 0`` and ``b >= 1``.

    An affine fit, not a ratio: tables timed call by call (FBNet's TF eager) carry a fixed
    cost per block that a pure ratio would scale up with the block's work.
    """
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in points) / var if var > 0 else my / max(mx, 1e-12)
    b = max(b, 1.0)  # never faster than the floor
    return max(my - b * mx, 0.0), b


def _fit(table: LatencyTable, kind: str, profile: DeviceProfile) -> tuple[float, float]:
    """The affine fit on measured entries of ``kind`` (two floors at least), else on all."""
    measured = [k for k in table.entries if k not in table.estimated]
    same = [k for k in measured if k.kind == kind]
    floors = {k: floor_ms(k, profile) or 0.0 for k in measured}
    use = same if len({floors[k] for k in same}) >= 2 else measured
    return _affine([(floors[k], table.block_ms(k)) for k in use])


def estimate_missing(table: LatencyTable, keys: set[OpKey], profile: DeviceProfile) -> list[OpKey]:
    """Estimate the fixed (non-``mbconv``) ``keys`` the table lacks; returns them, sorted.

    Each becomes ``a + b * floor`` fitted on the measured entries of its kind, or of all
    kinds when fewer than two (see :func:`_affine`); it is marked in ``table.estimated`` and
    gets ``runs`` 0. Needs a roofline and at least one measured entry.
    """
    todo = sorted(k for k in keys - set(table.entries) if k.kind != "mbconv")
    if not todo or not has_roofline(profile) or not table.entries:
        return []
    fits = {kind: _fit(table, kind, profile) for kind in {k.kind for k in todo}}
    for key in todo:
        a, b = fits[key.kind]
        ms = a + b * floor_ms(key, profile) + table.overhead_ms()  # type: ignore[operator]
        table.entries[key] = LatencyStat(ms, ms, 0)
        table.estimated.add(key)
    return todo


# -- the import ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportTarget:
    """Where an import goes: device, space, the data shape the space is used with, file."""

    profile: DeviceProfile
    space: str
    input_shape: tuple[int, int, int]
    num_classes: int
    out: Path
    estimate: bool = True
    origin: str = ""  # the published file's owner/repo@commit/path, recorded as given
    # Convert to the profile's runtime with this measured model (edgeauto.latency.conversion)
    convert: OverheadModel | None = None


_STATS_NOTE = (
    " median_ms = source mean (no median given), p90_ms = mean + 1.2816 std (normal "
    "approximation), runs = source count; keys measured several times are pooled. Entries "
    "marked estimated are a + b x roofline floor, fitted on measured entries (see importers.py)."
)


class Importer(abc.ABC):
    """Reads one published format into samples per key. Registered in :data:`IMPORTERS`
    under its ``--format`` name; :func:`import_table` does the rest (pooling, estimates,
    provenance, the atomic write) the same for every format."""

    #: the ``--format`` name, the source's runtime and units, and where its numbers come from
    name: ClassVar[str]
    runtime: ClassVar[str]
    units: ClassVar[str]
    notes: ClassVar[str]

    @abc.abstractmethod
    def read(
        self, path: Path, space_name: str
    ) -> tuple[dict[OpKey, list[Sample]], list[FileReport]]:
        """Samples per key of the space ``space_name`` found at ``path``, and a report per file
        read; a malformed source raises :class:`TableImportError`."""

    def provenance(self, path: Path, target: ImportTarget, files: list[FileReport]) -> Provenance:
        """Where the table's numbers come from: the source, its files' hashes and units."""
        return Provenance(
            device=target.profile.name, cpu_model=target.profile.spec.cpu, runtime=self.runtime,
            runtime_version="unknown", threads=0, runs=0, warmup=0, space=target.space,
            date=source_date(files), edgeauto_version=__version__, imported=True,
            source=f"{self.name} {path}", source_files={f.name: f.sha256 for f in files},
            source_units=self.units, notes=self.notes + _STATS_NOTE, origin=target.origin,
        )  # fmt: skip


IMPORTERS: Registry[type[Importer]] = Registry("table importer")


@IMPORTERS.register("ofa-yaml")
class OfaYaml(Importer):
    """Once-for-All's per-layer YAML (see the module docstring)."""

    name, runtime, units = "ofa-yaml", "tflite", "ms"
    notes = (
        "OFA per-layer YAML (the format of mit-han-lab/once-for-all's "
        "tutorial/checkpoints/latency_table@<device>), timed by OFA's authors with TFLite on "
        "the phone's CPU, in ms."
    )

    def read(
        self, path: Path, space_name: str
    ) -> tuple[dict[OpKey, list[Sample]], list[FileReport]]:
        return read_ofa(path, space_name)


@IMPORTERS.register("fbnet-json")
class FbnetJson(Importer):
    """jh88/fbnet's positional ``lookup_table_pi.json`` (see the module docstring)."""

    name, runtime, units = "fbnet-json", "tensorflow2-eager", "us"
    notes = (
        "jh88/fbnet lookup_table_pi.json format: per supernet layer and candidate, the mean "
        "of 10 Python-timed TensorFlow 2 eager calls in us (converted to ms); skip candidates "
        "(~0.23 ms of layer-call overhead) have no block in our spaces and are not imported."
    )

    def read(
        self, path: Path, space_name: str
    ) -> tuple[dict[OpKey, list[Sample]], list[FileReport]]:
        samples, report = read_fbnet(path, get_space(space_name, (3, 32, 32), 10))
        return samples, [report]


#: The registered ``--format`` names (derived from :data:`IMPORTERS`).
FORMATS: tuple[str, ...] = tuple(IMPORTERS.names())


def _check_out(out: Path) -> None:
    """Refuse to replace a measured table or an unreadable file with an import."""
    if not out.exists():
        return
    try:
        existing = LatencyTable.load(out)
    except ConfigError as exc:
        raise TableImportError(
            f"{out} exists and is not a readable table ({exc}); delete it or pass another --out"
        ) from None
    if not existing.provenance.imported:
        raise TableImportError(
            f"{out} holds a table measured on {existing.provenance.device}; an import does not "
            "replace measurements; delete it or pass another --out"
        )


def import_table(fmt: str, path: str | Path, target: ImportTarget) -> ImportReport:
    """Read ``path`` in format ``fmt``, build the table for ``target`` and write it atomically.

    Raises :class:`TableImportError` (nothing written) for an unknown format, a file in
    another format, a truncated file, or a latency that is not a positive finite number.
    """
    if fmt not in IMPORTERS:
        raise TableImportError(
            f"unknown table format {fmt!r}; use one of {', '.join(IMPORTERS.names())}"
        )
    importer = IMPORTERS.get(fmt)()
    path = Path(path)
    if not path.exists():
        raise TableImportError(f"{path} does not exist; check the path")
    space = get_space(target.space, target.input_shape, target.num_classes)
    _check_out(target.out)
    samples, files = importer.read(path, target.space)
    table = LatencyTable(importer.provenance(path, target, files))
    table.entries = {key: pool(found) for key, found in samples.items()}
    if target.convert is not None:  # before the estimates: they are fitted on these entries
        convert_table(table, target.convert, target.profile)
    needed = space.all_keys()
    if not needed & set(table.entries):
        raise TableImportError(
            f"{path} covers none of space {target.space}'s blocks for input "
            f"{target.input_shape}; pick the space the table was measured for"
        )
    estimated = estimate_missing(table, needed, target.profile) if target.estimate else []
    report = ImportReport(fmt, table, files, sum(len(v) > 1 for v in samples.values()), estimated)
    report.missing = sorted(needed - set(table.entries))
    report.below_floor = check_floor(table, target.profile)
    table.save(target.out)
    return report


def usable_imported(table: LatencyTable, profile: DeviceProfile) -> bool:
    """Whether ``table`` is an import for ``profile``'s device, fit for prediction only.

    An imported table's runtime is its source's ("tflite", "tensorflow2-eager"), so the
    measured-table check (``builder.check_compatible``) rejects it; predicting from it is
    what it is for, once its runtime is the profile's (:func:`check_runtime`: a table of
    another runtime is refused unless converted). It must never be extended with new
    measurements (that would mix sources).
    """
    if not (table.provenance.imported and table.provenance.device == profile.name):
        return False
    check_runtime(table, profile)
    return True
