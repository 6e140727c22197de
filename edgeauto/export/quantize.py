"""Post-training full-integer (int8) TFLite models, checked against their float32 twin.

The calibration set is drawn from the training split (never validation), as TFLite's
representative-dataset recipe asks; the check runs both models with the real LiteRT
interpreter on the validation split and reports accuracy and top-1 agreement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeauto.export.runtimes import get_runtime
from edgeauto.export.tflite import export_tflite_int8

#: int8 must agree with float32 on at least this share of validation inputs, else a warning.
MIN_AGREEMENT = 0.99
CALIBRATION_SAMPLES = 200


def calibration_set(
    x_train: torch.Tensor, samples: int = CALIBRATION_SAMPLES, seed: int = 0
) -> np.ndarray:
    """A seeded sample of ``samples`` training inputs (NCHW float32) for the int8 scales."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x_train), generator=g)[: min(samples, len(x_train))]
    return x_train[idx].numpy().astype(np.float32)


@dataclass(frozen=True)
class Int8Check:
    """float32 vs int8 on the same validation inputs, both run by LiteRT."""

    samples: int
    fp32_acc: float
    int8_acc: float
    agreement: float
    fp32_bytes: int
    int8_bytes: int

    @property
    def ok(self) -> bool:
        return self.agreement >= MIN_AGREEMENT

    def warning(self) -> str | None:
        """The report's warning when int8 disagrees with float32 too often, else None."""
        if self.ok:
            return None
        return (
            f"int8 top-1 agrees with float32 on {self.agreement:.1%} of {self.samples} "
            f"validation inputs (< {MIN_AGREEMENT:.0%}); int8 accuracy {self.int8_acc:.4f} vs "
            f"float32 {self.fp32_acc:.4f}: deploy model.tflite, or calibrate on more samples"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "min_agreement": MIN_AGREEMENT}


def predictions(path: Path, x: torch.Tensor, threads: int = 1) -> np.ndarray:
    """Top-1 class of every input, one at a time (batch 1, as on the device)."""
    session = get_runtime("litert").load(path, threads)
    return np.array([int(np.argmax(session.run(xi[None].numpy()))) for xi in x])


def check_int8(
    fp32: Path, int8: Path, x_val: torch.Tensor, y_val: torch.Tensor, threads: int = 1
) -> Int8Check:
    """Accuracy of both models and their top-1 agreement on ``(x_val, y_val)``."""
    p32, p8 = predictions(fp32, x_val, threads), predictions(int8, x_val, threads)
    y = y_val.numpy()
    return Int8Check(
        samples=len(y),
        fp32_acc=float((p32 == y).mean()),
        int8_acc=float((p8 == y).mean()),
        agreement=float((p32 == p8).mean()),
        fp32_bytes=Path(fp32).stat().st_size,
        int8_bytes=Path(int8).stat().st_size,
    )


def export_int8(onnx_path: Path, out: Path, x_train: torch.Tensor, seed: int = 0) -> Path:
    """Quantize ``onnx_path`` to ``out`` with a calibration set from ``x_train``."""
    return export_tflite_int8(onnx_path, out, calibration_set(x_train, seed=seed))


#: Inputs a timed block or network is calibrated on (the scales do not change the kernels).
TIMING_CALIBRATION_SAMPLES = 8


def timing_calibration(
    input_shape: tuple[int, int, int], samples: int = TIMING_CALIBRATION_SAMPLES, seed: int = 0
) -> np.ndarray:
    """Fixed-seed standard-normal inputs (NCHW float32) to quantize a model that is only timed.

    A latency table's block has no training inputs of its own. Its int8 scales follow the
    calibration data, but its kernels (int8 conv, depthwise, add, requantize) and their cost
    do not: random data times the same model a deployed one is, and the same seed keeps a
    block's artifact identical from one profiling run to the next.
    """
    rng = np.random.default_rng(seed)
    return rng.standard_normal((samples, *input_shape)).astype(np.float32)


def export_int8_timed(
    onnx_path: Path,
    out: Path,
    input_shape: tuple[int, int, int],
    calibration: np.ndarray | None = None,
) -> Path:
    """A full-integer ``out`` to time: calibrated on ``calibration`` (a run's training inputs,
    when it has them) or else on :func:`timing_calibration`."""
    data = timing_calibration(input_shape) if calibration is None else calibration
    return export_tflite_int8(onnx_path, out, data)
