"""Device profiles: what an edge device is, how to reach it and which runtime times it.

A profile is one YAML file in :func:`profiles_dir`, named after the device
(``raspberry-pi-4.yaml``). The ``host`` profile may write ``auto`` for the figures of the
running machine (``cores``, ``cpu``, ``clock_ghz``, ``ram_gb``, ``isa``, ``simd`` and
``threads``); :func:`load_profile` replaces them before validation.

Example:
    >>> profile = load_profile("raspberry-pi-4")
    >>> profile.spec.cores, profile.runtime
    (4, 'litert')
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from edgeauto.errors import ConfigError, UnknownComponent
from edgeauto.registry import suggest

PositiveFloat = Annotated[float, Field(gt=0)]

#: SIMD extensions reported by ``auto``, in the order they are looked for.
SIMD_FLAGS: tuple[str, ...] = ("avx512f", "avx2", "fma", "sse4_2", "neon", "asimd")
#: Clock used when neither /proc/cpuinfo nor psutil reports one.
FALLBACK_CLOCK_GHZ = 1.0
#: RAM used when neither /proc/meminfo nor sysconf reports it.
FALLBACK_RAM_GB = 1.0
AUTO = "auto"


class DeviceSpec(BaseModel):
    """Hardware figures of a device, each taken from a public source.

    Attributes:
        soc: System-on-chip name, e.g. ``"BCM2711"``.
        cpu: Core layout, e.g. ``"4x Cortex-A72"``.
        cores: Number of CPU cores.
        isa: Instruction set, e.g. ``"armv8-a"`` or ``"x86-64"``.
        simd: SIMD extensions, e.g. ``["neon"]``.
        clock_ghz: Highest CPU clock in GHz.
        peak_gflops_fp32: Theoretical fp32 CPU peak, or ``None`` if unknown.
        memory_bandwidth_gbs: Theoretical DRAM bandwidth in GB/s, or ``None``.
        ram_gb: DRAM size in GB.
        storage_gb: Storage size in GB, or ``None`` if it depends on the unit.
        storage: Storage kind, e.g. ``"microSD"`` or ``"UFS 3.0"``.
        gpu: GPU description, or ``None``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    soc: str
    cpu: str
    cores: int = Field(ge=1)
    isa: str
    simd: list[str]
    clock_ghz: PositiveFloat
    peak_gflops_fp32: PositiveFloat | None = None
    memory_bandwidth_gbs: PositiveFloat | None = None
    ram_gb: PositiveFloat
    storage_gb: PositiveFloat | None = None
    storage: str | None = None
    gpu: str | None = None


#: Connection fields that only one kind of connection uses, by kind.
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "local": (),
    "ssh": ("host", "user", "port", "key", "known_hosts", "python"),
    "adb": ("serial", "benchmark_model", "adb"),
}
_SHARED_FIELDS = ("kind", "workdir")


def _check_token(name: str, value: str | None) -> None:
    """Reject values ssh/adb would read as an option or split: a leading '-', whitespace."""
    if value is not None and (
        not value or value.startswith("-") or any(c.isspace() for c in value)
    ):
        raise ValueError(
            f"connection.{name} must be non-empty, not start with '-' and hold no spaces "
            f"(got {value!r}); fix connection.{name}"
        )


