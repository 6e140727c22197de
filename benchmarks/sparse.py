"""Sparse training methods side by side: accuracy, training FLOPs, exported size, LiteRT latency.

    .venv/bin/python benchmarks/sparse.py [--json PATH] [--quick] [--epochs 5]
        [--models mlp,cnn] [--sparsities 0.5,0.8,0.9,0.95] [--methods all]

On mnist5k, for the reference MLP and CNN (``edgeauto/sparse/models.py``), every registered
sparse method (IMP once per retraining schedule: fine-tune, LRR, SLR) at each sparsity, with
the same training epochs and seed (the same initial weights). Each sparse model is exported
to ONNX, then to a TFLite file with sparse weight tensors; its size and its LiteRT latency
are measured beside the dense model's (both 1 thread, interleaved rounds). Then the papers'
qualitative claims are checked and printed as PASS / MISS:

- SNIP near dense accuracy at 90% (within 2 points);
- RigL >= static sparse (same ERK mask from init, never updated) at about equal FLOPs;
- IMP+SLR >= IMP+fine-tune at the same retraining budget.

JSON: ``rows[i].{model, method, sparsity, acc, train_flops, size_bytes, dense_ms, sparse_ms}``,
``dense_acc.<model>``, ``dense.<model>.{size_bytes, ms}``, ``claims``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeauto.data import Dataset, load_dataset
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import get_runtime
from edgeauto.export.tflite import export_tflite
from edgeauto.fileio import write_json
from edgeauto.sparse import SparseConfig, get_sparse_method, list_sparse_methods
from edgeauto.sparse.models import map_pool, mlp, small_cnn
from edgeauto.train import TrainConfig, accuracy, accuracy_on_test, fit

MODELS: dict[str, Callable[[Dataset], nn.Module]] = {
    "mlp": lambda d: mlp(d.input_shape, d.num_classes),
    "cnn": lambda d: small_cnn(d.input_shape, d.num_classes, pool=map_pool(d.input_shape)),
}
IMP_RETRAINS = ("finetune", "lrr", "slr")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="mlp, 90%%, 2 epochs, 5 methods")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--sparsities", default="0.5,0.8,0.9,0.95")
    ap.add_argument(
        "--methods", default="all",
        help=f"comma-separated, or all: {', '.join(method_names('all'))}",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=100, help="LiteRT runs per timing round")
    args = ap.parse_args()
    if args.quick:
        args.models, args.sparsities, args.epochs = "mlp", "0.9", 2
        args.methods = "imp-finetune,imp-slr,snip,rigl,static"
    return args


def method_names(spec: str) -> list[str]:
    """Registered methods, with ``imp`` split by retraining schedule (``imp-slr`` ...)."""
    names = []
    for name in list_sparse_methods():
        names += [f"imp-{r}" for r in IMP_RETRAINS] if name == "imp" else [name]
    return names if spec == "all" else [n for n in spec.split(",") if n]


def train_sparse(name: str, model: nn.Module, data: Dataset, cfg: SparseConfig) -> float:
    """Train ``model`` in place with method ``name``; its training FLOPs estimate."""
    if name.startswith("imp-"):  # imp-slr: method imp, retraining slr
        name, cfg = "imp", dataclasses.replace(cfg, retrain=name.removeprefix("imp-"))
    return get_sparse_method(name, cfg).run(model, data).train_flops


def timed_pair(dense: Path, sparse: Path, runs: int, rounds: int = 3) -> tuple[float, float]:
    """LiteRT median ms of both files, timed in alternating rounds (drift hits both alike)."""
    litert = get_runtime("litert")
    times: dict[Path, list[float]] = {dense: [], sparse: []}
    for _ in range(rounds):
        for path in (dense, sparse):
            times[path].append(litert.measure(path, 1, runs, runs // 5).median_ms)
    return min(times[dense]), min(times[sparse])


def export_pair(model: nn.Module, data: Dataset, root: Path, tag: str) -> tuple[Path, Path]:
    onnx_path = export_onnx(model.train(False), data.input_shape, root / f"{tag}.onnx")
    dense = export_tflite(onnx_path, root / f"{tag}.tflite")
    sparse = export_tflite(onnx_path, root / f"{tag}_sparse.tflite", sparse=True)
    return dense, sparse


def dense_baseline(name: str, data: Dataset, args: argparse.Namespace, root: Path) -> dict:
    torch.manual_seed(args.seed)
    model = MODELS[name](data)
    fit(model, data, TrainConfig(epochs=args.epochs), seed=args.seed)
    dense, _ = export_pair(model, data, root, f"{name}-dense")
    ms = get_runtime("litert").measure(dense, 1, args.runs, args.runs // 5).median_ms
    return {"acc": accuracy(model, data.x_val, data.y_val),
            "test_acc": accuracy_on_test(model, data), "size_bytes": dense.stat().st_size,
            "ms": ms}  # fmt: skip


def one_row(model_name: str, method: str, s: float, data: Dataset, args: Any, root: Path) -> dict:
    torch.manual_seed(args.seed)  # every method starts from the same weights
    model = MODELS[model_name](data)
    cfg = SparseConfig(sparsity=s, epochs=args.epochs, seed=args.seed, rounds=3, retrain_epochs=1)
    t = time.perf_counter()
    flops = train_sparse(method, model, data, cfg)
    train_s = time.perf_counter() - t
    dense, sparse = export_pair(model, data, root, f"{model_name}-{method}-{s:g}")
    dense_ms, sparse_ms = timed_pair(dense, sparse, args.runs)
    return {"model": model_name, "method": method, "sparsity": s,
            "acc": accuracy(model, data.x_val, data.y_val),
            "test_acc": accuracy_on_test(model, data), "train_flops": flops,
            "train_s": train_s, "size_bytes": sparse.stat().st_size,
            "dense_size_bytes": dense.stat().st_size, "dense_ms": dense_ms,
            "sparse_ms": sparse_ms}  # fmt: skip


def _acc(rows: list[dict], model: str, method: str, s: float) -> float | None:
    hit = [r for r in rows if (r["model"], r["method"], r["sparsity"]) == (model, method, s)]
    return hit[0]["acc"] if hit else None


def claims(rows: list[dict], dense_acc: dict[str, float]) -> list[dict[str, Any]]:
    """The papers' qualitative claims, per model and sparsity where both sides ran."""
    out = []
    for r in rows:
        model, s = r["model"], r["sparsity"]
        if r["method"] == "snip" and s == 0.9:
            out.append({"claim": "SNIP within 2 points of dense at 90%", "model": model,
                        "sparsity": s, "ok": r["acc"] >= dense_acc[model] - 0.02,
                        "values": [r["acc"], dense_acc[model]]})  # fmt: skip
        pairs = (("rigl", "static", "RigL >= static"), ("imp-slr", "imp-finetune",
                                                        "IMP+SLR >= IMP+fine-tune"))  # fmt: skip
        for a, b, text in pairs:
            other = _acc(rows, model, b, s)
            if r["method"] == a and other is not None:
                out.append({"claim": text, "model": model, "sparsity": s,
                            "ok": r["acc"] >= other, "values": [r["acc"], other]})  # fmt: skip
    return out


