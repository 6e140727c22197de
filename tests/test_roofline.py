"""Roofline floor per block, flags for entries below it, and budgets below the smallest arch."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
from helpers import shared_data

from edgeauto.devices.profile import DeviceProfile, list_profiles, load_profile
from edgeauto.errors import BudgetInfeasible
from edgeauto.latency.importers import ImportTarget, import_table
from edgeauto.latency.roofline import (
    BelowFloorWarning,
    check_budget,
    check_floor,
    floor_ms,
    smallest_floor,
    warn_below_floor,
    work,
)
from edgeauto.latency.table import LatencyStat, LatencyTable
from edgeauto.search import STRATEGIES, SearchProblem
from edgeauto.spaces import get_space
from edgeauto.spaces.key import OpKey


@pytest.fixture(scope="module")
def note10() -> DeviceProfile:
    return load_profile("samsung-note10")


@pytest.fixture(scope="module")
def pi4_table(tmp_path_factory) -> LatencyTable:
    src = shared_data() / "luts" / "fbnet-raspi4" / "lookup_table_pi.json"
    out = tmp_path_factory.mktemp("pi") / "fbnet-cifar.json"
    target = ImportTarget(load_profile("raspberry-pi-4"), "fbnet-cifar", (3, 32, 32), 10, out)
    return import_table("fbnet-json", src, target).table


def _without(profile: DeviceProfile, field: str) -> DeviceProfile:
    return profile.model_copy(update={"spec": profile.spec.model_copy(update={field: None})})


def test_floor_of_a_compute_bound_conv(note10: DeviceProfile) -> None:
    """OFA's first conv at 224 on the Note10, by hand: 16.26 MFLOP / 218.56 GFLOP/s."""
    key = OpKey("stem", 3, 0, 24, 224, 224, 3, 2, act="hswish")
    flops, moved = work(key)
    assert flops == 2 * 3 * 24 * 9 * 112 * 112
    assert moved == 4 * (3 * 224 * 224 + 24 * 112 * 112 + 3 * 24 * 9)
    assert floor_ms(key, note10) == pytest.approx(flops / 218.56e9 * 1e3)
    assert flops / 218.56e9 > moved / 34.1e9  # compute bound


def test_floor_of_a_memory_bound_linear(note10: DeviceProfile) -> None:
    """The 1536x1000 classifier reads 6.1 MB of weights: bandwidth bound on the Note10."""
    key = OpKey("linear", 1536, 0, 1000, 1, 1, act="none")
    flops, moved = work(key)
    assert moved == 4 * (1536 + 1000 + 1536 * 1000)
    assert floor_ms(key, note10) == pytest.approx(moved / 34.1e9 * 1e3)
    assert moved / 34.1e9 > flops / 218.56e9


def test_floor_grows_with_the_work(note10: DeviceProfile) -> None:
    small = OpKey("mbconv", 24, 72, 32, 112, 112, 3, 2)
    assert floor_ms(small, note10) < floor_ms(dataclasses.replace(small, kernel=7), note10)
    assert floor_ms(small, note10) < floor_ms(dataclasses.replace(small, hidden=144), note10)
    assert floor_ms(small, note10) < floor_ms(dataclasses.replace(small, se=True), note10)
    assert floor_ms(small, note10) > floor_ms(dataclasses.replace(small, groups=2), note10)


@pytest.mark.parametrize("name", list_profiles())
def test_every_profile_has_a_floor_or_says_why_not(name: str) -> None:
    profile = load_profile(name)
    key = OpKey("mbconv", 16, 96, 24, 32, 32, 3, 2)
    spec = profile.spec
    if spec.peak_gflops_fp32 is None or spec.memory_bandwidth_gbs is None:
        assert floor_ms(key, profile) is None  # no floor, documented
    else:
        assert 0 < floor_ms(key, profile) < 1.0


def test_no_floor_without_peak_or_bandwidth(note10: DeviceProfile, pi4_table) -> None:
    key = OpKey("pool", 1152, 0, 1152, 7, 7)
    space = get_space("fbnet-cifar", (3, 32, 32), 10)
    for field in ("peak_gflops_fp32", "memory_bandwidth_gbs"):
        bare = _without(note10, field)
        assert floor_ms(key, bare) is None
        assert check_floor(pi4_table, bare) == []
        assert check_budget(space, bare, 1e-9) is None and smallest_floor(space, bare) is None


def test_published_tables_are_above_the_floor(pi4_table: LatencyTable) -> None:
    """Real data passes: a unit slip (us read as ms, ms as us) would put entries below it."""
    pi4 = load_profile("raspberry-pi-4")
    assert check_floor(pi4_table, pi4) == []
    shrunk = LatencyTable(pi4_table.provenance)
    shrunk.entries = {
        k: LatencyStat(s.median_ms / 1000, s.p90_ms / 1000, s.runs)
        for k, s in pi4_table.entries.items()
    }
    assert len(check_floor(shrunk, pi4)) > len(shrunk.entries) // 2


def test_entries_below_the_floor_are_flagged_not_dropped(pi4_table: LatencyTable) -> None:
    pi4 = load_profile("raspberry-pi-4")
    table = LatencyTable(pi4_table.provenance, entries=dict(pi4_table.entries))
    key = max(table.entries, key=lambda k: floor_ms(k, pi4))
    floor = floor_ms(key, pi4)
    table.entries[key] = LatencyStat(floor / 2, floor / 2, 10)
    with pytest.warns(BelowFloorWarning, match=r"1 entries are faster than raspberry-pi-4"):
        flagged = warn_below_floor(table, pi4)
    assert flagged == [(key, floor / 2, floor)]
    assert key in table.entries  # visible, not rejected
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_below_floor(pi4_table, pi4) == []  # no warning for a clean table


def test_budget_below_the_smallest_floor(note10: DeviceProfile) -> None:
    space = get_space("ofa-mbv3", (1, 28, 28), 10)
    arch, floor = smallest_floor(space, note10)
    assert arch.resolution == 160 and all(len(st) == 2 for st in arch.layers)
    assert floor == pytest.approx(sum(floor_ms(k, note10) for k in space.blocks(arch)))
    assert check_budget(space, note10, floor * 1.01) == floor
    with pytest.raises(BudgetInfeasible, match=f"roofline floor {floor:.4g} ms") as exc:
        check_budget(space, note10, floor * 0.99)
    assert "ofa-mbv3" in str(exc.value) and "218.56 GFLOP/s" in str(exc.value)


def test_search_problem_checks_the_floor_first(pi4_table: LatencyTable) -> None:
    """With the profile, an infeasible budget names the floor, before any table lookup."""
    pi4 = load_profile("raspberry-pi-4")
    space = get_space("fbnet-cifar", (3, 32, 32), 10)
    _, floor = smallest_floor(space, pi4)
    problem = SearchProblem(space, pi4_table, floor / 2, lambda a: 0.0, profile=pi4)
    with pytest.raises(BudgetInfeasible, match="roofline floor"):
        STRATEGIES.get("random")(problem)
    without = SearchProblem(space, pi4_table, floor / 2, lambda a: 0.0)
    with pytest.raises(BudgetInfeasible, match="predicted"):  # the table's check still holds
        STRATEGIES.get("random")(without)
