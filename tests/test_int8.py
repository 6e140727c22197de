"""Post-training full-integer TFLite: real LiteRT runs of int8 and float32 on digits."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DIGITS_SHAPE, build_trained

from edgeauto.errors import ExportError
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