def main() -> int:
    args = parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist5k", seed=args.seed)
    models, methods = args.models.split(","), method_names(args.methods)
    sparsities = [float(x) for x in args.sparsities.split(",")]
    doc: dict[str, Any] = {"settings": vars(args) | {"json": str(args.json)}, "rows": [],
                           "dense_acc": {}, "dense": {}}  # fmt: skip
    print(f"{'model':5} {'method':13} {'sparsity':>8} {'acc':>6} {'GFLOPs':>7} {'kB':>7} "
          f"{'dense ms':>9} {'sparse ms':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="edgeauto-sparse-bench-") as tmp:
        for m in models:
            doc["dense"][m] = dense_baseline(m, data, args, Path(tmp))
            doc["dense_acc"][m] = doc["dense"][m]["acc"]
            d = doc["dense"][m]
            print(f"{m:5} {'dense':13} {0:8.2f} {d['acc']:6.4f} {'':>7} "
                  f"{d['size_bytes'] / 1000:7.1f} {d['ms']:9.4f}", flush=True)  # fmt: skip
            for s in sparsities:
                for method in methods:
                    r = one_row(m, method, s, data, args, Path(tmp))
                    doc["rows"].append(r)
                    _save(args.json, doc)  # a long run cut short keeps its rows
                    print(f"{m:5} {method:13} {s:8.2f} {r['acc']:6.4f} "
                          f"{r['train_flops'] / 1e9:7.2f} {r['size_bytes'] / 1000:7.1f} "
                          f"{r['dense_ms']:9.4f} {r['sparse_ms']:9.4f}", flush=True)  # fmt: skip
    doc["claims"] = claims(doc["rows"], doc["dense_acc"])
    for c in doc["claims"]:
        vals = " vs ".join(f"{v:.4f}" for v in c["values"])
        print(f"{'PASS' if c['ok'] else 'MISS'}  {c['claim']} ({c['model']}, "
              f"{c['sparsity']:.0%}): {vals}")  # fmt: skip
    ratios = [r["sparse_ms"] / r["dense_ms"] for r in doc["rows"]]
    doc["sparse_over_dense_ms"] = statistics.median(ratios) if ratios else None
    print(
        f"sparse / dense LiteRT latency, median over rows: {doc['sparse_over_dense_ms']:.3f} "
        "(LiteRT densifies sparse weights at load on this host: expect about 1)"
    )
    _save(args.json, doc)
    return 0


def _save(path: Path | None, doc: dict[str, Any]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, doc)


if __name__ == "__main__":
    sys.exit(main())
