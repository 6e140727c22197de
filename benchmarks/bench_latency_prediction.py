"""Predicted (latency table) vs measured (whole exported model) latency, side by side.

For random architectures of a space, prints each runtime's table prediction next to the real
runtime's measurement of the whole exported model, PyTorch eager for reference, and summary
ratios: median |error| and Spearman rank correlation (what a search actually needs).

    .venv/bin/python benchmarks/bench_latency_prediction.py --archs 12 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgeauto.data import dataset_shape
from edgeauto.devices.profile import load_profile
from edgeauto.export.onnx import export_onnx
from edgeauto.pipeline import measure_torch, open_table
from edgeauto.progress import RichReporter
from edgeauto.runtimes import get_runtime
from edgeauto.spaces import get_space


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="host")
    ap.add_argument("--space", default="fbnet-lite")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tables", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    base = load_profile(args.device)
    shape, classes = dataset_shape(args.dataset)
    space = get_space(args.space, shape, classes)
    rng = random.Random(args.seed)
    archs = [space.sample(rng) for _ in range(args.archs)]
    runtimes = ("litert", "onnxruntime")
    tables = {}
    for name in runtimes:  # one table per runtime, built on first use
        prof = base.model_copy(update={"runtime": name})
        tables[name], _ = open_table(prof, space, RichReporter(), args.tables)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, arch in enumerate(archs):
            torch.manual_seed(i)
            model = space.build(arch).eval()
            onnx_path = export_onnx(model, shape, Path(tmp) / "m.onnx")
            row = {"arch": arch.describe()}
            for name in runtimes:
                rt = get_runtime(name)
                art = rt.from_onnx(onnx_path, Path(tmp) / f"m{rt.suffix}")
                row[f"pred_{name}"] = tables[name].predict_keys(space.blocks(arch))
                row[f"meas_{name}"] = rt.measure(art, base.threads, args.runs, args.runs // 4).median_ms
            row["torch_eager"] = measure_torch(model, shape, base.threads, args.runs).median_ms
            rows.append(row)
    report(rows, runtimes, base.threads)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def report(rows: list[dict], runtimes: tuple[str, ...], threads: int) -> None:
    head = f"{'#':>2} " + " ".join(f"{'pred ' + n[:4]:>10} {'meas ' + n[:4]:>10} {'ratio':>6}" for n in runtimes)
    print(f"\nbatch-1 latency in ms, {threads} threads; ratio = predicted / measured")
    print(head + f" {'torch':>8}")
    for i, r in enumerate(rows):
        cells = " ".join(
            f"{r[f'pred_{n}']:10.4f} {r[f'meas_{n}']:10.4f} {r[f'pred_{n}'] / r[f'meas_{n}']:6.2f}" for n in runtimes
        )
        print(f"{i:>2} {cells} {r['torch_eager']:8.4f}")
    print()
    for n in runtimes:
        pred, meas = [r[f"pred_{n}"] for r in rows], [r[f"meas_{n}"] for r in rows]
        err = np.median([abs(p - m) / m for p, m in zip(pred, meas)])
        print(f"{n:12s} median |error| {err:6.1%}   Spearman rho {spearman(pred, meas):5.2f}")
    t = np.median([r["torch_eager"] / r["meas_litert"] for r in rows])
    o = np.median([r["meas_onnxruntime"] / r["meas_litert"] for r in rows])
    print(f"median speed-up of LiteRT over PyTorch eager {t:5.1f}x, over ONNX Runtime {o:5.2f}x")


if __name__ == "__main__":
    main()
