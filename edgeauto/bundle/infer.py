"""Classify images with this run's model; needs only numpy and ai-edge-litert or onnxruntime.

    python infer.py IMAGE|FOLDER|BATCH.npz [--model model.tflite | model_int8.tflite | model.onnx]
                    [--top 3]

IMAGE: .jpg/.png (or any image Pillow reads, when Pillow is installed), binary .pgm/.ppm, or
.npy pixels (H,W / H,W,C) in the dataset's units. FOLDER: every such file in it, by name.
BATCH.npz: its ``images`` array (N,H,W / N,H,W,C, the dataset's units), e.g. sample.npz.
Prints one JSON line per image: its path (``BATCH.npz[i]``), the model and the top classes
with probabilities.
"""

import argparse
import json
import pathlib
import re

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
PRE = json.loads((HERE / "preprocess.json").read_text())
PNM = (".pgm", ".ppm", ".pnm")
PILLOW = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGES = (".npy", *PNM, *PILLOW)


def images(path: pathlib.Path) -> list:
    """``path`` itself, or the image files of the folder ``path`` sorted by name."""
    if not path.exists():
        raise SystemExit(f"{path}: no such file or folder; pass an image or a folder of images")
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGES)
    if not found:
        raise SystemExit(f"{path}: no image files in the folder ({' '.join(IMAGES)})")
    return found


def sources(path: pathlib.Path) -> list:
    """(name, pixel loader) of each image: ``path``, a folder's files, or an .npz's images."""
    if path.suffix.lower() == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as batch:
            if "images" not in batch.files:
                raise SystemExit(f"{path}: no 'images' array; save the images under that key")
            xs = batch["images"]
        return [(f"{path}[{i}]", lambda x=x: scaled(x)) for i, x in enumerate(xs)]
    return [(str(p), lambda p=p: load(p)) for p in images(path)]


def scaled(x: np.ndarray) -> np.ndarray:
    """Pixels in the dataset's units as float32 in [0, 1], (H, W) or (H, W, C)."""
    x = x.astype(np.float32) / PRE["pixel_max"]
    return x[..., None] if x.ndim == 2 else x


def load(path: pathlib.Path) -> np.ndarray:
    """Pixels as float32 (H, W, C) in [0, 1]."""
    if path.suffix.lower() == ".npy":
        x = scaled(np.load(path, allow_pickle=False))
    elif path.suffix.lower() in PNM or magic(path) in (b"P5", b"P6"):
        x = load_pnm(path)
    else:
        x = load_pillow(path)
    return x[..., None] if x.ndim == 2 else x


def magic(path: pathlib.Path) -> bytes:
    """The first two bytes: a PGM/PPM under another name is still read without Pillow."""
    with open(path, "rb") as f:
        return f.read(2)


def load_pnm(path: pathlib.Path) -> np.ndarray:
    """A binary PGM/PPM (P5/P6, 8 or 16 bits) scaled by its maxval."""
    m = re.match(rb"(P[56])\s+(\d+)\s+(\d+)\s+(\d+)\s", data := path.read_bytes())
    if not m:
        raise SystemExit(f"{path}: not a binary PGM/PPM (P5/P6) or .npy image")
    w, h, top = (int(v) for v in m.groups()[1:])
    raw = np.frombuffer(data[m.end() :], ">u2" if top > 255 else "u1")
    return raw[: w * h * (3 if m[1] == b"P6" else 1)].reshape(h, w, -1) / np.float32(top)


def load_pillow(path: pathlib.Path) -> np.ndarray:
    """JPEG, PNG ... through Pillow (optional), converted and resized as training images were
    (edgeauto's folder datasets: ``convert`` to L or RGB, ``resize`` to the input size)."""
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit(
            f"{path}: JPEG/PNG need Pillow (pip install pillow); or pass .pgm/.ppm/.npy"
        ) from None
    _, c, h, w = PRE["input_shape_nchw"]
    try:
        with Image.open(path) as image:
            image = image.convert("L" if c == 1 else "RGB").resize((w, h))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SystemExit(f"{path}: not an image Pillow can read ({type(exc).__name__})") from None
    return np.asarray(image, np.float32) / np.float32(255)


def to_input(x: np.ndarray) -> np.ndarray:
    """Resize (nearest), match channels, normalise: a (1, C, H, W) float32 batch."""
    _, c, h, w = PRE["input_shape_nchw"]
    x = x[np.arange(h) * x.shape[0] // h][:, np.arange(w) * x.shape[1] // w]
    x = x.mean(2, keepdims=True) if c == 1 else np.repeat(x, c // x.shape[2], 2)
    x = (x - np.float32(PRE["mean"])) / np.float32(PRE["std"])
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32)


def open_model(model: pathlib.Path):
    """A function from an input batch to the first image's logits (the model loaded once)."""
    if not model.is_file():
        raise SystemExit(f"{model}: no such model; pass --model model.tflite or model.onnx")
    if model.suffix == ".onnx":
        import onnxruntime as ort

        s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return lambda x: s.run(None, {name: x})[0][0]
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model))
    it.allocate_tensors()
    return lambda x: litert_logits(it, x)


def litert_logits(it, x: np.ndarray) -> np.ndarray:
    """One LiteRT inference; a full-integer model's input and output (de)quantized."""
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
    ap.add_argument("image", type=pathlib.Path, help="an image, a folder of them, or an .npz")
    ap.add_argument("--model", type=pathlib.Path, default=HERE / "model.tflite")
    ap.add_argument("--top", type=int, default=3)
    args = ap.parse_args()
    labels = (HERE / "labels.txt").read_text().split("\n")
    items, logits = sources(args.image), open_model(args.model)
    for name, pixels in items:
        z = logits(to_input(pixels()))
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        top = [{"label": labels[k], "p": round(float(p[k]), 4)} for k in np.argsort(-p)[: args.top]]
        line = {"image": name, "model": args.model.name, "top": top}
        print(json.dumps(line), flush=True)  # each line as it is ready: a long folder streams


if __name__ == "__main__":
    main()
