"""Where tables live: ``<tables>/<device>/<runtime>/<space>.json``."""

from __future__ import annotations

import os
from pathlib import Path

from edgeauto.devices.profile import DeviceProfile
from edgeauto.latency.table import LatencyTable


def tables_dir() -> Path:
    """``$EDGEAUTO_TABLES`` or the project's ``hw_latency/`` folder."""
    env = os.environ.get("EDGEAUTO_TABLES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "hw_latency"


def table_path(profile: DeviceProfile, space: str, root: Path | None = None) -> Path:
    """Path of the table for ``profile`` (its runtime) and ``space``."""
    return (root or tables_dir()) / profile.name / profile.runtime / f"{space}.json"


def has_table(profile: DeviceProfile, root: Path | None = None) -> bool:
    """Whether any table exists for the profile's runtime."""
    folder = (root or tables_dir()) / profile.name / profile.runtime
    return folder.is_dir() and any(folder.glob("*.json"))


def load_if_exists(path: Path) -> LatencyTable | None:
    """The table at ``path``, or None when there is none yet."""
    return LatencyTable.load(path) if path.exists() else None
