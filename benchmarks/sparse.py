"""Sparse training methods side by side: accuracy, training FLOPs, exported size, LiteRT latency.

    .venv/bin/python benchmarks/sparse.py [--json PATH] [--quick] [--epochs 5]
        [--models mlp,cnn] [--sparsities 0.5,0.8,0.9,0.95] [--methods all]
        [--budget epochs|flops|both] [--flops-ref max|MULTIPLE]

On mnist5k, for the reference MLP and CNN (``edgeauto/sparse/models.py``), every registered
sparse method (IMP once per retraining schedule: fine-tune, LRR, SLR) at each sparsity, from
the same seed (the same initial weights), under one or both of two training budgets:

- ``epochs``: every method's schedule at ``--epochs``. The schedules differ in length: IMP
  trains ``epochs + rounds x retrain_epochs`` passes over the data, lottery
  ``epochs + rounds x (epochs - rewind_epoch)``, COLT ``rounds x 2 x epochs`` on half the data
  plus ``epochs`` on all of it, the one-shot and dynamic methods ``epochs`` at their target
  sparsity; ``epochs_used`` and ``train_flops`` say what each row got.
- ``flops``: equal training FLOPs. The reference is the most expensive iterative schedule
  (IMP, lottery, COLT) at ``--epochs`` for that model and sparsity (``--flops-ref max``), or
  ``MULTIPLE`` x dense training at ``--epochs``. Each method gets the schedule whose FLOPs come
  closest: its cost is affine in one knob (epochs; IMP: retraining epochs, dense pre-training
  kept) and known at ``--epochs`` from its ``epochs`` row, so no extra training is needed to
  size it (``flops`` alone still runs the ``epochs`` rows it lacks, to read their cost). A
  dense model trained to the same FLOPs is a row too (method ``dense``). These rows are not
  exported again (size and latency follow the sparsity, measured on the ``epochs`` row), and
  a method whose closest schedule is its ``--epochs`` one keeps that row (``same_as``).

FLOPs are :meth:`SparseMethod.count_flops`' estimate (3 x forward per trained sample, each
layer scaled by its density). Each sparse model is exported to ONNX, then to a TFLite file
with sparse weight tensors; its size and its LiteRT latency are measured beside the dense
model's (both 1 thread, interleaved rounds). Then the papers' qualitative claims are checked
per budget and printed as PASS / MISS:

- SNIP near dense accuracy at 90% (within 2 points; dense at the same budget);
- RigL >= static sparse (same ERK mask from init, never updated) at about equal FLOPs;
- IMP+SLR >= IMP+fine-tune at the same retraining budget.

A rerun with the same ``--json`` keeps the rows already there (key: model, method, sparsity,
budget) and runs only the missing ones, so methods can be appended with ``--methods``; its
``--epochs`` and ``--seed`` must match the file's, and the FLOPs reference stays the file's.

JSON: ``command, commit, date`` (the latest run; ``runs`` lists every run, ``rows[i].run``
indexes it), ``rows[i].{model, method, sparsity, budget, epochs, retrain_epochs, epochs_used,
acc, test_acc, train_flops, flops_ratio, size_bytes, dense_ms, sparse_ms}`` (no size or
latency on the ``flops`` rows; ``same_as: epochs`` on those that are their ``epochs`` row),
``flops_reference.<model>@<sparsity>.{flops, source}``, ``dense_acc.<model>``,
``dense.<model>.{size_bytes, ms}``, ``claims``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _stamp import stamp
from torch import nn

from edgeauto.data import Dataset, load_dataset
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import get_runtime
from edgeauto.export.tflite import export_tflite
from edgeauto.fileio import write_json
from edgeauto.sparse import SparseConfig, get_sparse_method, list_sparse_methods
from edgeauto.sparse.base import layer_macs, steps_per_epoch
from edgeauto.sparse.models import map_pool, mlp, small_cnn
from edgeauto.train import TrainConfig, accuracy, accuracy_on_test, fit

MODELS: dict[str, Callable[[Dataset], nn.Module]] = {
    "mlp": lambda d: mlp(d.input_shape, d.num_classes),
    "cnn": lambda d: small_cnn(d.input_shape, d.num_classes, pool=map_pool(d.input_shape)),
}
IMP_RETRAINS = ("finetune", "lrr", "slr")
BUDGETS = ("epochs", "flops")
#: the schedules with pruning rounds: the most expensive of them sets the FLOPs reference
ITERATIVE = ("imp-finetune", "imp-lrr", "imp-slr", "lottery", "colt")
Key = tuple[str, str, float, str]


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
    ap.add_argument("--budget", choices=(*BUDGETS, "both"), default="both")
    ap.add_argument("--flops-ref", default="max",
                    help="max: the costliest iterative schedule; a number: x dense training")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=100, help="LiteRT runs per timing round")
    args = ap.parse_args()
    if args.quick:
        args.models, args.sparsities, args.epochs = "mlp", "0.9", 2
        args.methods = "imp-finetune,imp-slr,snip,rigl,static"
    if args.flops_ref != "max":
        try:
            float(args.flops_ref)
        except ValueError:
            ap.error(f"--flops-ref must be max or a number, got {args.flops_ref!r}")
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


def epochs_used(method: str, cfg: SparseConfig) -> int:
    """Passes over the training data the schedule makes (COLT: two half-data copies a round)."""
    if method.startswith("imp-"):
        return cfg.epochs + cfg.rounds * cfg.retrain_epochs
    if method == "lottery":
        return cfg.epochs + cfg.rounds * (cfg.epochs - cfg.rewind_epoch)
    if method == "colt":
        return (cfg.rounds + 1) * cfg.epochs
    return cfg.epochs


def dense_epoch_flops(model: nn.Module, data: Dataset, cfg: SparseConfig) -> float:
    """One dense epoch's training FLOPs, counted as :meth:`SparseMethod.count_flops` does."""
    fwd = sum(2 * v for v in layer_macs(model, data.input_shape).values())
    return 3.0 * fwd * steps_per_epoch(cfg, data) * cfg.batch_size


