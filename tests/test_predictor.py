"""Fusion-aware prediction: what the runtimes fuse, the registered predictors, the ridge
residual (JSON, cross-validation), whole networks measured end to end (``--validate``), and
bad tables: corrupted, truncated, another space or runtime version, bad latencies."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import MICRO, assert_one_line_error, micro_table_path, sample_archs

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import get_runtime
from edgeauto.latency.builder import TimingSettings, make_timer, validate_table
from edgeauto.latency.device import open_table
from edgeauto.latency.fusion import (
    FEATURES,
    MIN_TRAIN,
    FusionResidual,
    Predictor,
    Ridge,
    Score,
    arch_features,
    best_predictor,
    cross_validated,
    get_predictor,
    list_predictors,
)
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.latency.table import LatencyStat, LatencyTable, Verification, WholeModelRun
from edgeauto.progress import NullReporter
from edgeauto.spaces import SearchSpace
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.modules import block_for_key

FEW = TimingSettings(runs=30, warmup=5, rounds=1)
MBCONV_RES = OpKey("mbconv", 16, 96, 16, 14, 14, 5, 1, residual=True)


def synthetic_runs(table: LatencyTable, space: SearchSpace, n: int) -> list[WholeModelRun]:
    """Whole networks whose 'measured' latency departs from ``fusion`` by a known law
    (-3% per block, +2% per residual block): a regression target with a right answer."""
    runs = []
    for arch in sample_archs(space, n, seed=1):
        keys = tuple(space.blocks(arch))
        law = math.exp(-0.03 * len(keys) + 0.02 * sum(k.residual for k in keys))
        ms = table.predict(keys) * law
        runs.append(WholeModelRun(keys, ms, ms * 1.1, 100, "2026-01-01", arch.to_json()))
    return runs


# -- what a key stands for: the fused unit ------------------------------------------------------


def test_exported_block_is_one_fused_unit(tmp_path: Path) -> None:
    """conv + BN + ReLU6 is one conv with a fused activation, and the whole inverted
    residual is one key: in ONNX, in LiteRT's graph and in ONNX Runtime's optimised graph."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    onnx_path = export_onnx(
        block_for_key(MBCONV_RES).train(False), (16, 14, 14), tmp_path / "b.onnx"
    )
    nodes = [n.op_type for n in onnx.load(str(onnx_path)).graph.node]
    assert "BatchNormalization" not in nodes  # folded into the conv weights at export
    assert nodes.count("Conv") == 3 and nodes.count("Add") == 1  # expand, depthwise, project
    tflite = get_runtime("litert").from_onnx(onnx_path, tmp_path / "b.tflite")
    ops = [op["op_name"] for op in Interpreter(model_path=str(tflite))._get_ops_details()]
    assert sorted(o for o in ops if o != "TRANSPOSE") == [
        "ADD", "CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D",
    ]  # fmt: skip  # no RELU6: fused into the convs
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    optimised = onnx.load(str(tmp_path / "opt.onnx")).graph.node
    convs = [n for n in optimised if n.op_type in ("Conv", "FusedConv")]
    assert len(convs) == 3 and not [n for n in optimised if n.op_type == "Clip"]
    acts = [a for n in convs for a in n.attribute if a.name == "activation"]
    assert [onnx.helper.get_attribute_value(a) for a in acts] == [b"Clip", b"Clip"]


# -- the registered predictors ------------------------------------------------------------------


@pytest.mark.parametrize("name", list_predictors())
def test_every_predictor_predicts(name: str, micro_table: LatencyTable, micro_space) -> None:
    runs = synthetic_runs(micro_table, micro_space, MIN_TRAIN + 2)
    predictor = get_predictor(name, micro_table, runs)
    assert isinstance(predictor, Predictor) and predictor.name == name
    for run in runs[:3]:
        ms = predictor.predict(run.keys)
        assert math.isfinite(ms) and ms > 0
    assert json.loads(json.dumps(predictor.to_json()))["name"] == name
    assert predictor.signature().startswith(name)
    assert predictor.rank_only == (name == "flops")


