"""The run's record: what was asked, what was built, what was measured. It can replay the run."""

from __future__ import annotations

import json
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
        return bool(self.data["latency"]["within_budget"])

    def artifact(self, name: str) -> Path:
        return Path(self.data["artifacts"][name]["path"])

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a ``manifest.json`` (or the one in a run directory)."""
        path = Path(path)
        path = path / "manifest.json" if path.is_dir() else path
        try:
            return cls(json.loads(path.read_text()), path)
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read manifest {path}: {exc}") from None
