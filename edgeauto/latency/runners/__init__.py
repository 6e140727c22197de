"""Runners time artifacts on a device: ``local``, ``ssh`` (Linux boards), ``adb`` (Android).

Importing this package registers all three in :data:`RUNNERS`.
"""

from edgeauto.latency.runners import adb, local, ssh  # noqa: F401  (registration)
from edgeauto.latency.runners.base import (
    RUNNERS,
    DeviceInfo,
    Runner,
    get_runner,
    list_runners,
    runtime_of,
)

__all__ = ["RUNNERS", "DeviceInfo", "Runner", "get_runner", "list_runners", "runtime_of"]