def test_naive_counts_one_overhead_per_block(micro_table: LatencyTable, micro_space) -> None:
    keys = micro_space.blocks(sample_archs(micro_space, 1)[0])
    naive = get_predictor("naive", micro_table).predict(keys)
    fusion = get_predictor("fusion", micro_table).predict(keys)
    assert fusion == pytest.approx(micro_table.predict(keys))
    clamped = any(micro_table.entries[k].median_ms < micro_table.overhead_ms() for k in keys)
    if not clamped:  # a block faster than the overhead is clamped to 0, not negative
        assert naive - fusion == pytest.approx((len(keys) - 1) * micro_table.overhead_ms())


def test_features_are_named_and_finite(micro_table: LatencyTable, micro_space) -> None:
    keys = micro_space.blocks(sample_archs(micro_space, 1)[0])
    feats = dict(zip(FEATURES, arch_features(micro_table, keys)))
    assert len(feats) == len(FEATURES) and all(math.isfinite(v) for v in feats.values())
    assert feats["blocks"] == len(keys)
    assert feats["log_fusion_ms"] == pytest.approx(math.log(micro_table.predict(keys)))
    assert feats["input_kvalues"] == pytest.approx(1 * 8 * 8 / 1e3)
    with pytest.raises(ConfigError, match="at least one block"):
        arch_features(micro_table, [])


# -- ridge and the residual -----------------------------------------------------------------------


def test_ridge_recovers_a_linear_law_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = 0.5 + x @ np.array([0.2, -0.1, 0.0]) + rng.normal(scale=0.01, size=60)
    ridge = Ridge.fit(x, y)
    assert ridge.loo_rmse < 0.02
    assert ridge.predict(x[0]) == pytest.approx(y[0], abs=0.05)
    again = Ridge.from_json(json.loads(json.dumps(ridge.to_json())))
    assert again == ridge and again.predict(x[5]) == ridge.predict(x[5])
    assert ridge.predict([100.0, 0.0, 0.0]) == pytest.approx(y.max())  # clipped to what was seen
    with pytest.raises(ConfigError, match="malformed"):
        Ridge.from_json({"mean": [0.0]})


def test_residual_learns_what_fusion_misses(micro_table: LatencyTable, micro_space) -> None:
    runs = synthetic_runs(micro_table, micro_space, 30)
    measured = [r.measured_ms for r in runs]
    fusion = Score.of([micro_table.predict(r.keys) for r in runs], measured)
    cv = cross_validated(lambda: FusionResidual(micro_table), runs, folds=5)
    residual = Score.of(cv, measured)
    assert residual.rmspe < fusion.rmspe / 3
    assert residual.within_5pct == 1.0 and residual.spearman > 0.9
    trained = FusionResidual(micro_table).fit(runs)
    assert trained.trained_on == 30 and trained.correction(runs[0].keys) < 1  # -3% per block


def test_residual_needs_enough_networks(micro_table: LatencyTable, micro_space) -> None:
    runs = synthetic_runs(micro_table, micro_space, MIN_TRAIN - 1)
    with pytest.raises(ConfigError, match=f"needs >= {MIN_TRAIN} whole networks") as exc:
        FusionResidual(micro_table).fit(runs)
    assert "--validate" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="not trained"):
        FusionResidual(micro_table).predict(runs[0].keys)
    assert best_predictor(micro_table).name == "fusion"  # no validation data: plain fusion
    micro_table.validation = synthetic_runs(micro_table, micro_space, MIN_TRAIN)
    assert best_predictor(micro_table).name == "fusion+residual"


def test_cross_validation_never_trains_on_the_scored_run(micro_table: LatencyTable) -> None:
    seen: list[set[float]] = []

    class Spy(Predictor):
        name = "spy"

        def fit(self, runs):  # type: ignore[no-untyped-def]
            self.train = {r.measured_ms for r in runs}
            seen.append(self.train)
            return self

        def predict(self, keys):  # type: ignore[no-untyped-def]
            return float(len(self.train))

    key = next(iter(micro_table.entries))
    runs = [WholeModelRun((key,), float(i + 1), float(i + 2), 10, "d") for i in range(10)]
    out = cross_validated(lambda: Spy(micro_table), runs, folds=5)
    assert out == [8.0] * 10 and len(seen) == 5
    for train in seen:
        assert len(train) == 8
    assert set().union(*[set(range(1, 11)) - t for t in seen]) == set(map(float, range(1, 11)))
    with pytest.raises(ConfigError, match="folds must be in"):
        cross_validated(lambda: Spy(micro_table), runs, folds=11)


