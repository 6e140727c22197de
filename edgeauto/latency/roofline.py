"""Roofline floor: the least time a block can take on a device, from its spec sheet.

Per block, ``max(FLOPs / peak FLOP/s, bytes moved / memory bandwidth)``, with the profile's
``spec.peak_gflops_fp32`` and ``spec.memory_bandwidth_gbs``. A profile missing either figure
has no floor (every function here then returns ``None`` or nothing), since half a roofline
would not be a bound.

The floor is a lower bound, so it is counted generously: FLOPs are the multiply-adds of the
convs and linears (x2) plus one op per pooled or added value; bytes are fp32 input, output
and weights, each moved once (intermediate tensors may stay in cache). The peak is the whole
chip's even when a profile runs fewer threads: a floor must never exceed what the device can
do, so it is loose rather than wrong. A measured entry below it is a measurement error
(a timer that missed the work, a unit slip), and a budget below the floor of the space's
smallest architecture cannot be met by any implementation.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import BudgetInfeasible
from edgeauto.latency.table import LatencyTable
from edgeauto.spaces.base import Arch, SearchSpace
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.modules import make_divisible

BYTES_PER_VALUE = 4  # fp32


class BelowFloorWarning(UserWarning):
    """A table entry is faster than the device's roofline allows: a measurement error."""


def _mbconv_work(key: OpKey) -> tuple[float, float]:
    """(FLOPs, weights) of an inverted residual."""
    oh, ow = key.out_hw
    width = key.hidden or key.cin
    expand = key.cin * key.hidden / key.groups
    project = width * key.cout / key.groups
    dw = width * key.kernel**2
    se = 2 * width * make_divisible(width // 4) if key.se else 0
    flops = 2 * (expand * key.h * key.w + (dw + project) * oh * ow + se)
    flops += key.cout * oh * ow if key.residual else 0
    flops += 2 * width * oh * ow if key.se else 0  # pooling and the channel scaling
    return flops, expand + dw + project + se


def work(key: OpKey) -> tuple[float, float]:
    """(FLOPs, bytes moved) of one block, counted as a lower bound (see the module doc)."""
    oh, ow = key.out_hw
    if key.kind == "mbconv":
        flops, weights = _mbconv_work(key)
    elif key.kind in ("stem", "conv"):
        weights = key.cin * key.cout * key.kernel**2 / key.groups
        flops = 2 * weights * oh * ow
    elif key.kind in ("head", "linear"):
        weights = key.cin * key.cout
        flops = 2 * weights + (key.cin * key.h * key.w if key.kind == "head" else 0)
    elif key.kind == "pool":
        weights, flops = 0, key.cin * key.h * key.w
    else:  # resize: bilinear, at least 4 multiply-adds per output value
        weights, flops = 0, 4 * key.cout * oh * ow
    out_values = key.cout * (1 if key.kind == "head" else oh * ow)
    values = key.cin * key.h * key.w + out_values + weights
    return flops, values * BYTES_PER_VALUE


def has_roofline(profile: DeviceProfile) -> bool:
    """Whether the profile states both the peak FLOP/s and the memory bandwidth."""
    spec = profile.spec
    return spec.peak_gflops_fp32 is not None and spec.memory_bandwidth_gbs is not None


def floor_ms(key: OpKey, profile: DeviceProfile) -> float | None:
    """The roofline floor of ``key`` on ``profile`` in ms, or None without peak/bandwidth."""
    if not has_roofline(profile):
        return None
    flops, moved = work(key)
    compute_s = flops / (profile.spec.peak_gflops_fp32 * 1e9)  # type: ignore[operator]
    memory_s = moved / (profile.spec.memory_bandwidth_gbs * 1e9)  # type: ignore[operator]
    return max(compute_s, memory_s) * 1e3


def check_floor(table: LatencyTable, profile: DeviceProfile) -> list[tuple[OpKey, float, float]]:
    """Entries measured faster than the floor: ``(key, measured_ms, floor_ms)``, sorted.

    Empty when the profile has no roofline. The measured value is the entry's median, which
    still includes the per-invocation overhead, so a flag here is a real contradiction.
    """
    flagged = []
    for key, stat in sorted(table.entries.items()):
        floor = floor_ms(key, profile)
        if floor is not None and stat.median_ms < floor:
            flagged.append((key, stat.median_ms, floor))
    return flagged


def warn_below_floor(
    table: LatencyTable, profile: DeviceProfile
) -> list[tuple[OpKey, float, float]]:
    """:func:`check_floor`, plus one :class:`BelowFloorWarning` naming the entries if any.

    The table is not changed or rejected: the flag asks for a re-measurement.
    """
    flagged = check_floor(table, profile)
    if flagged:
        shown = "; ".join(f"{k.describe()} {m:.4g} < {f:.4g} ms" for k, m, f in flagged[:3])
        more = f" (and {len(flagged) - 3} more)" if len(flagged) > 3 else ""
        warnings.warn(
            f"latency table {table.path or '(in memory)'}: {len(flagged)} entries are faster "
            f"than {profile.name}'s roofline floor, so their measurement is wrong: {shown}"
            f"{more}; re-measure them",
            BelowFloorWarning,
            stacklevel=2,
        )
    return flagged


def arch_floor_ms(keys: Iterable[OpKey], profile: DeviceProfile) -> float | None:
    """Summed floor of a model's blocks, or None without a roofline."""
    floors = [floor_ms(k, profile) for k in keys]
    return None if any(f is None for f in floors) else sum(floors)  # type: ignore[arg-type]


def smallest_floor(space: SearchSpace, profile: DeviceProfile) -> tuple[Arch, float] | None:
    """The arch with the lowest summed floor and that floor, or None without a roofline."""
    if not has_roofline(profile):
        return None

    def cost(key: OpKey) -> float:
        return floor_ms(key, profile) or 0.0

    arch = space.cheapest(cost)
    return arch, space.cost(arch, cost)


def check_budget(space: SearchSpace, profile: DeviceProfile, budget_ms: float) -> float | None:
    """The smallest arch's floor; :class:`BudgetInfeasible` if the budget is below it.

    Returns None (no check) when the profile lacks the peak or the bandwidth.
    """
    found = smallest_floor(space, profile)
    if found is None:
        return None
    _, floor = found
    if budget_ms < floor:
        spec = profile.spec
        raise BudgetInfeasible(
            f"latency budget {budget_ms:g} ms is below the roofline floor {floor:.4g} ms of the "
            f"smallest architecture of space {space.name} on {profile.name} "
            f"({spec.peak_gflops_fp32:g} GFLOP/s peak, {spec.memory_bandwidth_gbs:g} GB/s): no "
            "implementation can run it that fast; raise --latency-ms or pick a smaller space"
        )
    return floor
