"""The Python API on your own images: a folder with one subfolder per class.

    .venv/bin/python examples/own_dataset.py [--folder PATH] [--latency-ms 0.2] [--out DIR]

PATH/<class>/<image>.png|jpg|... (any size; all are resized to the first image's size).
Without --folder, a small one is written from scikit-learn's digits (8x8 grey PNGs), so the
example runs anywhere. Then: search, prune to the budget, export, verify on this machine,
and classify one image with the run's standalone infer.py, as a board would.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import edgeauto


def write_digits_folder(root: Path, per_class: int = 40) -> Path:
    """``root/<digit>/<n>.png`` from scikit-learn's digits (real 8x8 scans, 0..16 -> 0..255)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for label in range(10):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        for n, img in enumerate(d.images[d.target == label][:per_class]):
            pixels = np.round(img * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(root / str(label) / f"{n}.png")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=None)
    ap.add_argument("--latency-ms", type=float, default=0.2)
    ap.add_argument("--out", default="runs/example-folder")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--tables", default=None, help="latency tables folder (default hw_latency/)")
    args = ap.parse_args()
    folder = args.folder or write_digits_folder(Path(args.out + "-data"))
    manifest = edgeauto.run(
        device="host", latency_ms=args.latency_ms, dataset=f"folder:{folder}",
        space="fbnet-micro", trials=2, epochs=args.epochs, out=args.out, tables=args.tables,
        check=False,  # the manifest even when over budget (else edgeauto.OverBudget)
    )  # fmt: skip
    print(f"accuracy {manifest.accuracy:.3f}, predicted {manifest.predicted_ms:.4f} ms, "
          f"measured {manifest.measured_ms:.4f} ms -> {args.out}")  # fmt: skip
    image = next(p for p in sorted(folder.rglob("*")) if p.suffix.lower() == ".png")
    ppm = Path(args.out) / "example.pgm"  # infer.py reads PGM/PPM or .npy with numpy alone
    from PIL import Image

    Image.open(image).convert("L").save(ppm)
    out = subprocess.run([sys.executable, str(Path(args.out) / "infer.py"), str(ppm)],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    print(f"{image.parent.name}/{image.name} ->", json.loads(out)["top"][0])


if __name__ == "__main__":
    main()