def matched_config(method: str, cfg: SparseConfig, flops: float, ref: float,
                   dense_epoch: float, steps: int) -> SparseConfig:  # fmt: skip
    """``cfg`` with the one knob set so that ``method``'s training FLOPs come closest to
    ``ref``, given its cost ``flops`` at ``cfg``. The cost is affine in the knob, ``fixed +
    k x per``: IMP's dense pre-training is fixed and its retraining epochs scale; lottery's
    epochs scale both pre-training and the rounds' ``epochs - rewind_epoch`` (a negative
    intercept); SNIP's dense scoring batches are fixed; every other method (COLT included)
    costs in proportion to its epochs. ``dense_epoch``: one dense epoch's FLOPs, of ``steps``."""
    knob, low, fixed = "epochs", 1, 0.0
    if method == "snip":
        fixed = cfg.snip_batches * dense_epoch / steps
    elif method.startswith("imp-"):
        knob, fixed = "retrain_epochs", cfg.epochs * dense_epoch
    elif method == "lottery":
        low, retrain = cfg.rewind_epoch + 1, flops - cfg.epochs * dense_epoch
        fixed = -cfg.rewind_epoch * retrain / (cfg.epochs - cfg.rewind_epoch)
    per = (flops - fixed) / getattr(cfg, knob)
    return dataclasses.replace(cfg, **{knob: max(low, round((ref - fixed) / per))})


def flops_reference(rows: list[dict], model: str, s: float, spec: str,
                    dense_train: float) -> dict[str, Any]:  # fmt: skip
    """The FLOPs every ``flops`` row is matched to, and where it comes from."""
    if spec != "max":
        return {"flops": float(spec) * dense_train, "source": f"{spec} x dense training"}
    pool = [r for r in rows if (r["model"], r["sparsity"], r["budget"]) == (model, s, "epochs")
            and r["method"] != "dense"]  # fmt: skip
    top = max([r for r in pool if r["method"] in ITERATIVE] or pool, key=lambda r: r["train_flops"])
    return {"flops": top["train_flops"], "source": f"{top['method']} at --epochs"}


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


def dense_matched(model_name: str, s: float, ref: float, data: Dataset, args: Any) -> dict:
    """The dense model trained for the epochs whose FLOPs come closest to ``ref``."""
    torch.manual_seed(args.seed)
    model = MODELS[model_name](data)
    per = dense_epoch_flops(model, data, base_config(args, s))
    epochs = max(1, round(ref / per))
    fit(model, data, TrainConfig(epochs=epochs), seed=args.seed)
    return {"model": model_name, "method": "dense", "sparsity": s, "budget": "flops",
            "epochs": epochs, "retrain_epochs": None, "epochs_used": epochs,
            "acc": accuracy(model, data.x_val, data.y_val),
            "test_acc": accuracy_on_test(model, data), "train_flops": epochs * per}  # fmt: skip


def base_config(args: Any, s: float) -> SparseConfig:
    return SparseConfig(sparsity=s, epochs=args.epochs, seed=args.seed, rounds=3, retrain_epochs=1)