class Connection(BaseModel):
    """How edgeauto reaches the device to run benchmarks (see ``edgeauto.latency.runners``).

    Attributes:
        kind: ``"local"`` (this machine), ``"ssh"`` (a Linux board) or ``"adb"`` (Android).
        host: SSH host name or address; required for ``ssh``.
        user: SSH user, or ``None`` for the SSH default.
        port: SSH port.
        key: SSH private key file, or ``None`` for ssh's defaults and agent.
        known_hosts: known_hosts file checked for the board's host key
            (default ``~/.ssh/known_hosts``); host-key checking is always on.
        python: Python interpreter on the board that runs the timing script.
        serial: adb device serial, or ``None`` for the only attached device.
        benchmark_model: Path on this machine of LiteRT's ``benchmark_model`` binary for the
            phone's CPU; pushed to the phone. Required to time models over adb.
        adb: The ``adb`` executable (name on ``PATH`` or a path).
        workdir: Absolute directory on the device where artifacts are copied.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "ssh", "adb"]
    host: str | None = None
    user: str | None = None
    port: int = Field(default=22, ge=1, le=65535)
    key: str | None = None
    known_hosts: str | None = None
    python: str = "python3"
    serial: str | None = None
    benchmark_model: str | None = None
    adb: str = "adb"
    workdir: str = "/tmp/edgeauto"

    @model_validator(mode="after")
    def _check_kind_fields(self) -> Connection:
        """Require ``host`` for ssh; forbid fields of other connection kinds; check tokens."""
        if self.kind == "ssh" and not self.host:
            raise ValueError("an ssh connection needs 'host' (e.g. host: raspberrypi.local)")
        allowed = set(_KIND_FIELDS[self.kind]) | set(_SHARED_FIELDS)
        for name in sorted(self.model_fields_set - allowed):
            value = getattr(self, name)
            raise ValueError(
                f"a {self.kind} connection takes no {name!r} (got {value!r}); remove it"
                + (" or use kind: ssh" if name in _KIND_FIELDS["ssh"] else "")
                + (" or use kind: adb" if name in _KIND_FIELDS["adb"] else "")
            )
        for name in ("host", "user", "serial", "python"):
            _check_token(name, getattr(self, name))
        if self.kind != "local" and not self.workdir.startswith("/"):
            raise ValueError(
                f"connection.workdir must be an absolute path on the device (got "
                f"{self.workdir!r}); e.g. workdir: /tmp/edgeauto"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump_own_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Dump only the fields of this kind of connection (``devices show`` stays short)."""
        keep = {"kind", *_KIND_FIELDS[self.kind], *(("workdir",) if self.kind != "local" else ())}
        return {k: v for k, v in handler(self).items() if k in keep}

    def target(self) -> str:
        """The device as people write it: ``user@host:port``, ``adb:serial`` or ``local``."""
        if self.kind == "ssh":
            return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"
        return f"adb:{self.serial or '(only device)'}" if self.kind == "adb" else "local"


