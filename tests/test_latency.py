"""Latency tables: statistics, persistence, misses, the measured micro table, and prediction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import json
from pathlib import Path

import pytest
from helpers import MICRO, largest_arch, micro_table_path

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError, RunnerError, TableMiss
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import get_runtime
from edgeauto.latency.builder import (
    TimingSettings,
    check_compatible,
    cpu_model,
    local_timer,
)
from edgeauto.latency.device import open_table
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.latency.store import has_table, table_path, tables_dir
from edgeauto.latency.table import LatencyStat, LatencyTable, Provenance
from edgeauto.progress import NullReporter
from edgeauto.spaces.key import OpKey

PROV = Provenance(
    device="host", cpu_model="test cpu", runtime="litert", runtime_version="0", threads=2,
    runs=50, warmup=20, space=MICRO, date="2026-01-01T00:00:00+00:00", edgeauto_version="0.1.0",
)  # fmt: skip


def small_table() -> LatencyTable:
    entries = {
        OpKey("stem", 1, 0, 8, 8, 8, 3, 1): LatencyStat(0.010, 0.012, 50),
        OpKey("mbconv", 8, 24, 16, 8, 8, 3, 1): LatencyStat(0.030, 0.040, 50),
        OpKey("mbconv", 8, 24, 16, 8, 8, 5, 1): LatencyStat(0.035, 0.041, 50),
        OpKey("mbconv", 8, 0, 16, 8, 8, 3, 1): LatencyStat(0.004, 0.005, 50),  # below overhead
        OpKey("head", 16, 0, 10, 8, 8): LatencyStat(0.008, 0.009, 50),
    }
    return LatencyTable(PROV, LatencyStat(0.005, 0.006, 50), entries)


# -- LatencyStat ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "median", "p90"),
    [
        ([5.0, 1.0, 4.0, 2.0, 3.0], 3.0, 5.0),  # p90 index round(0.9 * 4) = 4
        (list(range(10, 0, -1)), 5.5, 9),  # p90 index round(0.9 * 9) = 8 -> 9
        ([2.5], 2.5, 2.5),
        ([1.0, 1.0, 1.0, 100.0], 1.0, 100.0),
        ([float(v) for v in range(1, 101)], 50.5, 90.0),  # index round(89.1) = 89 -> 90
    ],
)
def test_stat_from_samples(samples: list[float], median: float, p90: float) -> None:
    stat = LatencyStat.from_samples(samples)
    assert stat.median_ms == pytest.approx(median)
    assert stat.p90_ms == pytest.approx(p90)
    assert stat.runs == len(samples)
    assert stat.p90_ms >= stat.median_ms


def test_stat_from_no_samples() -> None:
    with pytest.raises(ValueError, match="no timing samples"):
        LatencyStat.from_samples([])


# -- LatencyTable -----------------------------------------------------------------------------


def test_predict_is_sum_of_blocks_plus_overhead() -> None:
    t = small_table()
    keys = list(t.entries)
    assert t.overhead_ms() == pytest.approx(0.005)
    assert t.block_ms(keys[1]) == pytest.approx(0.025)
    assert t.block_ms(keys[3]) == 0.0  # clamped: a block never costs less than nothing
    expected = sum(max(t.entries[k].median_ms - 0.005, 0.0) for k in keys) + 0.005
    assert t.predict(keys) == pytest.approx(expected)
    assert t.predict(keys) == pytest.approx(sum(t.block_ms(k) for k in keys) + t.overhead_ms())
    assert t.predict([]) == pytest.approx(0.005)
    # repeated keys count once per occurrence
    assert t.predict([keys[1], keys[1]]) == pytest.approx(0.055)


def test_table_without_overhead() -> None:
    t = dataclasses.replace(small_table(), overhead=None)
    k = next(iter(t.entries))
    assert t.overhead_ms() == 0.0
    assert t.block_ms(k) == t.entries[k].median_ms


def test_save_load_round_trip(tmp_path: Path) -> None:
    t = small_table()
    target = tmp_path / "nested" / "dir" / "t.json"
    assert t.save(target) == target
    assert t.path == target
    # atomic write: nothing but the table in its folder, no temp files left behind
    assert [p.name for p in target.parent.iterdir()] == ["t.json"]
    loaded = LatencyTable.load(target)
    assert loaded.entries == t.entries
    assert loaded.provenance == t.provenance
    assert loaded.overhead == t.overhead
    assert loaded.path == target
    assert loaded.sha256() == t.sha256()
    first = target.read_bytes()
    loaded.save()  # back where it came from
    assert target.read_bytes() == first
    assert [p.name for p in target.parent.iterdir()] == ["t.json"]


def test_sha256_is_content_hash() -> None:
    a, b = small_table(), small_table()
    assert a.sha256() == b.sha256()
    assert len(a.sha256()) == 64
    # insertion order does not matter
    b.entries = dict(reversed(list(b.entries.items())))
    assert a.sha256() == b.sha256()
    k = next(iter(b.entries))
    b.entries[k] = LatencyStat(0.011, 0.012, 50)
    assert a.sha256() != b.sha256()


def test_json_layout() -> None:
    data = small_table().to_json()
    assert data["schema_version"] == 1
    assert data["provenance"]["device"] == "host"
    assert data["overhead"] == {"median_ms": 0.005, "p90_ms": 0.006, "runs": 50}
    assert [e["key"] for e in data["entries"]] == sorted(
        (e["key"] for e in data["entries"]), key=lambda d: OpKey.from_json(d)
    )
    assert {"key", "median_ms", "p90_ms", "runs"} == set(data["entries"][0])


def test_save_without_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the bug writes a temp file into the cwd
    with pytest.raises(ConfigError, match="needs a path"):
        small_table().save()


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        LatencyTable.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        LatencyTable.load(bad)
    data = small_table().to_json()
    bad.write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(ConfigError, match="schema_version must be 1"):
        LatencyTable.load(bad)
    del data["provenance"]
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="malformed"):
        LatencyTable.load(bad)


def test_missing_and_coverage() -> None:
    t = small_table()
    known = list(t.entries)
    new = OpKey("mbconv", 8, 20, 16, 8, 8, 3, 1)
    assert t.missing([*known, new, new]) == [new]
    assert t.coverage(known) == 1.0
    assert t.coverage([known[0], new]) == 0.5
    assert t.coverage([]) == 1.0


def test_table_miss_message() -> None:
    t = small_table()
    t.path = Path("/somewhere/host/litert/fp32-t1/fbnet-micro.json")
    pruned = OpKey("mbconv", 8, 20, 16, 8, 8, 3, 1)
    with pytest.raises(TableMiss) as exc:
        t.lookup(pruned)
    msg = str(exc.value)
    assert "\n" not in msg
    assert pruned.describe() in msg  # the key
    assert "mbconv k3 8->24->16 s1 @8x8" in msg  # its nearest measured neighbour
    assert "mbconv k3 8->0->16 s1 @8x8" in msg
    assert "head" not in msg.split("nearest measured:")[1].split("; measure")[0]  # same kind only
    assert "edgeauto profile --device host --space fbnet-micro" in msg
    assert str(t.path) in msg
    with pytest.raises(TableMiss):
        t.predict([pruned])
    with pytest.raises(TableMiss):
        t.block_ms(pruned)


def test_nearest_orders_by_distance() -> None:
    t = small_table()
    key = OpKey("mbconv", 8, 23, 16, 8, 8, 3, 1)
    near = t.nearest(key, n=2)
    assert near[0] == OpKey("mbconv", 8, 24, 16, 8, 8, 3, 1)
    assert all(k.kind == "mbconv" for k in near) and len(near) == 2


# -- the measured micro table -----------------------------------------------------------------


def test_micro_table_is_complete(micro_table: LatencyTable, micro_space) -> None:
    keys = micro_space.all_keys()
    assert len(keys) == 21
    assert micro_table.coverage(keys) == 1.0
    assert micro_table.missing(keys) == []
    assert set(micro_table.entries) >= keys


def test_micro_table_provenance(micro_table: LatencyTable, host_profile: DeviceProfile) -> None:
    p = micro_table.provenance
    assert p.device == "host"
    assert p.runtime == "litert"
    assert p.runtime_version == importlib.metadata.version("ai-edge-litert")
    assert p.threads == host_profile.threads >= 1
    assert p.runs >= 30 and p.warmup >= 1
    assert p.space == MICRO
    assert p.cpu_model and p.cpu_model == cpu_model()
    when = dt.datetime.fromisoformat(p.date)
    assert when.tzinfo is not None
    assert abs(dt.datetime.now(dt.UTC) - when) < dt.timedelta(hours=2)


def test_micro_table_stats_are_sane(micro_table: LatencyTable) -> None:
    ov = micro_table.overhead
    assert ov is not None and 0 < ov.median_ms <= ov.p90_ms
    for key, stat in micro_table.entries.items():
        assert stat.median_ms > 0, key
        assert stat.p90_ms >= stat.median_ms, key
        # whole rounds; a round disturbed by other load is dropped (LatencyStat.from_rounds)
        assert 0 < stat.runs <= micro_table.provenance.runs, key
        assert stat.median_ms < 50, f"{key.describe()} took {stat.median_ms} ms: not a micro block"


def test_micro_table_location(micro_tables: Path, host_profile: DeviceProfile) -> None:
    path = micro_table_path(micro_tables)
    assert table_path(host_profile, MICRO, micro_tables) == path
    assert has_table(host_profile, micro_tables)
    assert not has_table(host_profile, micro_tables / "elsewhere")
    assert micro_tables.resolve() != tables_dir().resolve()


def test_tables_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host_profile) -> None:
    monkeypatch.setenv("EDGEAUTO_TABLES", str(tmp_path))
    assert tables_dir() == tmp_path
    assert (
        table_path(host_profile, MICRO)
        == tmp_path / "host" / "litert" / "fp32-t1" / f"{MICRO}.json"
    )


def test_reopen_measures_nothing(tables_copy: Path, host_profile, micro_space) -> None:
    path = micro_table_path(tables_copy)
    before_bytes = path.read_bytes()
    before_mtime = path.stat().st_mtime_ns
    before = LatencyTable.load(path)
    table, predictor = open_table(host_profile, micro_space, NullReporter(), root=tables_copy)
    assert table.entries == before.entries
    assert table.overhead == before.overhead
    assert table.sha256() == before.sha256()
    assert path.read_bytes() == before_bytes
    assert path.stat().st_mtime_ns == before_mtime  # not even rewritten
    assert predictor.measured_on_demand == 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_open_table_resumes_a_partial_table(tables_copy: Path, host_profile, micro_space) -> None:
    path = micro_table_path(tables_copy)
    full = LatencyTable.load(path)
    dropped = sorted(full.entries)[:2]
    partial = LatencyTable.load(path)
    for k in dropped:
        del partial.entries[k]
    partial.save()
    kept = {k: v for k, v in partial.entries.items()}
    table, _ = open_table(host_profile, micro_space, NullReporter(), root=tables_copy)
    assert table.missing(micro_space.all_keys()) == []
    # only the two dropped keys were measured; the rest kept their stats
    assert {k: table.entries[k] for k in kept} == kept
    assert all(table.entries[k].median_ms > 0 for k in dropped)
    reloaded = LatencyTable.load(path)
    assert reloaded.entries == table.entries  # saved to disk


def test_measuring_predictor_adds_missing_key(tables_copy: Path, host_profile, micro_space) -> None:
    path = micro_table_path(tables_copy)
    table = LatencyTable.load(path)
    settings = TimingSettings(runs=30, warmup=5)
    timer = local_timer(host_profile, settings)
    predictor = MeasuringPredictor(table, timer)
    # a pruned expansion width no space lists: 8 -> 20 -> 16, kernel 5
    pruned = OpKey("mbconv", 8, 20, 16, 8, 8, 5, 1)
    assert pruned not in table.entries
    stem = next(k for k in table.entries if k.kind == "stem")
    head = next(k for k in table.entries if k.kind == "head" and k.cin == 16)
    keys = [stem, pruned, head]
    ms = predictor.predict(keys)
    assert predictor.measured_on_demand == 1
    assert pruned in table.entries
    stat = table.entries[pruned]
    assert 0 < stat.median_ms <= stat.p90_ms
    # whole rounds, a disturbed one dropped (LatencyStat.from_rounds)
    assert stat.runs % settings.runs == 0 and stat.runs <= settings.runs * settings.rounds
    assert ms == pytest.approx(table.predict(keys))
    # saved to the table's file, so later runs predict it from measurement
    assert LatencyTable.load(path).entries[pruned] == stat
    # a second prediction measures nothing
    assert predictor.predict(keys) == pytest.approx(ms)
    assert predictor.block_ms(pruned) == pytest.approx(table.block_ms(pruned))
    assert predictor.measured_on_demand == 1


def test_predictor_without_timer_raises_table_miss(micro_table: LatencyTable) -> None:
    predictor = MeasuringPredictor(micro_table, timer=None)
    pruned = OpKey("mbconv", 8, 20, 16, 8, 8, 5, 1)
    with pytest.raises(TableMiss, match="edgeauto profile --device host"):
        predictor.predict([pruned])
    assert predictor.measured_on_demand == 0
    assert pruned not in micro_table.entries


def test_check_compatible(micro_table: LatencyTable, host_profile: DeviceProfile) -> None:
    litert, ort = get_runtime("litert"), get_runtime("onnxruntime")
    check_compatible(micro_table, host_profile, litert)  # the same way: fine
    with pytest.raises(ConfigError, match="delete it or pass another --tables"):
        check_compatible(micro_table, host_profile, ort)
    other_threads = host_profile.model_copy(update={"threads": host_profile.threads + 3})
    with pytest.raises(ConfigError, match=f"{host_profile.threads + 3} threads"):
        check_compatible(micro_table, other_threads, litert)
    other_device = host_profile.model_copy(update={"name": "my-board"})
    with pytest.raises(ConfigError, match="my-board"):
        check_compatible(micro_table, other_device, litert)


def test_open_table_rejects_incompatible_table(
    tables_copy: Path, host_profile: DeviceProfile, micro_space
) -> None:
    path = micro_table_path(tables_copy)
    table = LatencyTable.load(path)
    table.provenance = dataclasses.replace(table.provenance, threads=host_profile.threads + 1)
    table.save()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="was measured for"):
        open_table(host_profile, micro_space, NullReporter(), root=tables_copy)
    assert path.read_bytes() == before


def test_profile_settings_validation() -> None:
    with pytest.raises(ConfigError, match="runs must be >= 30"):
        TimingSettings(runs=10)
    with pytest.raises(ConfigError, match="warmup"):
        TimingSettings(warmup=0)
    with pytest.raises(ConfigError, match="rounds"):
        TimingSettings(rounds=0)


def test_local_timer_refuses_remote_profiles(host_profile: DeviceProfile) -> None:
    from edgeauto.devices.profile import load_profile

    with pytest.raises(RunnerError, match="reached over ssh"):
        local_timer(load_profile("raspberry-pi-4"), TimingSettings())
    assert local_timer(host_profile, TimingSettings()).threads == host_profile.threads


def test_open_table_remote_without_table(tmp_path: Path, micro_space) -> None:
    from edgeauto.devices.profile import load_profile

    with pytest.raises(
        TableMiss, match="edgeauto profile --device raspberry-pi-4 --space fbnet-micro"
    ):
        open_table(load_profile("raspberry-pi-4"), micro_space, NullReporter(), root=tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- prediction vs the whole model ------------------------------------------------------------


def test_prediction_matches_whole_model_within_3x(
    micro_table: LatencyTable, micro_space, host_profile: DeviceProfile, tmp_path: Path
) -> None:
    """Loose sanity check: the table's sum is within 3x of the measured exported model."""
    litert = get_runtime("litert")
    cheapest = micro_space.cheapest(micro_table.block_ms)
    archs = [cheapest, largest_arch(micro_space)]
    assert archs[0] != archs[1]
    preds = []
    for i, arch in enumerate(archs):
        model = micro_space.build(arch).eval()
        predicted = micro_table.predict(micro_space.blocks(arch))
        onnx_path = export_onnx(model, micro_space.input_shape, tmp_path / f"m{i}.onnx")
        artifact = litert.from_onnx(onnx_path, tmp_path / f"m{i}.tflite")
        measured = litert.measure(artifact, host_profile.threads, runs=200, warmup=50).median_ms
        ratio = predicted / measured
        assert 1 / 3 <= ratio <= 3, f"{arch.describe()}: predicted {predicted}, measured {measured}"
        preds.append(predicted)
    assert preds[0] <= preds[1]  # the cheapest arch is predicted cheapest