def one_row(model_name: str, method: str, cfg: SparseConfig, data: Dataset, args: Any,
            root: Path | None) -> dict:  # fmt: skip
    """One trained sparse model's row; exported and timed with LiteRT unless ``root`` is None
    (the FLOPs-matched rows: size and latency follow the sparsity, which the epochs row of
    the same method already measured, not the training length)."""
    torch.manual_seed(args.seed)  # every method starts from the same weights
    model = MODELS[model_name](data)
    t = time.perf_counter()
    flops = train_sparse(method, model, data, cfg)
    row = {"model": model_name, "method": method, "sparsity": cfg.sparsity,
           "epochs": cfg.epochs, "retrain_epochs": cfg.retrain_epochs,
           "epochs_used": epochs_used(method, cfg), "train_s": time.perf_counter() - t,
           "acc": accuracy(model, data.x_val, data.y_val),
           "test_acc": accuracy_on_test(model, data), "train_flops": flops}  # fmt: skip
    if root is None:
        return row
    dense, sparse = export_pair(model, data, root, f"{model_name}-{method}-{cfg.sparsity:g}")
    dense_ms, sparse_ms = timed_pair(dense, sparse, args.runs)
    return row | {"size_bytes": sparse.stat().st_size, "dense_size_bytes": dense.stat().st_size,
                  "dense_ms": dense_ms, "sparse_ms": sparse_ms}  # fmt: skip


def _key(r: dict) -> Key:
    return r["model"], r["method"], r["sparsity"], r.get("budget", "epochs")


def _find(rows: list[dict], key: Key) -> dict | None:
    return next((r for r in rows if _key(r) == key), None)


def _acc(rows: list[dict], model: str, method: str, s: float, budget: str) -> float | None:
    hit = _find(rows, (model, method, s, budget))
    return hit["acc"] if hit else None


def claims(rows: list[dict], dense_acc: dict[str, float]) -> list[dict[str, Any]]:
    """The papers' qualitative claims, per model, sparsity and budget where both sides ran
    (SNIP is held against the dense model of the same budget)."""
    out = []
    pairs = (("rigl", "static", "RigL >= static"),
             ("imp-slr", "imp-finetune", "IMP+SLR >= IMP+fine-tune"))  # fmt: skip
    for r in rows:
        model, s, budget = r["model"], r["sparsity"], r.get("budget", "epochs")
        head = {"model": model, "sparsity": s, "budget": budget}
        dense = dense_acc[model] if budget == "epochs" else _acc(rows, model, "dense", s, budget)
        if r["method"] == "snip" and s == 0.9 and dense is not None:
            out.append({"claim": "SNIP within 2 points of dense at 90%", **head,
                        "ok": r["acc"] >= dense - 0.02, "values": [r["acc"], dense]})  # fmt: skip
        for a, b, text in pairs:
            other = _acc(rows, model, b, s, budget)
            if r["method"] == a and other is not None:
                out.append({"claim": text, **head, "ok": r["acc"] >= other,
                            "values": [r["acc"], other]})  # fmt: skip
    return out


