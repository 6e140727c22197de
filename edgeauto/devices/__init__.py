"""Device profiles: hardware figures, runtime and connection of each target device."""

from edgeauto.devices.profile import (
    Connection,
    DeviceProfile,
    DeviceSpec,
    list_profiles,
    load_profile,
    profiles_dir,
    resolve_auto,
)

__all__ = [
    "Connection",
    "DeviceProfile",
    "DeviceSpec",
    "list_profiles",
    "load_profile",
    "profiles_dir",
    "resolve_auto",
]