def test_shipped_table_untouched(micro_tables: Path) -> None:
    """The suite's table lives in a temp folder, never in the repository's hw_latency/."""
    repo_tables = Path(__file__).resolve().parents[1] / "hw_latency"
    assert not micro_tables.resolve().is_relative_to(repo_tables.resolve())


# -- one latency model per device, chosen from its cost model ------------------------------------


def test_for_profile_chooses_from_the_cost_model(
    micro_table: LatencyTable, micro_space, host_profile: DeviceProfile
) -> None:
    """``latency`` devices price from their table (ms, calibrated), ``relu-count`` devices
    count ReLU-equivalents; both are registered latency models."""
    from edgeauto.devices.profile import load_profile
    from edgeauto.latency.choose import COST_MODELS, for_profile
    from edgeauto.latency.model import LATENCY_MODELS, LatencyModel
    from edgeauto.latency.relu import ReluCost
    from edgeauto.linearize.snl import relu_cost

    keys = micro_space.blocks(largest_arch(micro_space))
    model = for_profile(host_profile, table=micro_table, calibration=1.5)
    assert isinstance(model, MeasuringPredictor) and model.cost_unit == "ms"
    assert model.table is micro_table and model.timer is None
    assert model.predict(keys) == pytest.approx(1.5 * micro_table.predict(keys))
    pi = load_profile("pi-relu")
    relu = for_profile(pi, table=micro_table)  # the table is not what it is priced by
    assert isinstance(relu, ReluCost) and relu.cost_unit == "relu-equivalents"
    assert relu.flop_weight == pi.flop_weight
    built = micro_space.build(largest_arch(micro_space))
    assert relu.predict(keys) == pytest.approx(relu_cost(built, (1, 8, 8), pi.flop_weight))
    assert relu.predict([]) == 0.0
    for profile, chosen in ((host_profile, model), (pi, relu)):
        assert isinstance(chosen, LatencyModel)
        assert LATENCY_MODELS.get(COST_MODELS[profile.cost_model]) is type(chosen)
    with pytest.raises(ConfigError, match="pass table="):
        for_profile(host_profile)