def load_doc(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON to append to (``--json`` when it exists), with this run's stamp on top; its
    epochs and seed must be this run's, or its rows would not compare."""
    doc: dict[str, Any] = {"runs": [], "rows": [], "dense_acc": {}, "dense": {},
                           "flops_reference": {}}  # fmt: skip
    if args.json and args.json.exists():
        doc |= json.loads(args.json.read_text())
        for name in ("epochs", "seed"):
            had = doc["settings"][name]
            if had != getattr(args, name):
                raise SystemExit(f"{args.json} was run with --{name} {had}; pass --{name} {had} "
                                 "to append to it, or another --json")  # fmt: skip
    now = stamp()
    doc["runs"].append(now)
    return doc | now | {"settings": vars(args) | {"json": str(args.json)}}


def _save(path: Path | None, doc: dict[str, Any]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, doc)


HEADER = (f"{'model':5} {'method':13} {'sparsity':>8} {'budget':>6} {'epochs':>6} {'acc':>6} "
          f"{'GFLOPs':>7} {'ratio':>5} {'kB':>7} {'dense ms':>9} {'sparse ms':>9}")  # fmt: skip


def print_row(r: dict, ref: float | None) -> None:
    ratio = f"{r['train_flops'] / ref:5.2f}" if ref else f"{'':>5}"
    tail = (f" {r['size_bytes'] / 1000:7.1f} {r['dense_ms']:9.4f} {r['sparse_ms']:9.4f}"
            if "size_bytes" in r else "")  # fmt: skip
    print(f"{r['model']:5} {r['method']:13} {r['sparsity']:8.2f} {r['budget']:>6} "
          f"{r['epochs_used']:6d} {r['acc']:6.4f} {r['train_flops'] / 1e9:7.2f} {ratio}{tail}",
          flush=True)  # fmt: skip


@dataclasses.dataclass
class Bench:
    """One run: its settings, data, the document it appends to and a scratch folder."""

    args: argparse.Namespace
    data: Dataset
    doc: dict[str, Any]
    root: Path

    def row(self, key: Key, make: Callable[[], dict]) -> dict:
        """The row ``key`` from the document, or made now, saved (a long run cut short keeps
        its rows, and a rerun with this ``--json`` skips them) and printed."""
        hit = _find(self.doc["rows"], key)
        if hit is None:
            hit = make() | {"budget": key[3], "run": len(self.doc["runs"]) - 1}
            self.doc["rows"].append(hit)
            _save(self.args.json, self.doc)
            print_row(hit, None)
        return hit


def sparsity_rows(b: Bench, m: str, s: float, methods: list[str]) -> None:
    """``m``'s rows at sparsity ``s``: every method at ``--epochs``, then (``--budget flops``
    or ``both``) the dense model and every method matched to the FLOPs reference."""
    cfg, args, data = base_config(b.args, s), b.args, b.data
    rows = {}
    for method in methods:  # also the flops rows' sizing: each method's cost at --epochs
        made = functools.partial(one_row, m, method, cfg, data, args, b.root)
        rows[method] = b.row((m, method, s, "epochs"), made)
    cost = {k: r["train_flops"] for k, r in rows.items()}
    dense_epoch = dense_epoch_flops(MODELS[m](data), data, cfg)
    refs = b.doc["flops_reference"]
    if f"{m}@{s:g}" not in refs:  # kept once set: rows appended later match the same total
        refs[f"{m}@{s:g}"] = flops_reference(b.doc["rows"], m, s, args.flops_ref,
                                             args.epochs * dense_epoch)  # fmt: skip
    if args.budget == "epochs":
        return
    ref = refs[f"{m}@{s:g}"]["flops"]
    b.row((m, "dense", s, "flops"), functools.partial(dense_matched, m, s, ref, data, args))
    steps = steps_per_epoch(cfg, data)
    for method in methods:
        matched = matched_config(method, cfg, cost[method], ref, dense_epoch, steps)
        if matched == cfg:  # already the closest: the same seed trains the same model again
            b.row((m, method, s, "flops"), functools.partial(dict, rows[method], same_as="epochs"))
            continue
        made = functools.partial(one_row, m, method, matched, data, args, None)
        b.row((m, method, s, "flops"), made)


def finish(doc: dict[str, Any]) -> None:
    """Ratios to the FLOPs reference, the claims and the whole table, printed."""
    for r in doc["rows"]:
        ref = doc["flops_reference"].get(f"{r['model']}@{r['sparsity']:g}")
        r["flops_ratio"] = r["train_flops"] / ref["flops"] if ref else None
    doc["claims"] = claims(doc["rows"], doc["dense_acc"])
    print(f"\nall rows (ratio: training FLOPs / the reference)\n{HEADER}")
    for r in sorted(doc["rows"], key=lambda r: (r["model"], r["sparsity"], r["budget"])):
        print_row(r, r["train_flops"] / r["flops_ratio"] if r["flops_ratio"] else None)
    for c in doc["claims"]:
        vals = " vs ".join(f"{v:.4f}" for v in c["values"])
        print(f"{'PASS' if c['ok'] else 'MISS'}  {c['claim']} ({c['model']}, "
              f"{c['sparsity']:.0%}, {c['budget']}): {vals}")  # fmt: skip
    ratios = [r["sparse_ms"] / r["dense_ms"] for r in doc["rows"] if "sparse_ms" in r]
    doc["sparse_over_dense_ms"] = statistics.median(ratios) if ratios else None
    if ratios:
        print(f"sparse / dense LiteRT latency, median over rows: "
              f"{doc['sparse_over_dense_ms']:.3f} (LiteRT densifies sparse weights at load on "
              "this host: expect about 1)")  # fmt: skip


def main() -> int:
    args = parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist5k", seed=args.seed)
    models, methods = args.models.split(","), method_names(args.methods)
    sparsities = [float(x) for x in args.sparsities.split(",")]
    doc = load_doc(args)
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="edgeauto-sparse-bench-") as tmp:
        bench = Bench(args, data, doc, Path(tmp))
        for m in models:
            if m not in doc["dense"]:
                doc["dense"][m] = dense_baseline(m, data, args, Path(tmp))
                doc["dense_acc"][m] = doc["dense"][m]["acc"]
            d = doc["dense"][m]
            print(f"{m:5} {'dense':13} {0:8.2f} {'epochs':>6} {args.epochs:6d} {d['acc']:6.4f} "
                  f"{'':>7} {'':>5} {d['size_bytes'] / 1000:7.1f} {d['ms']:9.4f}", flush=True)  # fmt: skip
            for s in sparsities:
                sparsity_rows(bench, m, s, methods)
    finish(doc)
    _save(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
