"""ONNX -> TFLite with onnx2tf (graph conversion) and TensorFlow's TFLite converter.

onnx2tf is run in-process and asked only for the Keras model (``disable_model_save``); we
run the TFLite converter ourselves. That skips the SavedModel and float16 files onnx2tf
would write and takes ~0.5 s instead of ~15 s per model, which is what makes profiling a
whole search space with the real LiteRT runtime practical.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeauto.errors import ExportError
from edgeauto.fileio import write_bytes
from edgeauto.quiet import before_tensorflow, quiet_stderr, verbose

# onnx2tf downloads this sample from the internet for 3-channel image inputs unless it is in
# the working directory. Its content only feeds onnx2tf's own dummy inference.
_CALIB_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"
_LOCK = threading.Lock()  # onnx2tf needs a working directory: one conversion at a time


@contextlib.contextmanager
def _onnx2tf_workdir() -> Iterator[Path]:
    """A temp working directory holding the calibration sample; restores the old cwd."""
    old = os.getcwd()
    with _LOCK, tempfile.TemporaryDirectory(prefix="edgeauto-onnx2tf-") as tmp:
        rng = np.random.default_rng(0)
        np.save(Path(tmp) / _CALIB_NAME, rng.random((20, 128, 128, 3), dtype=np.float32))
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def _quiet() -> contextlib.ExitStack:
    """onnx2tf's prints, Python warnings and the converter's native lines off the terminal
    (all of them shown under ``--debug``)."""
    stack = contextlib.ExitStack()
    stack.enter_context(quiet_stderr())
    if not verbose():
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
    return stack


def _converter_modules() -> tuple[Any, Any, Any]:
    """onnx2tf, tensorflow and tf_keras (heavy: imported on the first conversion), quietly."""
    before_tensorflow()
    with quiet_stderr():
        import onnx2tf
        import tensorflow as tf
        import tf_keras  # what onnx2tf builds its Keras model with
    return onnx2tf, tf, tf_keras


def onnx_to_tflite_bytes(
    onnx_path: str | Path, calibration: np.ndarray | None = None, sparse: bool = False
) -> bytes:
    """Convert an ONNX file to a TFLite flatbuffer (NHWC input).

    Float32 by default. With ``calibration`` (float32 NCHW samples of the training inputs)
    the model is quantized post-training to full integer: int8 weights, activations, input
    and output, the scales fitted on those samples (:func:`_int8`). ``sparse`` asks the
    converter to store mostly-zero weight tensors in TFLite's sparse format
    (``Optimize.EXPERIMENTAL_SPARSITY``); LiteRT densifies them at load time.
    """
    if calibration is not None and (calibration.ndim != 4 or len(calibration) == 0):
        raise ExportError(
            f"int8 calibration needs a non-empty (N, C, H, W) float32 array, got shape "
            f"{tuple(calibration.shape)}"
        )
    onnx_path = Path(onnx_path).resolve()  # the converter runs in a work dir of its own
    onnx2tf, tf, tf_keras = _converter_modules()
    with _onnx2tf_workdir() as work, _quiet():
        local = work / "model.onnx"  # onnx2tf may rewrite its input: give it a copy
        shutil.copyfile(onnx_path, local)
        # Keras numbers its layers process-wide (model_93/tf.math.add_138) and the names go
        # into the file: without a fresh session the same model converts to a different size
        # and hash depending on how many models this process converted before
        tf_keras.backend.clear_session()
        try:
            keras_model = onnx2tf.convert(
                input_onnx_file_path=str(local), output_folder_path=str(work / "out"),
                non_verbose=True, not_use_onnxsim=True, disable_model_save=True,
            )  # fmt: skip
            converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if calibration is not None:
                _int8(converter, calibration)
            if sparse:
                converter.optimizations = [
                    *converter.optimizations,
                    tf.lite.Optimize.EXPERIMENTAL_SPARSITY,
                ]
            return bytes(converter.convert())
        except (SystemExit, Exception) as exc:  # onnx2tf calls sys.exit on unsupported ops
            raise ExportError(
                f"TFLite conversion of {Path(onnx_path).name} failed: {exc!r}"
            ) from None


def _int8(converter: object, calibration: np.ndarray) -> None:
    """Configure ``converter`` for full-integer quantization calibrated on ``calibration``.

    Integer input and output too, so an int8-only accelerator (Edge TPU, Hexagon, Ethos-U)
    runs the whole graph; callers quantize inputs with the input tensor's scale/zero point.
    """
    import tensorflow as tf

    nhwc = np.ascontiguousarray(calibration.transpose(0, 2, 3, 1), dtype=np.float32)

    def samples() -> Iterator[list[np.ndarray]]:
        for x in nhwc:
            yield [x[None]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # type: ignore[attr-defined]
    converter.representative_dataset = samples  # type: ignore[attr-defined]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # type: ignore[attr-defined]
    converter.inference_input_type = tf.int8  # type: ignore[attr-defined]
    converter.inference_output_type = tf.int8  # type: ignore[attr-defined]


def export_tflite_int8(onnx_path: str | Path, path: str | Path, calibration: np.ndarray) -> Path:
    """Convert ``onnx_path`` to a full-integer int8 ``.tflite`` and write it atomically."""
    write_bytes(path, onnx_to_tflite_bytes(onnx_path, calibration))
    return Path(path)


def export_tflite(onnx_path: str | Path, path: str | Path, sparse: bool = False) -> Path:
    """Convert ``onnx_path`` and write the float32 ``.tflite`` atomically to ``path``.

    ``sparse=True`` stores pruned weight tensors in TFLite's sparse format: on the host the
    file shrank 5-6x at 90% sparsity. Mostly LiteRT densifies them at load and XNNPACK
    computes dense (no speed-up), but very sparse fully-connected layers ran 2x faster
    (``benchmarks/sparse.py``); callers time both files and keep the faster.
    """
    write_bytes(path, onnx_to_tflite_bytes(onnx_path, sparse=sparse))
    return Path(path)