def test_score() -> None:
    s = Score.of([1.04, 2.0, 3.3, 4.0], [1.0, 2.0, 3.0, 5.0])
    assert s.within_5pct == 0.5 and s.within_10pct == 0.75
    assert s.rmspe == pytest.approx(math.sqrt((0.04**2 + 0 + 0.1**2 + 0.2**2) / 4))
    assert s.spearman == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="paired"):
        Score.of([1.0], [1.0])


def test_measuring_predictor_reports_its_model(micro_table: LatencyTable) -> None:
    p = MeasuringPredictor(micro_table)
    assert p.to_json()["name"] == "fusion" and p.calibration == 1.0
    keys = list(micro_table.entries)[:3]
    assert p.predict(keys) == pytest.approx(micro_table.predict(keys))


# -- whole networks measured end to end ----------------------------------------------------------


def test_validate_table_measures_whole_networks(
    tables_copy: Path, host_profile: DeviceProfile, micro_space
) -> None:
    path = micro_table_path(tables_copy)
    table = LatencyTable.load(path)
    timer = make_timer(host_profile, FEW)
    try:
        added = validate_table(table, micro_space, timer, 3)
        more = validate_table(table, micro_space, timer, 2)
    finally:
        timer.close()
    assert len(added) == 3 and len(more) == 2 and len(table.validation) == 5
    archs = [json.dumps(r.arch, sort_keys=True) for r in table.validation]
    assert len(set(archs)) == 5  # a second call measures new archs
    for run in table.validation:
        assert 0 < run.measured_ms <= run.p90_ms and run.runs == FEW.runs
        assert not table.missing(run.keys)
    reloaded = LatencyTable.load(path)
    assert reloaded.validation == table.validation  # saved with the table
    with pytest.raises(ConfigError, match="--validate must be >= 1"):
        validate_table(table, micro_space, make_timer(host_profile, FEW), 0)


def test_cli_profile_validate(cli, tables_copy: Path) -> None:
    args = ["profile", "--device", "host", "--space", MICRO, "--dataset", "digits"]
    result = cli(*args, "--tables", str(tables_copy), "--validate", "2")
    assert result.exit_code == 0, result.stderr
    assert "2 whole networks measured end to end" in result.stdout
    data = json.loads(micro_table_path(tables_copy).read_text())
    assert len(data["validation"]) == 2
    assert {"arch", "keys", "measured_ms", "p90_ms", "runs", "date"} == set(data["validation"][0])
    bad = cli(*args, "--tables", str(tables_copy), "--validate", "-1")
    assert_one_line_error(bad, "ConfigError", "--validate must be >= 0")


def test_old_tables_load_and_hash_as_before(micro_table: LatencyTable) -> None:
    data = micro_table.to_json()
    assert "validation" not in data and "history" not in data  # absent when empty
    before = micro_table.sha256()
    key = next(iter(micro_table.entries))
    micro_table.validation.append(WholeModelRun((key,), 0.1, 0.2, 30, "d", None))
    assert micro_table.sha256() != before
    again = LatencyTable.from_json(json.loads(json.dumps(micro_table.to_json())))
    assert again.validation == micro_table.validation


# -- bad tables ------------------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo[ConfigError], *fragments: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg


@pytest.mark.parametrize("cut", [0.0, 0.5, 0.99])
def test_truncated_table(tables_copy: Path, cut: float) -> None:
    path = micro_table_path(tables_copy)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ConfigError) as exc:
        LatencyTable.load(path)
    _one_line(exc, "not valid JSON", "truncated or corrupted", str(path))


def test_corrupted_table_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError) as exc:
        LatencyTable.load(path)
    _one_line(exc, "not valid JSON")
    with pytest.raises(ConfigError) as exc:
        LatencyTable.load(tmp_path)  # a directory
    _one_line(exc, "cannot be read")


