"""Measured latency lookup tables: typed keys, statistics and provenance, JSON on disk."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeauto.errors import ConfigError, TableMiss
from edgeauto.fileio import write_json
from edgeauto.latency.model import LATENCY_MODELS, LatencyModel
from edgeauto.spaces.key import OpKey
from edgeauto.timing import DISTURBED, LatencyStat  # noqa: F401  (re-exported)

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Provenance:
    """Where and how a table was measured.

    Tables imported from a publication (``edgeauto lut import``) set ``imported`` and say
    where the numbers come from: ``source`` (``"<format> <path>"`` as imported),
    ``source_files`` (file name -> SHA-256 of the bytes read), ``source_units`` (converted to
    ms on import) and ``notes`` (the origin, and how its statistics map to ours). For them
    ``runtime`` is the source's runtime, and ``threads``, ``runs`` and ``warmup`` are 0 when
    the source does not say; each entry's ``runs`` holds the source's count. ``origin`` is
    the published file's ``owner/repo@commit/path``, and ``date`` the source's own date (its
    files' modification time), so that importing the same bytes again gives the same file.
    ``conversion`` is set on a table converted to another runtime
    (:mod:`edgeauto.latency.conversion`): the runtime it was timed with and the overhead
    model that mapped it.

    ``cpu_affinity`` lists the cores every figure was timed on (None: unpinned, or not said
    by the source); ``core_speeds_ms`` is this machine's survey that chose them (``auto``).
    ``precision`` is what the blocks were converted to (``fp32``, or ``int8``: full-integer
    LiteRT models); tables written before the field existed were fp32 and load as such.
    """

    device: str
    cpu_model: str
    runtime: str
    runtime_version: str
    threads: int
    runs: int
    warmup: int
    space: str
    date: str
    edgeauto_version: str
    imported: bool = False
    source: str = ""
    source_files: dict[str, str] = field(default_factory=dict)
    source_units: str = ""
    notes: str = ""
    cpu_affinity: list[int] | None = None
    core_speeds_ms: dict[str, float] | None = None
    origin: str = ""
    conversion: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; the import fields and precision only when not at their defaults, so
        measured fp32 tables keep their hash."""
        data = asdict(self)
        return {k: v for k, v in data.items() if _OMITTED_DEFAULTS.get(k, ...) != v}


# Fields added for imported tables, at the values a measured table has.
_IMPORT_DEFAULTS: dict[str, Any] = {
    "imported": False, "source": "", "source_files": {}, "source_units": "", "notes": "",
    "cpu_affinity": None, "core_speeds_ms": None,
    "origin": "", "conversion": {},
}  # fmt: skip
# Fields written only when they differ from these (older tables lack them).
_OMITTED_DEFAULTS: dict[str, Any] = {**_IMPORT_DEFAULTS, "precision": "fp32"}


@dataclass(frozen=True)
class WholeModelRun:
    """A whole network of the table's space measured end to end on the table's device.

    Written by ``edgeauto profile --validate N``: the data that fusion-aware predictors are
    checked against and the learned residual correction is trained on
    (:mod:`edgeauto.latency.fusion`). ``keys`` are the network's blocks in forward order.
    """

    keys: tuple[OpKey, ...]
    measured_ms: float
    p90_ms: float
    runs: int
    date: str
    arch: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (keys as :meth:`OpKey.to_json` objects)."""
        return {
            "arch": self.arch, "keys": [k.to_json() for k in self.keys],
            "measured_ms": self.measured_ms, "p90_ms": self.p90_ms, "runs": self.runs,
            "date": self.date,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> WholeModelRun:
        """Inverse of :meth:`to_json`; bad latencies raise :class:`ConfigError`."""
        keys = tuple(OpKey.from_json(k) for k in data["keys"])
        when, arch = str(data["date"]), data["arch"]
        run = cls(keys, data["measured_ms"], data["p90_ms"], data["runs"], when, arch)
        run.check(path)
        return run

    def check(self, path: Path | None) -> None:
        """Both latencies positive and finite, else :class:`ConfigError`."""
        what = f"validation run of {self.date}"
        _check_ms(self.measured_ms, what, "measured_ms", path)
        _check_ms(self.p90_ms, what, "p90_ms", path)


@dataclass(frozen=True)
class Verification:
    """One verified artifact: its predicted latency and what the device measured.

    Appended to the table's ``history`` by every run that measures its final model on the
    device; :mod:`edgeauto.latency.calibration.history` turns the last entries into a calibration
    factor. ``predictor`` names how ``predicted_ms`` was made (before calibration), so
    entries predicted another way are never mixed into the factor.
    """

    model_sha256: str
    predicted_ms: float
    measured_ms: float
    predictor: str
    date: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> Verification:
        """Inverse of :meth:`to_json`; bad latencies raise :class:`ConfigError`."""
        entry = cls(**data)
        entry.check(path)
        return entry

    def check(self, path: Path | None) -> None:
        """Both latencies positive and finite, else :class:`ConfigError`."""
        what = f"history entry {str(self.model_sha256)[:12]}"
        _check_ms(self.predicted_ms, what, "predicted_ms", path)
        _check_ms(self.measured_ms, what, "measured_ms", path)


@LATENCY_MODELS.register("table")
@dataclass
class LatencyTable(LatencyModel[OpKey]):
    """Maps :class:`OpKey` to :class:`LatencyStat`, plus a measured per-model overhead.

    As a :class:`~edgeauto.latency.model.LatencyModel` it is the ``fusion`` prediction in ms
    (additive: ``predict([])`` is the overhead).

    Each block was timed alone, so its time includes one model invocation's fixed cost;
    :meth:`block_ms` subtracts the measured ``overhead`` and :meth:`predict` adds it
    back once per model. ``validation`` holds whole networks measured end to end (training
    data of the residual correction) and ``history`` every verified artifact (calibration);
    both are written only when non-empty, so older tables load and hash as before.
    """

    provenance: Provenance
    overhead: LatencyStat | None = None
    entries: dict[OpKey, LatencyStat] = field(default_factory=dict)
    path: Path | None = None
    # Keys whose numbers were estimated, not measured (an imported table's fixed blocks the
    # source never timed; see edgeauto.latency.importers). Reports should label them.
    estimated: set[OpKey] = field(default_factory=set)
    validation: list[WholeModelRun] = field(default_factory=list)
    history: list[Verification] = field(default_factory=list)

    # -- lookups ---------------------------------------------------------------------------
    def lookup(self, key: OpKey) -> LatencyStat:
        """The stat of ``key``; a miss raises :class:`TableMiss` naming the fix."""
        stat = self.entries.get(key)
        if stat is None:
            raise TableMiss(self._miss_message(key))
        return stat

    def overhead_ms(self) -> float:
        return self.overhead.median_ms if self.overhead else 0.0

    def block_ms(self, key: OpKey) -> float:
        """Predicted contribution of one block inside a model (overhead removed)."""
        return max(self.lookup(key).median_ms - self.overhead_ms(), 0.0)

    def predict(self, keys: Iterable[OpKey]) -> float:
        """Predicted latency of a model made of ``keys``: summed blocks plus one overhead."""
        return sum(self.block_ms(k) for k in keys) + self.overhead_ms()

    def missing(self, keys: Iterable[OpKey]) -> list[OpKey]:
        """Keys of ``keys`` without an entry, sorted and de-duplicated."""
        return sorted({k for k in keys if k not in self.entries})

    def coverage(self, keys: Iterable[OpKey]) -> float:
        """Fraction of ``keys`` present in the table (1.0 for an empty set)."""
        keys = set(keys)
        return 1.0 - len(self.missing(keys)) / len(keys) if keys else 1.0

    def nearest(self, key: OpKey, n: int = 3) -> list[OpKey]:
        """The ``n`` measured keys most similar to ``key`` (for messages)."""
        same = [k for k in self.entries if k.kind == key.kind]
        return sorted(same, key=key.distance)[:n]

    def profile_command(self) -> str:
        """The command that would add a missing key to this table."""
        p = self.provenance
        if p.imported:  # source is "<format> <path>" (see edgeauto.latency.importers)
            fmt, _, where = p.source.partition(" ")
            return (
                f"edgeauto lut import --format {fmt} {where} --device {p.device} "
                f"--space {p.space} --dataset <the dataset you run on>"
            )
        int8 = " --precision int8" if p.precision == "int8" else ""
        return f"edgeauto profile --device {p.device} --space {p.space}{int8}"

    def _miss_message(self, key: OpKey) -> str:
        near = "; ".join(k.describe() for k in self.nearest(key)) or "none"
        where = f" {self.path}" if self.path else ""
        return (
            f"latency table{where} ({self.provenance.device}, {self.provenance.runtime}) has no "
            f"entry for {key.describe()}; nearest measured: {near}; measure it with: "
            f"{self.profile_command()} (add --input-shape {key.cin},{key.h},{key.w} if the "
            f"stem input differs)"
        )

    # -- persistence -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        ov = self.overhead.to_json() if self.overhead else None
        items = sorted(self.entries.items())
        entries = [
            {
                "key": k.to_json(),
                **s.to_json(),
                **({"estimated": True} if k in self.estimated else {}),
            }
            for k, s in items
        ]
        data = {
            "schema_version": SCHEMA_VERSION,
            "provenance": self.provenance.to_json(),
            "overhead": ov,
            "entries": entries,
        }
        if self.validation:
            data["validation"] = [v.to_json() for v in self.validation]
        if self.history:
            data["history"] = [h.to_json() for h in self.history]
        return data

    def save(self, path: str | Path | None = None) -> Path:
        """Atomically write the table as JSON (to ``path`` or where it was loaded from)."""
        if path is None and self.path is None:
            raise ConfigError("LatencyTable.save needs a path: the table was not loaded from disk")
        target = Path(path or self.path)  # type: ignore[arg-type]
        self._check(target)  # a bad number fails here, before the file on disk is touched
        write_json(target, self.to_json())
        self.path = target
        return target

    def _check(self, path: Path) -> None:
        """Every latency positive and finite (what :meth:`from_json` would demand on load)."""
        if self.overhead:
            _checked(self.overhead, "overhead", path)
        for key, stat in self.entries.items():
            _checked(stat, key.describe(), path)
        for run in self.validation:
            run.check(path)
        for h in self.history:
            h.check(path)

    def sha256(self) -> str:
        """Content hash of the table (key order independent)."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> LatencyTable:
        if not isinstance(data, dict):
            raise ConfigError(
                f"latency table {path} must be a JSON object with schema_version, provenance "
                f"and entries, got {type(data).__name__}; re-run edgeauto profile"
            )
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(
                f"latency table {path}: schema_version must be {SCHEMA_VERSION}, "
                f"got {data.get('schema_version')!r}; re-run edgeauto profile"
            )
        try:
            prov = Provenance(**data["provenance"])
            ov = (
                _checked(LatencyStat(**data["overhead"]), "overhead", path)
                if data.get("overhead")
                else None
            )
            entries, estimated = {}, set()
            for e in data["entries"]:
                key = _entry_key(e["key"], path)
                stat = LatencyStat(e["median_ms"], e["p90_ms"], e["runs"], e.get("repeatability"))
                entries[key] = _checked(stat, key.describe(), path)
                if e.get("estimated"):
                    estimated.add(key)
            validation = [WholeModelRun.from_json(v, path) for v in data.get("validation", [])]
            history = [Verification.from_json(h, path) for h in data.get("history", [])]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"latency table {path} is malformed ({type(exc).__name__}: {exc}); delete it "
                "and re-run edgeauto profile"
            ) from None
        return cls(prov, ov, entries, path, estimated, validation, history)

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"latency table {path} does not exist; run edgeauto profile"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"latency table {path} is not valid JSON ({exc}); it is truncated or corrupted: "
                "delete it and re-run edgeauto profile"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"latency table {path} cannot be read ({exc.strerror}); check the path"
            ) from None
        return cls.from_json(data, path)


def _entry_key(data: Any, path: Path | None) -> OpKey:
    """An entry's key; a bad one names the table and the fix, not just the field."""
    try:
        if not isinstance(data, dict):
            raise ConfigError(f"a key must be an object of OpKey fields, got {data!r:.60}")
        return OpKey.from_json(data)
    except ConfigError as exc:
        raise ConfigError(
            f"latency table {path} has a bad entry key ({exc}); delete the entry or the table "
            "and re-run edgeauto profile"
        ) from None


def _checked(stat: LatencyStat, what: str, path: Path | None) -> LatencyStat:
    """``stat`` if its latencies are positive finite numbers, else :class:`ConfigError`."""
    for name in ("median_ms", "p90_ms"):
        _check_ms(getattr(stat, name), what, name, path)
    return stat


def _check_ms(value: object, what: str, name: str, path: Path | None) -> None:
    """A latency must be a positive finite number of milliseconds (not NaN, 0 or a string)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type]
        raise ConfigError(
            f"latency table {path}: {what} has {name} {value!r}; latencies must be positive "
            "finite milliseconds; delete the table (or the entry) and measure it again"
        )
