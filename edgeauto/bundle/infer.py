"""Classify an image with this run's model; needs only numpy and ai-edge-litert or onnxruntime.

    python infer.py IMAGE [--model model.tflite | model_int8.tflite | model.onnx] [--top 3]

IMAGE: binary .pgm/.ppm, or .npy pixels (H,W / H,W,C) in the dataset's units.
"""

import argparse
import json
import pathlib
import re

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
PRE = json.loads((HERE / "preprocess.json").read_text())


def load(path: pathlib.Path) -> np.ndarray:
    """Pixels as float32 (H, W, C) in [0, 1]."""
    if path.suffix == ".npy":
        x = np.load(path, allow_pickle=False).astype(np.float32) / PRE["pixel_max"]
    else:
        m = re.match(rb"(P[56])\s+(\d+)\s+(\d+)\s+(\d+)\s", data := path.read_bytes())
        if not m:
            raise SystemExit(f"{path}: not a binary PGM/PPM (P5/P6) or .npy image")
        w, h, top = (int(v) for v in m.groups()[1:])
        raw = np.frombuffer(data[m.end() :], ">u2" if top > 255 else "u1")
        x = raw[: w * h * (3 if m[1] == b"P6" else 1)].reshape(h, w, -1) / np.float32(top)
    return x[..., None] if x.ndim == 2 else x


def to_input(x: np.ndarray) -> np.ndarray:
    """Resize (nearest), match channels, normalise: a (1, C, H, W) float32 batch."""
    _, c, h, w = PRE["input_shape_nchw"]
    x = x[np.arange(h) * x.shape[0] // h][:, np.arange(w) * x.shape[1] // w]
    x = x.mean(2, keepdims=True) if c == 1 else np.repeat(x, c // x.shape[2], 2)
    x = (x - np.float32(PRE["mean"])) / np.float32(PRE["std"])
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32)


def logits(model: pathlib.Path, x: np.ndarray) -> np.ndarray:
    if model.suffix == ".onnx":
        import onnxruntime as ort

        s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        return s.run(None, {s.get_inputs()[0].name: x})[0][0]
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    x = x.transpose(0, 2, 3, 1)  # LiteRT models take NHWC
    if i["dtype"] != np.float32:  # full-integer model: quantize with the input's scale
        x = np.clip(np.round(x / i["quantization"][0] + i["quantization"][1]), -128, 127)
    it.set_tensor(i["index"], x.astype(i["dtype"]))
    it.invoke()
    y = it.get_tensor(o["index"]).astype(np.float32)[0]
    return y if o["dtype"] == np.float32 else (y - o["quantization"][1]) * o["quantization"][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", type=pathlib.Path)
    ap.add_argument("--model", type=pathlib.Path, default=HERE / "model.tflite")
    ap.add_argument("--top", type=int, default=3)
    args = ap.parse_args()
    labels = (HERE / "labels.txt").read_text().split("\n")
    z = logits(args.model, to_input(load(args.image)))
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    top = [{"label": labels[k], "p": round(float(p[k]), 4)} for k in np.argsort(-p)[: args.top]]
    print(json.dumps({"image": str(args.image), "model": args.model.name, "top": top}))


if __name__ == "__main__":
    main()