@pytest.mark.parametrize(
    "where", ["entry", "overhead", "validation", "history_measured", "history_predicted"]
)
@pytest.mark.parametrize("value", [-0.01, 0, float("nan"), float("inf"), "fast", True, None])
def test_bad_latency_in_table(micro_table: LatencyTable, where: str, value: object) -> None:
    key = next(iter(micro_table.entries))
    micro_table.validation = [WholeModelRun((key,), 0.1, 0.2, 30, "d", None)]
    micro_table.history = [Verification("ab" * 32, 0.1, 0.1, "fusion", "d")]
    data = micro_table.to_json()
    target = {
        "entry": (data["entries"][0], "median_ms"), "overhead": (data["overhead"], "p90_ms"),
        "validation": (data["validation"][0], "measured_ms"),
        "history_measured": (data["history"][0], "measured_ms"),
        "history_predicted": (data["history"][0], "predicted_ms"),
    }[where]  # fmt: skip
    target[0][target[1]] = value
    text = json.dumps(data)  # NaN and Infinity as Python's json writes them
    with pytest.raises(ConfigError) as exc:
        LatencyTable.from_json(json.loads(text), Path("t.json"))
    _one_line(exc, "must be positive finite milliseconds", target[1])


def test_bad_structure_is_one_line(micro_table: LatencyTable) -> None:
    data = micro_table.to_json()
    for broken in ({**data, "entries": {"a": 1}}, {**data, "validation": [{"keys": []}]},
                   {**data, "history": [{"predicted_ms": 1}]}, {**data, "history": 3}):  # fmt: skip
        with pytest.raises(ConfigError) as exc:
            LatencyTable.from_json(broken, Path("t.json"))
        _one_line(exc, "malformed", "re-run edgeauto profile")


def test_saving_a_bad_number_leaves_the_file_alone(tables_copy: Path) -> None:
    path = micro_table_path(tables_copy)
    before = path.read_bytes()
    table = LatencyTable.load(path)
    key = next(iter(table.entries))
    table.entries[key] = LatencyStat(float("nan"), 1.0, 30)
    with pytest.raises(ConfigError) as exc:
        table.save()
    _one_line(exc, "nan", "positive finite")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_table_for_another_space(
    tables_copy: Path, host_profile: DeviceProfile, micro_space
) -> None:
    path = micro_table_path(tables_copy)
    table = LatencyTable.load(path)
    table.provenance = dataclasses.replace(table.provenance, space="fbnet-lite")
    table.save()
    before = path.read_bytes()
    with pytest.raises(ConfigError) as exc:
        open_table(host_profile, micro_space, NullReporter(), root=tables_copy)
    _one_line(exc, "is for space 'fbnet-lite', not 'fbnet-micro'", "edgeauto profile")
    assert path.read_bytes() == before


def test_table_for_another_runtime_version(
    cli, tables_copy: Path, host_profile: DeviceProfile, micro_space
) -> None:
    path = micro_table_path(tables_copy)
    table = LatencyTable.load(path)
    table.provenance = dataclasses.replace(table.provenance, runtime_version="0.0.1")
    table.save()
    before = path.read_bytes()
    with pytest.raises(ConfigError) as exc:
        open_table(host_profile, micro_space, NullReporter(), root=tables_copy)
    installed = get_runtime("litert").version()
    _one_line(exc, "measured with litert 0.0.1", f"but {installed} runs here", "re-run")
    result = cli(
        "profile", "--device", "host", "--space", MICRO, "--dataset", "digits",
        "--tables", str(tables_copy),
    )  # fmt: skip
    assert_one_line_error(result, "ConfigError", "litert 0.0.1")
    assert path.read_bytes() == before


def test_cli_profile_on_a_truncated_table(cli, tables_copy: Path) -> None:
    path = micro_table_path(tables_copy)
    path.write_bytes(path.read_bytes()[:100])
    before = path.read_bytes()
    result = cli(
        "profile", "--device", "host", "--space", MICRO, "--dataset", "digits",
        "--tables", str(tables_copy),
    )  # fmt: skip
    assert_one_line_error(result, "ConfigError", "not valid JSON", "truncated")
    assert path.read_bytes() == before