class DeviceProfile(BaseModel):
    """A device: its hardware, the runtime that times models on it and how to reach it.

    Attributes:
        schema_version: Profile format version; only ``1`` exists.
        name: Profile name, equal to the file stem (lowercase, digits, dashes).
        description: One line for humans.
        spec: Hardware figures.
        runtime: Inference runtime used for latency measurement.
        threads: Number of runtime threads.
        connection: How to reach the device.
        channel_multiple: Pruned widths stay multiples of this (default by ISA).
        cost_model: ``latency`` (measured tables) or ``relu-count`` (private inference).
        flop_weight: ``relu-count`` only: ReLU-equivalents charged per multiply-accumulate.
        cpu_affinity: Cores every timing on the device runs on (``[4, 5, 6, 7]``: a phone's
            big cores), ``auto`` (this machine only: the fastest steady cores, found by timing
            each once) or ``None`` (wherever the OS puts it: noise on most machines).
        source: The YAML file the profile was loaded from, if any.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    spec: DeviceSpec
    runtime: Literal["litert", "onnxruntime"]
    threads: int = Field(ge=1, le=256)
    connection: Connection
    # Pruned widths are kept multiples of this. XNNPACK's fp32 kernels work in tiles of output
    # channels; on this project's x86 host (AVX2) the VGG-style CNN of benchmarks/prune.py
    # pruned to multiples of 16 ran 0.94-0.99x the speedup its FLOPs promise, to multiples of
    # 4 or 8 only 0.83-0.92x. ``None``: 16 on x86, 8 elsewhere (NEON tiles are 8 wide).
    channel_multiple: int | None = Field(default=None, ge=1, le=256)
    # ``relu-count``: private inference (two-party), where each ReLU is a garbled circuit and
    # dominates latency; a model costs its ReLUs + ``flop_weight`` x its MACs
    # (:func:`edgeauto.linearize.snl.relu_cost`), not a latency table's milliseconds.
    cost_model: Literal["latency", "relu-count"] = "latency"
    flop_weight: float = Field(default=0.0, ge=0)
    cpu_affinity: list[Annotated[int, Field(ge=0, le=1023)]] | Literal["auto"] | None = None
    source: Path | None = None

    @model_validator(mode="after")
    def _check_affinity(self) -> DeviceProfile:
        """Cores: distinct, at least one per thread; ``auto`` only where edgeauto runs."""
        cores = self.cpu_affinity
        if cores == AUTO and self.connection.kind != "local":
            raise ValueError(
                f"cpu_affinity: auto times each core of this machine, but {self.name} is reached "
                f"over {self.connection.kind}; list the board's cores (e.g. [0, 1, 2, 3])"
            )
        if isinstance(cores, list) and (len(set(cores)) != len(cores) or not cores):
            raise ValueError(f"cpu_affinity must list distinct cores, got {cores}; fix it")
        if isinstance(cores, list) and len(cores) < self.threads:
            raise ValueError(
                f"cpu_affinity lists {len(cores)} cores for {self.threads} threads; list at "
                f"least {self.threads} cores or lower threads"
            )
        return self

    @property
    def pruning_multiple(self) -> int:
        """The channel multiple pruning keeps (``channel_multiple`` or the ISA's default)."""
        if self.channel_multiple is not None:
            return self.channel_multiple
        return 16 if self.spec.isa.startswith(("x86", "amd64")) else 8


# --- "auto" values: figures of the running machine -------------------------------------


def _read_text(path: str) -> str:
    """Return the text of ``path``, or ``""`` if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpuinfo() -> dict[str, str]:
    """Return the first value of every key in /proc/cpuinfo (empty if unreadable)."""
    info: dict[str, str] = {}
    for line in _read_text("/proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    return info


def host_cores() -> int:
    """Return the number of CPU cores this process may run on.

    Returns:
        ``len(os.sched_getaffinity(0))`` where available, else ``os.cpu_count()``, else 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def host_cpu_name() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's name for it."""
    info = _cpuinfo()
    for key in ("model name", "Model", "Hardware", "Processor", "cpu model"):
        if info.get(key):
            return info[key]
    return platform.processor() or platform.machine() or "unknown"


def host_isa() -> str:
    """Return the instruction set of this machine, e.g. ``"x86-64"`` or ``"armv8-a"``."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86-64"
    if machine in ("aarch64", "arm64"):
        return "armv8-a"
    return machine or "unknown"


def host_simd() -> list[str]:
    """Return the SIMD extensions of :data:`SIMD_FLAGS` that /proc/cpuinfo reports."""
    info = _cpuinfo()
    flags = set((info.get("flags", "") + " " + info.get("Features", "")).split())
    found = [flag for flag in SIMD_FLAGS if flag in flags]
    if not found and host_isa() == "armv8-a":
        found = ["neon"]  # NEON (asimd) is mandatory in armv8-a
    return found


def host_clock_ghz() -> float:
    """Return the CPU clock in GHz from /proc/cpuinfo or psutil, else a 1 GHz fallback."""
    try:
        mhz = float(_cpuinfo().get("cpu MHz", "0"))
    except ValueError:
        mhz = 0.0
    if mhz <= 0:
        try:
            import psutil

            freq = psutil.cpu_freq()
            mhz = max(freq.max, freq.current) if freq else 0.0
        except Exception:  # psutil missing or no cpufreq on this platform
            mhz = 0.0
    return round(mhz / 1000, 2) if mhz > 0 else FALLBACK_CLOCK_GHZ


def host_ram_gb() -> float:
    """Return the RAM in GiB from /proc/meminfo or sysconf, else a 1 GB fallback."""
    for line in _read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            kib = float(line.split()[1])
            return round(kib / 1024**2, 1)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return FALLBACK_RAM_GB
    return round(total / 1024**3, 1) if total > 0 else FALLBACK_RAM_GB


def _host_cpu() -> str:
    """Return ``"<cores>x <model name>"`` for this machine."""
    return f"{host_cores()}x {host_cpu_name()}"


def _host_threads() -> int:
    """Return the available cores, capped at the 256 threads a profile allows."""
    return min(host_cores(), 256)


_SPEC_AUTO: dict[str, Callable[[], Any]] = {
    "cores": host_cores,
    "cpu": _host_cpu,
    "clock_ghz": host_clock_ghz,
    "ram_gb": host_ram_gb,
    "isa": host_isa,
    "simd": host_simd,
}


def resolve_auto(data: dict[str, Any]) -> dict[str, Any]:
    """Replace ``auto`` spec fields and ``threads`` with figures of the running machine.

    Args:
        data: A profile as read from YAML (not modified).

    Returns:
        A copy of ``data`` in which every supported ``auto`` value is concrete.
    """
    out = dict(data)
    spec = out.get("spec")
    if isinstance(spec, dict):
        out["spec"] = {
            k: _SPEC_AUTO[k]() if v == AUTO and k in _SPEC_AUTO else v for k, v in spec.items()
        }
    if out.get("threads") == AUTO:
        out["threads"] = _host_threads()
    return out


# --- loading -----------------------------------------------------------------------------


def profiles_dir() -> Path:
    """Return the directory of device profiles.

    Returns:
        ``$EDGEAUTO_PROFILES`` if set and non-empty, else ``device_profiles/`` at the
        repository root.
    """
    env = os.environ.get("EDGEAUTO_PROFILES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "device_profiles"


def list_profiles() -> list[str]:
    """Return the sorted names (file stems) of the ``*.yaml`` files in :func:`profiles_dir`."""
    directory = profiles_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml"))


def _is_path(name_or_path: str | Path) -> bool:
    """Tell whether the argument names a file rather than a profile."""
    if isinstance(name_or_path, Path):
        return True
    seps = {"/", os.sep, os.altsep or "/"}
    return name_or_path.endswith((".yaml", ".yml")) or any(s in name_or_path for s in seps)


def _profile_path(name: str) -> Path:
    """Return the file of the profile ``name`` or raise :class:`UnknownComponent`."""
    path = profiles_dir() / f"{name}.yaml"
    if path.is_file():
        return path
    names = list_profiles()
    raise UnknownComponent(
        f"unknown device {name!r}; {suggest(name, names)}"
        f"available: {', '.join(names) or '(none)'} (profiles dir {profiles_dir()})"
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; raise :class:`ConfigError` otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"device profile {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"device profile {path} cannot be read: {exc}; save it as UTF-8 YAML text"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"device profile {path}: {_yaml_problem(exc)}; fix the YAML") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"device profile {path}: top level must be a mapping of fields "
            f"(got {'an empty file' if data is None else type(data).__name__}); "
            "start the file with 'schema_version: 1'"
        )
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Describe a YAML error on one line, with its position when known."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return "invalid YAML: " + " ".join(str(exc).split())


def _validation_message(path: Path, exc: ValidationError) -> str:
    """Turn a pydantic error into one line naming the file and the first bad field."""
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "missing":
        got = "field is missing"
    else:
        got = "got " + _short(repr(first.get("input")))
    extra = len(errors) - 1
    more = f" (and {extra} more error{'s' if extra > 1 else ''})" if extra else ""
    return (
        f"device profile {path}: field {field!r}: {first['msg']} ({got}); "
        f"fix the field in the YAML{more}"
    )


def _short(text: str, limit: int = 80) -> str:
    """Truncate ``text`` to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """Load and validate a device profile.

    Args:
        name_or_path: A profile name (``"raspberry-pi-4"``), looked up in
            :func:`profiles_dir`, or a path: a :class:`~pathlib.Path`, or a string that
            ends with ``.yaml``/``.yml`` or contains a path separator.

    Returns:
        The validated profile, with ``auto`` values resolved and ``source`` set.

    Raises:
        UnknownComponent: No profile has that name.
        ConfigError: The file is missing, is not a YAML mapping, fails validation, or
            (when loaded by name) its ``name`` differs from the file stem.
    """
    by_name = not _is_path(name_or_path)
    path = _profile_path(str(name_or_path)) if by_name else Path(name_or_path)
    profile = profile_from_data(_read_yaml(path), path)
    if by_name and profile.name != path.stem:
        raise ConfigError(
            f"device profile {path}: field 'name' is {profile.name!r} but the file is "
            f"{path.name}; set name: {path.stem}"
        )
    return profile.model_copy(update={"source": path})


def profile_from_data(data: Any, path: Path) -> DeviceProfile:
    """Validate a profile as parsed from YAML (``auto`` values resolved here).

    Anything that is not a valid profile raises :class:`ConfigError` naming ``path``, the
    first bad field and the fix.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"device profile {path}: top level must be a mapping of fields (got "
            f"{type(data).__name__}); start the file with 'schema_version: 1'"
        )
    try:
        return DeviceProfile.model_validate(resolve_auto(data))
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, exc)) from None


# --- connection overrides (``edgeauto profile --host pi@10.0.0.5:2222``) -------------------


def parse_host(spec: str) -> dict[str, Any]:
    """Split ``[user@]host[:port]`` (IPv6 as ``[addr]:port``) into connection fields.

    Example:
        >>> parse_host("pi@10.0.0.5:2222")
        {'user': 'pi', 'host': '10.0.0.5', 'port': 2222}
    """
    user, at, rest = spec.rpartition("@")
    out: dict[str, Any] = {"user": user} if at else {}
    host, port = rest, ""
    if rest.startswith("["):  # [v6]:port
        host, bracket, tail = rest[1:].partition("]")
        host = host if bracket else ""
        port = tail[1:] if tail.startswith(":") else tail
    elif rest.count(":") == 1:
        host, _, port = rest.partition(":")
    if not host or (port and not port.isdigit()):
        raise ConfigError(
            f"--host must be [user@]host[:port], got {spec!r}; e.g. --host pi@10.0.0.5:22"
        )
    out["host"] = host
    if port:
        out["port"] = int(port)
    return out


def with_overrides(
    profile: DeviceProfile,
    host: str | None = None,
    key: str | None = None,
    known_hosts: str | None = None,
) -> DeviceProfile:
    """The profile with ``--host [user@]addr[:port]``, ``--key`` and ``--known-hosts`` applied
    (ssh devices only; a :class:`ConfigError` names the flag for another kind)."""
    given = [f for f, v in (("--host", host), ("--key", key), ("--known-hosts", known_hosts)) if v]
    if given and profile.connection.kind != "ssh":
        raise ConfigError(
            f"only ssh devices take {', '.join(given)}; {profile.name} is reached over "
            f"{profile.connection.kind}; drop {given[0]} or pick an ssh device"
        )
    fields = parse_host(host) if host else {}
    return with_connection(profile, **fields, key=key, known_hosts=known_hosts)


def with_connection(profile: DeviceProfile, **overrides: Any) -> DeviceProfile:
    """A copy of ``profile`` whose connection has ``overrides`` (``None`` values ignored).

    The result is validated like a YAML profile: a bad value raises :class:`ConfigError`
    naming the field.
    """
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return profile
    data = {**profile.connection.model_dump(exclude_unset=True), **changes}
    data.setdefault("kind", profile.connection.kind)
    try:
        conn = Connection.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "value_error":  # our validator's message names field and fix
            raise ConfigError(f"device {profile.name}: {first['ctx']['error']}") from None
        field = ".".join(str(p) for p in ("connection", *first["loc"]))
        raise ConfigError(
            f"device {profile.name}: field {field!r}: {first['msg']} (got "
            f"{_short(repr(first.get('input')))}); fix the command-line override"
        ) from None
    return profile.model_copy(update={"connection": conn})
