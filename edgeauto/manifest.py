"""The run's record: what was asked, what was built, what was measured. It can replay the run."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeauto.compress.base import PruningPlan
from edgeauto.errors import ConfigError
from edgeauto.spaces.base import Arch


@dataclass
class Manifest:
    """Typed view over ``manifest.json``; ``data`` holds the full JSON document."""

    data: dict[str, Any]
    path: Path | None = None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def device(self) -> str:
        return self.data["device"]["name"]

    @property
    def arch(self) -> Arch:
        return Arch.from_json(self.data["arch"])

    @property
    def pruning(self) -> PruningPlan:
        return PruningPlan.from_json(self.data["pruning"])

    @property
    def accuracy(self) -> float:
        return float(self.data["accuracy"]["val"])

    @property
    def budget_ms(self) -> float:
        return float(self.data["budget"]["latency_ms"])

    @property
    def predicted_ms(self) -> float:
        return float(self.data["latency"]["predicted_ms"])

    @property
    def measured_ms(self) -> float:
        """Measured median of the device profile's runtime."""
        return float(self.data["latency"]["measured_ms"])

    @property
    def within_budget(self) -> bool:
        """Measured latency within budget (and tolerance) on every device the model serves,
        and no other limit exceeded."""
        others = all(d["within_budget"] for d in self.data.get("devices") or [])
        return bool(self.data["latency"]["within_budget"]) and others and not self.violations

    @property
    def violations(self) -> list[str]:
        """The limits besides latency that the final model exceeds (parameters, size ...)."""
        return list(self.data["budget"].get("violations") or [])

    def artifact(self, name: str) -> Path:
        return Path(self.data["artifacts"][name]["path"])

    @classmethod
    def from_json(cls, data: Any, path: Path | None = None) -> Manifest:
        """Check a parsed ``manifest.json``: the sections every run writes, each of the right
        JSON type, and an arch and pruning plan that parse; else :class:`ConfigError`."""
        where = f"manifest {path}" if path else "manifest"
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
        for name, kind in SECTIONS.items():
            if not isinstance(data.get(name), kind):
                got = "missing" if name not in data else type(data[name]).__name__
                raise ConfigError(
                    f"{where}: field {name!r} must be a {kind.__name__}, got {got}; it is not "
                    "a manifest of a finished run: rerun it or restore the file"
                )
        try:
            if data.get("arch") is not None:
                Arch.from_json(data["arch"])
            PruningPlan.from_json(data["pruning"])
            for field in ("latency_ms", "tolerance"):
                _number(data["budget"].get(field), f"budget.{field}")
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return cls(data, path)

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a ``manifest.json`` (or the one in a run directory)."""
        path = Path(path)
        path = path / "manifest.json" if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = " ".join(str(exc).split())
            raise ConfigError(
                f"cannot read manifest {path}: {msg}; pass a run's manifest.json"
            ) from None
        return cls.from_json(data, path)


#: The sections of ``manifest.json`` a parser needs, and their JSON types.
SECTIONS: dict[str, type] = {
    "config": dict, "device": dict, "budget": dict, "pruning": dict, "accuracy": dict,
    "latency": dict, "artifacts": dict,
}  # fmt: skip


def _number(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"field {name!r} must be a finite number, got {value!r}")
