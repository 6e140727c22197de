"""ONNX and TFLite export of real models, checked by the real runtimes against PyTorch."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import DIGITS_SHAPE, build_trained

from edgeauto.errors import ExportError, RunnerError
from edgeauto.export.onnx import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx
from edgeauto.export.parity import MAX_ABS_DIFF, check_parity
from edgeauto.export.runtimes import get_runtime, list_runtimes
from edgeauto.export.tflite import export_tflite
from edgeauto.spaces import get_space


@pytest.fixture(scope="module")
def exported(tmp_path_factory, micro_space, trained_micro):
    """The trained micro model and its ONNX and TFLite files."""
    out = tmp_path_factory.mktemp("export")
    model = build_trained(micro_space, trained_micro)
    onnx_path = export_onnx(model, DIGITS_SHAPE, out / "model.onnx")
    tflite_path = export_tflite(onnx_path, out / "model.tflite")
    return model, out, onnx_path, tflite_path


def test_files_written_atomically(exported) -> None:
    _, out, onnx_path, tflite_path = exported
    assert onnx_path == out / "model.onnx" and tflite_path == out / "model.tflite"
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.tflite"]
    assert onnx_path.stat().st_size > 1000
    assert tflite_path.read_bytes()[4:8] == b"TFL3"  # the TFLite flatbuffer identifier


def test_onnx_is_valid(exported) -> None:
    model, _, onnx_path, _ = exported
    m = onnx.load(str(onnx_path))
    onnx.checker.check_model(m, full_check=True)
    assert [i.name for i in m.graph.input] == [INPUT_NAME]
    assert [o.name for o in m.graph.output] == [OUTPUT_NAME]
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, *DIGITS_SHAPE]
    out_dims = [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == [1, 10]
    assert any(op.version == OPSET for op in m.opset_import if op.domain in ("", "ai.onnx"))
    assert not m.graph.node[0].op_type.startswith("ATen")
    assert model.training is False  # export restored the mode it found


def test_export_keeps_training_mode(micro_space, trained_micro, tmp_path: Path) -> None:
    model = build_trained(micro_space, trained_micro).train()
    export_onnx(model, DIGITS_SHAPE, tmp_path / "m.onnx")
    assert model.training is True


@pytest.mark.parametrize("runtime_name", list_runtimes())
def test_parity_on_digits(exported, digits, runtime_name: str) -> None:
    model, _, onnx_path, tflite_path = exported
    rt = get_runtime(runtime_name)
    artifact = {"onnxruntime": onnx_path, "litert": tflite_path}[runtime_name]
    assert artifact.suffix == rt.suffix
    inputs = digits.x_val[:64]
    parity = check_parity(model, rt, artifact, inputs)
    assert parity.runtime == runtime_name
    assert parity.samples == 64
    assert parity.max_abs_diff <= 1e-4 == MAX_ABS_DIFF
    assert parity.top1_agreement == 1.0
    # the runtime's own predictions are the model's, and they are good ones
    session = rt.load(artifact, 1)
    assert session.input_shape == (1, *DIGITS_SHAPE)
    preds = np.array([session.run(x[None].numpy()).argmax() for x in inputs])
    assert (preds == digits.y_val[:64].numpy()).mean() > 0.5


@pytest.mark.parametrize("runtime_name", list_runtimes())
def test_parity_catches_a_different_model(exported, digits, runtime_name: str) -> None:
    model, _, onnx_path, tflite_path = exported
    artifact = {"onnxruntime": onnx_path, "litert": tflite_path}[runtime_name]
    changed = copy.deepcopy(model)  # weights perturbed after export
    with torch.no_grad():
        changed.head.fc.weight.add_(0.05 * torch.randn_like(changed.head.fc.weight))
    with pytest.raises(ExportError) as exc:
        check_parity(changed, get_runtime(runtime_name), artifact, digits.x_val[:32])
    msg = str(exc.value)
    assert artifact.name in msg and runtime_name in msg
    assert "disagrees with PyTorch" in msg and "limit 0.0001" in msg
    # the original still passes: the check is about the model, not the artifact alone
    check_parity(model, get_runtime(runtime_name), artifact, digits.x_val[:8])


@pytest.mark.parametrize("shape", [(1, 5, 7), (3, 6, 10)], ids=["gray-5x7", "rgb-6x10"])
def test_non_square_inputs_keep_layout(shape: tuple[int, int, int], tmp_path: Path) -> None:
    """LiteRT runs NHWC: a non-square, multi-channel input catches any transposition slip."""
    space = get_space("fbnet-micro", shape, 4)
    torch.manual_seed(0)
    model = space.build(space.sample(random.Random(5))).eval()
    onnx_path = export_onnx(model, shape, tmp_path / "m.onnx")
    inputs = torch.rand(8, *shape)
    for name in list_runtimes():
        rt = get_runtime(name)
        artifact = rt.from_onnx(onnx_path, tmp_path / f"m{rt.suffix}")
        parity = check_parity(model, rt, artifact, inputs)
        assert parity.max_abs_diff <= MAX_ABS_DIFF and parity.top1_agreement == 1.0
        assert rt.load(artifact, 1).input_shape == (1, *shape)


def test_tflite_conversion_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an onnx model")
    with pytest.raises(ExportError, match=r"TFLite conversion of broken\.onnx failed"):
        export_tflite(bad, tmp_path / "broken.tflite")
    assert not (tmp_path / "broken.tflite").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["broken.onnx"]


@pytest.mark.parametrize("runtime_name", list_runtimes())
def test_runtime_rejects_a_broken_artifact(runtime_name: str, tmp_path: Path) -> None:
    rt = get_runtime(runtime_name)
    bad = tmp_path / f"broken{rt.suffix}"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(RunnerError, match="cannot load") as exc:
        rt.load(bad, 1)
    assert "\n" not in str(exc.value) and bad.name in str(exc.value)
