"""Where tables live: ``<tables>/<device>/<runtime>/<precision>-t<threads>/<space>.json``.

Precision and thread count key the folder: an int8 block and an fp32 block of the same shape
are different kernels, and a block timed on one thread is not the same block on four, so
their numbers never share a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from edgeauto.devices.profile import DeviceProfile
from edgeauto.latency.table import LatencyTable

Precision = Literal["fp32", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "int8")


def tables_dir() -> Path:
    """``$EDGEAUTO_TABLES`` or the project's ``hw_latency/`` folder."""
    env = os.environ.get("EDGEAUTO_TABLES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "hw_latency"


def table_folder(profile: DeviceProfile, precision: str = "fp32", root: Path | None = None) -> Path:
    """Folder of the profile's tables at ``precision`` (its runtime and thread count)."""
    base = (root or tables_dir()) / profile.name / profile.runtime
    return base / f"{precision}-t{profile.threads}"


def table_path(
    profile: DeviceProfile, space: str, root: Path | None = None, precision: str = "fp32"
) -> Path:
    """Path of the table for ``profile`` (its runtime and threads), ``space`` and precision."""
    return table_folder(profile, precision, root) / f"{space}.json"


def has_table(profile: DeviceProfile, root: Path | None = None) -> bool:
    """Whether any table exists for the profile's runtime and thread count, at any precision."""
    return any(
        (f := table_folder(profile, p, root)).is_dir() and any(f.glob("*.json")) for p in PRECISIONS
    )


def load_if_exists(path: Path) -> LatencyTable | None:
    """The table at ``path``, or None when there is none yet."""
    return LatencyTable.load(path) if path.exists() else None
