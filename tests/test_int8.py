"""Post-training full-integer TFLite: real LiteRT runs of int8 and float32 on digits; int8
latency tables and ``--precision int8`` runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from helpers import DIGITS_SHAPE, MICRO, assert_one_line_error, build_trained, micro_table_path

import edgeauto
from edgeauto.devices.profile import profiles_dir
from edgeauto.errors import ConfigError, ExportError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.quantize import (
    MIN_AGREEMENT,
    Int8Check,
    calibration_set,
    check_int8,
    export_int8,
)
from edgeauto.export.runtimes import get_runtime
from edgeauto.export.tflite import export_tflite, export_tflite_int8
from edgeauto.fileio import sha256_file
from edgeauto.jobs.search import new_job
from edgeauto.latency.builder import TimingSettings, check_compatible, make_timer
from edgeauto.latency.device import open_table
from edgeauto.latency.table import LatencyTable
from edgeauto.progress import NullReporter
from edgeauto.spaces.modules import block_for_key


@pytest.fixture(scope="module")
def both(tmp_path_factory, micro_space, trained_micro, digits):
    out = tmp_path_factory.mktemp("int8")
    model = build_trained(micro_space, trained_micro)
    onnx_path = export_onnx(model, DIGITS_SHAPE, out / "model.onnx")
    fp32 = export_tflite(onnx_path, out / "model.tflite")
    int8 = export_int8(onnx_path, out / "model_int8.tflite", digits.x_train)
    return fp32, int8


def test_int8_model_is_integer_end_to_end(both) -> None:
    from ai_edge_litert.interpreter import Interpreter

    _, int8 = both
    it = Interpreter(model_path=str(int8))
    assert it.get_input_details()[0]["dtype"] == np.int8
    assert it.get_output_details()[0]["dtype"] == np.int8
    kinds = {np.dtype(t["dtype"]).name for t in it.get_tensor_details()}
    assert "float32" not in kinds, kinds  # full integer: no float tensor left in the graph


def test_int8_agrees_with_float32_on_validation(both, digits) -> None:
    fp32, int8 = both
    check = check_int8(fp32, int8, digits.x_val, digits.y_val)
    assert check.samples == len(digits.y_val)
    assert check.fp32_acc > 0.8, check
    assert check.agreement >= 0.95, check  # digits is tiny: 99% is the report's bar, not this
    assert abs(check.int8_acc - check.fp32_acc) <= 0.03, check
    assert check.int8_bytes < 0.8 * check.fp32_bytes, check  # a tiny net: graph overhead dominates


def test_int8_session_is_timed_by_the_same_runtime(both) -> None:
    _, int8 = both
    stat = get_runtime("litert").measure(int8, threads=1, runs=20, warmup=5)
    assert 0 < stat.median_ms < 50


def test_low_agreement_gives_a_warning() -> None:
    good = Int8Check(100, 0.9, 0.9, 0.995, 4000, 1000)
    bad = Int8Check(100, 0.9, 0.7, 0.8, 4000, 1000)
    assert good.ok and good.warning() is None
    assert (
        not bad.ok and "80.0%" in (bad.warning() or "") and f"{MIN_AGREEMENT:.0%}" in bad.warning()
    )
    assert bad.to_json()["ok"] is False


def test_calibration_comes_from_training_inputs(digits) -> None:
    cal = calibration_set(digits.x_train, samples=50, seed=3)
    assert cal.shape == (50, *DIGITS_SHAPE) and cal.dtype == np.float32
    assert np.array_equal(cal, calibration_set(digits.x_train, samples=50, seed=3))


def test_bad_calibration_is_a_typed_error(both, tmp_path) -> None:
    fp32, _ = both
    onnx_path = fp32.with_suffix(".onnx")
    with pytest.raises(ExportError, match=r"\(N, C, H, W\)"):
        export_tflite_int8(onnx_path, tmp_path / "x.tflite", np.zeros((0, 1, 8, 8), np.float32))
    assert not (tmp_path / "x.tflite").exists()


# -- int8 latency tables and --precision int8 -------------------------------------------------


@pytest.fixture(scope="module")
def int8_tables(tmp_path_factory, host_profile, micro_space) -> Path:
    """Root of a measured int8 table of fbnet-micro at the digits shape (read-only)."""
    root = tmp_path_factory.mktemp("int8-tables")
    table, predictor = open_table(host_profile, micro_space, NullReporter(), root, "int8")
    predictor.timer.close()
    assert table.path == micro_table_path(root, folder="int8-t1")
    return root


def test_int8_table_holds_int8_timings(int8_tables, host_profile, micro_space) -> None:
    table = LatencyTable.load(micro_table_path(int8_tables, folder="int8-t1"))
    assert table.provenance.precision == "int8"
    assert table.to_json()["provenance"]["precision"] == "int8"
    assert not table.missing(micro_space.all_keys()) and table.overhead is not None
    assert "--precision int8" in table.profile_command()
    # the blocks it timed are full-integer LiteRT models: time one again, compare
    key = max(table.entries, key=lambda k: table.entries[k].median_ms)
    timer = make_timer(host_profile, TimingSettings(runs=50, warmup=10, rounds=3), "int8")
    try:
        artifact = timer.export(block_for_key(key), (key.cin, key.h, key.w), "probe")
        it = Interpreter(model_path=str(artifact))
        assert it.get_input_details()[0]["dtype"] == np.int8
        again = timer._measure([artifact])[0].median_ms
    finally:
        timer.close()
    # one block of a few us on a shared machine: a loose band, but one file off by a whole
    # kind of model (fp32 vs int8, another block) would usually leave it
    assert 0.4 < again / table.entries[key].median_ms < 2.5, (again, table.entries[key])


def test_fp32_tables_keep_their_json_and_load_as_fp32(micro_table) -> None:
    data = micro_table.to_json()
    assert "precision" not in data["provenance"]  # so the hash of an fp32 table is unchanged
    assert LatencyTable.from_json(data).provenance.precision == "fp32"


def test_int8_table_refused_for_fp32(int8_tables, tmp_path, host_profile, micro_space) -> None:
    root = tmp_path / "tables"
    wrong = micro_table_path(root)  # the fp32 place
    wrong.parent.mkdir(parents=True)
    shutil.copyfile(micro_table_path(int8_tables, folder="int8-t1"), wrong)
    with pytest.raises(ConfigError, match="holds int8 timings, not fp32"):
        open_table(host_profile, micro_space, NullReporter(), root)
    table = LatencyTable.load(wrong)
    with pytest.raises(ConfigError, match="--precision int8"):
        check_compatible(table, host_profile, get_runtime("litert"), precision="fp32")
    check_compatible(table, host_profile, get_runtime("litert"), precision="int8")


def test_int8_table_for_an_fp32_run_is_one_line(cli, int8_tables, tmp_path) -> None:
    root = tmp_path / "tables"
    wrong = micro_table_path(root)
    wrong.parent.mkdir(parents=True)
    shutil.copyfile(micro_table_path(int8_tables, folder="int8-t1"), wrong)
    r = cli(
        "run", "--dataset", "digits", "--space", MICRO, "--tables", str(root),
        "--out", str(tmp_path / "out"), "--precision", "fp32",
    )  # fmt: skip
    assert_one_line_error(r, "ConfigError", "holds int8 timings, not fp32", "--precision int8")


def test_int8_needs_litert_and_the_int8_export(cli, tmp_path) -> None:
    text = (profiles_dir() / "host.yaml").read_text()
    ort = tmp_path / "host-ort.yaml"
    ort.write_text(text.replace("name: host", "name: host-ort").replace("litert", "onnxruntime"))
    out = ["--out", str(tmp_path / "o")]
    for cmd, more in (("profile", []), ("run", out), ("search", out), ("compress", out)):
        more = [*more, "--from", str(tmp_path)] if cmd == "compress" else more
        r = cli(cmd, "--device", str(ort), "--precision", "int8", *more)
        assert_one_line_error(r, "ConfigError", "needs a litert device", "host-ort")
    assert not (tmp_path / "o").exists()  # refused before the run directory is made
    r = cli("run", "--precision", "int8", "--no-int8", "--out", str(tmp_path / "o"))
    assert_one_line_error(r, "ConfigError", "drop --no-int8")
    r = cli("profile", "--precision", "int4")
    assert_one_line_error(r, "ConfigError", "fp32, int8", "--precision")


def test_search_study_records_int8_only_when_set() -> None:
    assert "precision" not in new_job({"out": "x"}, {}).spec().options  # old studies resume
    assert new_job({"out": "x", "precision": "int8"}, {}).spec().options["precision"] == "int8"


def test_run_int8_ends_with_the_verdict_on_model_int8(int8_tables, tmp_path) -> None:
    tables = tmp_path / "tables"
    shutil.copytree(int8_tables, tables)
    path = micro_table_path(tables, folder="int8-t1")
    history = len(LatencyTable.load(path).history)
    m = edgeauto.run(
        device="host", latency_ms=1.0, dataset="digits", space=MICRO, trials=2, epochs=2,
        finetune_epochs=1, tables=str(tables), out=str(tmp_path / "run"), precision="int8",
        check=False,
    )  # fmt: skip
    lat, acc = m["latency"], m["accuracy"]
    assert lat["precision"] == "int8" and lat["artifact"] == "litert_int8"
    assert m.measured_ms == lat["measured"]["litert_int8_ms"] != lat["measured"]["litert_ms"]
    assert lat["within_budget"] == (m.measured_ms <= 1.0 * 1.1)
    assert m.artifact("tflite_int8").name == "model_int8.tflite"
    assert 0 <= acc["fp32"] <= 1 and 0 <= acc["int8"] <= 1 and "val" in acc
    assert acc["int8"] == m["parity"]["litert_int8"]["int8_acc"]
    # search and pruning priced with the int8 table; pruning measured the whole model first
    assert m["table"]["path"] == str(path)
    assert m["pruning"]["scale"] != 1.0
    # ... beside a reference converted as the deployed model is: full-integer
    ref = m["latency"]["reference"]
    assert m.measured_ms == pytest.approx(ref["ratio"] * ref["ms"])
    assert _input_dtype(Path(ref["path"])) == _input_dtype(m.artifact("tflite_int8")) != "float32"
    # the verification recorded is model_int8.tflite's, in the int8 table's history
    table = LatencyTable.load(path)
    assert len(table.history) == history + 1
    assert table.history[-1].model_sha256 == sha256_file(m.artifact("tflite_int8"))
    assert table.history[-1].measured_ms == m.measured_ms
    assert not micro_table_path(tables).exists()  # no fp32 table was made or used
    assert "int8: model_int8.tflite" in (tmp_path / "run" / "report.md").read_text()


def _input_dtype(path: Path) -> str:
    it = Interpreter(model_path=str(path))
    return np.dtype(it.get_input_details()[0]["dtype"]).name
