"""The deployable part of a run directory: what a board needs besides the model files.

``labels.txt`` (one class name per line, in output order), ``preprocess.json`` (input shape,
layouts, pixel scale, mean/std) and ``infer.py``, a standalone script that classifies an
image or a folder of them (JPEG/PNG when Pillow is installed, PGM/PPM or .npy without it)
with only numpy and ``ai-edge-litert`` or ``onnxruntime`` installed
(:mod:`edgeauto.bundle.infer` is that file, copied as is). ``sample.npz``
(:mod:`edgeauto.bundle.sample`) holds a few validation images with the host's answers, and
``deploy.json`` (:mod:`edgeauto.bundle.deploy`) what ``edgeauto deploy`` found on a device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeauto.data import Dataset
from edgeauto.fileio import write_json, write_text

INFER_SOURCE = Path(__file__).with_name("infer.py")
DEPLOY_FILE = "deploy.json"


def preprocess_doc(data: Dataset) -> dict[str, Any]:
    """How a raw image becomes the model's input: ``(pixel / pixel_max - mean) / std``."""
    return {
        "input_shape_nchw": [1, *data.input_shape],
        "pixel_max": data.pixel_max,
        "mean": list(data.mean),
        "std": list(data.std),
        "tflite_layout": "NHWC",
        "onnx_layout": "NCHW",
        "dtype": "float32",
        "int8": "model_int8.tflite takes int8 input: q = round(x / scale + zero_point), "
        "with scale and zero_point from its input tensor",
    }


def write_bundle(root: Path, data: Dataset) -> dict[str, Path]:
    """Write labels.txt, preprocess.json and infer.py into ``root`` (atomically each)."""
    files = {"labels": root / "labels.txt", "preprocess": root / "preprocess.json",
             "infer": root / "infer.py"}  # fmt: skip
    write_text(files["labels"], "\n".join(data.classes) + "\n")
    write_json(files["preprocess"], preprocess_doc(data))
    write_text(files["infer"], INFER_SOURCE.read_text())
    return files


def load_deploy(root: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``root/deploy.json``'s document and why it could not be read: ``(None, None)`` when
    there is none, ``(None, reason)`` when it is unreadable."""
    path = root / DEPLOY_FILE
    if not path.is_file():
        return None, None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, " ".join(str(exc).split())
    return (doc, None) if isinstance(doc, dict) else (None, "not a JSON object")


def read_deploy(root: Path) -> dict[str, Any] | None:
    """``root/deploy.json`` when there is a readable one, else None."""
    return load_deploy(root)[0]
