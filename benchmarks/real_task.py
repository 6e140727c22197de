"""CIFAR-10 at measured budgets on this host: edgeauto against a latency-scaled MobileNetV2
and Torch-Pruning, every model's accuracy read once on a held-out test split.

    python benchmarks/real_task.py [--json PATH] [--quick] [--only a,c,...] [--seeds 2]
        [--budgets 0.3,0.6,1.2] [--epochs 10] [--finetune-epochs 3] [--trials 6]
        [--train-images 0]

Data: the 50,000 CIFAR-10 training JPEGs of ``../shared/data/cifar10/cifar10-train.zip``;
val and test (10% each) are carved from them by the seed, the same for every row. With
``--train-images N`` a stratified subset of N images stands in for the whole (the CPU
budget of this machine), written once as an ``npz`` beside the runs.

Rows at each budget and seed (every final model gets the same recipe and epochs:
``epochs`` of training plus ``finetune_epochs``):

- (a) ``default``: ``edgeauto run`` with its default strategy;
- (b) ``smbo``, ``dnas``, ``random``, ``evolution``: the same run with each strategy and the
  same number of trained archs;
- (c) ``mbv2-width``: MobileNetV2-CIFAR with its width multiplier bisected on **measured**
  latency to land in [0.90, 1.00] x budget;
- (d) ``torch-pruning``: the dense MobileNetV2-CIFAR (width 1) trained ``epochs``, pruned by
  Torch-Pruning's magnitude pruner to the same measured latency, fine-tuned;
- (e) ``compress``: ``edgeauto compress`` of that same dense model to the budget;
- (f) ``default-headroom-1.25``: (a) with the search allowed 1.25x over the budget and
  pruned down (the default until searching at the budget won on CIFAR-10; the row
  ``default-at-budget`` of the quick JSON is the experiment that showed it): outside the goals.

Each row is written to the JSON as it finishes; a rerun skips the rows the JSON has (the
resume), ``--only`` picks rows. Latency is LiteRT fp32, 1 thread, pinned to the host
profile's cores. The goal lines are printed at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from _stamp import stamp
from torch import nn

import edgeauto
from edgeauto.data import Dataset, DataSpec
from edgeauto.devices.profile import load_profile
from edgeauto.fileio import write_json
from edgeauto.imagefolder import load_image_set
from edgeauto.latency.builder import TimingSettings, make_timer
from edgeauto.latency.device import open_table
from edgeauto.progress import NullReporter
from edgeauto.spaces import get_space
from edgeauto.train import FitStats, TrainConfig, accuracy, fit, plain_throughput

ROOT = Path(__file__).resolve().parents[1]
SPACE = "cifar-mbv2"
ROWS = {"a": ("default",), "b": ("smbo", "dnas", "random", "evolution"),
        "c": ("mbv2-width",), "d": ("torch-pruning",), "e": ("compress",),
        "f": ("default-headroom-1.25",)}  # fmt: skip
# MobileNetV2's (expansion, channels, blocks, stride) table, as in the paper
MBV2 = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
        (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


def shared_zip() -> Path:
    env = os.environ.get("EDGEAUTO_SHARED_DATA")
    root = Path(env) if env else ROOT.parent / "shared" / "data"
    return root / "cifar10" / "cifar10-train.zip"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-real-task")
    ap.add_argument("--quick", action="store_true",
                    help="one budget, one seed, 6,000 images, 3+1 epochs, 4 trials")  # fmt: skip
    ap.add_argument("--only", default="a,b,c,d,e,f", help="rows (letters or method names)")
    ap.add_argument("--seeds", type=int, default=None, help="default 2 (--quick: 1)")
    ap.add_argument("--budgets", default="", help="ms, comma-separated (default: 3 spread)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--search-batches", type=int, default=60)
    ap.add_argument("--train-images", type=int, default=0, help="0: all 50,000")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds or 1  # --quick --seeds 2 adds the second seed
        args.epochs, args.finetune_epochs, args.trials = 3, 1, 4
        args.train_images, args.search_batches = args.train_images or 6000, 30
    args.seeds = args.seeds or 2
    args.methods = [
        m for part in args.only.split(",") for m in ROWS.get(part.strip(), (part.strip(),))
    ]
    known = {m for ms in ROWS.values() for m in ms}
    if bad := [m for m in args.methods if m not in known]:
        ap.error(f"--only: unknown rows {bad}; use letters a-f or {sorted(known)}")
    return args


# -- data -------------------------------------------------------------------------------------


def load_times(zip_path: Path) -> dict[str, float]:
    """Seconds to load the zip: decoded into an empty cache (first), then from the cache."""
    old = os.environ.get("EDGEAUTO_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["EDGEAUTO_CACHE"] = cache  # a fresh user's cache, not this machine's
        try:
            t0 = time.perf_counter()
            DataSpec(f"folder:{zip_path}").load()
            t1 = time.perf_counter()
            DataSpec(f"folder:{zip_path}").load()
            t2 = time.perf_counter()
        finally:
            del os.environ["EDGEAUTO_CACHE"]
            if old is not None:
                os.environ["EDGEAUTO_CACHE"] = old
    return {"first_s": round(t1 - t0, 2), "cached_s": round(t2 - t1, 2)}


def dataset_spec(args: argparse.Namespace) -> str:
    """The zip itself, or a stratified subset of ``--train-images`` images as an npz."""
    zip_path = shared_zip()
    if not zip_path.exists():
        sys.exit(f"{zip_path} not found: set EDGEAUTO_SHARED_DATA to the shared data folder")
    if not args.train_images:
        return f"folder:{zip_path}"
    path = args.out / f"cifar10-{args.train_images}.npz"
    if not path.exists():
        found = load_image_set(zip_path)
        rng = np.random.default_rng(0)
        per = args.train_images // len(found.classes)
        pick = np.concatenate([rng.permutation(np.flatnonzero(found.y == c))[:per]
                               for c in range(len(found.classes))])  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        names = np.array(found.classes)[found.y[pick]]
        np.savez(path, x=found.x[pick], y=names)  # class names as labels: kept by name
    return f"npz:{path}"


# -- the hand-made baseline -------------------------------------------------------------------


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hid = cin * expand
        layers: list[nn.Module] = [] if expand == 1 else [
            nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6()]  # fmt: skip
        layers += [nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False),
                   nn.BatchNorm2d(hid), nn.ReLU6(), nn.Conv2d(hid, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]  # fmt: skip
        self.body, self.residual = nn.Sequential(*layers), stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2_cifar(
    width: float = 1.0, num_classes: int = 10, input_shape: tuple[int, ...] = (3, 32, 32)
) -> nn.Module:
    """MobileNetV2 (Sandler et al.) for 32x32: the paper's stages and 1280-wide head; the stem
    strides by 2 as in the searched space, so both see the same resolutions."""

    def c(n: int) -> int:
        return max(8, int(n * width / 8 + 0.5) * 8)

    prev = c(32)
    layers: list[nn.Module] = [nn.Conv2d(input_shape[0], prev, 3, 2, 1, bias=False),
                               nn.BatchNorm2d(prev), nn.ReLU6()]  # fmt: skip
    for t, ch, n, s in MBV2:
        for i in range(n):
            layers.append(InvertedResidual(prev, c(ch), s if i == 0 else 1, t))
            prev = c(ch)
    last = c(1280) if width > 1 else 1280
    layers += [nn.Conv2d(prev, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, num_classes)]  # fmt: skip
    return nn.Sequential(*layers)


# -- rows ---------------------------------------------------------------------------------------


class Bench:
    """What every row shares: the data, the pinned timer, the recipe, the dense model."""

    def __init__(self, args: argparse.Namespace, spec: str) -> None:
        self.args, self.spec = args, spec
        self.timer = make_timer(load_profile("host"), TimingSettings(runs=100, warmup=20,
                                                                     rounds=5), "fp32")  # fmt: skip
        self.data: dict[int, Dataset] = {}

    def dataset(self, seed: int) -> Dataset:
        if seed not in self.data:
            self.data[seed] = DataSpec(self.spec, seed).load()
        return self.data[seed]

    def recipe(self, epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, augment=True)  # edgeauto's default for RGB data

    def measure(self, model: nn.Module) -> float:
        return self.timer.time_module(model, self.dataset(0).input_shape).median_ms

    def train(self, model: nn.Module, seed: int, epochs: int) -> tuple[nn.Module, float]:
        """Train ``model``; its CPU seconds (this process, all threads)."""
        cpu = time.process_time()
        fit(model, self.dataset(seed), self.recipe(epochs), seed)
        return model, time.process_time() - cpu

    def dense(self, seed: int) -> tuple[nn.Module, Path, float]:
        """The dense MobileNetV2-CIFAR trained ``epochs`` (kept: rows d and e share it)."""
        path = self.args.out / f"dense-seed{seed}.pt"
        data = self.dataset(seed)
        torch.manual_seed(seed)
        model = mobilenet_v2_cifar(1.0, data.num_classes, data.input_shape)
        if path.exists():
            model.load_state_dict(torch.load(path, weights_only=True))
            return model.eval(), path, json.loads(path.with_suffix(".json").read_text())["cpu_s"]
        model, cpu = self.train(model, seed, self.args.epochs)
        torch.save(model.state_dict(), path)
        path.with_suffix(".json").write_text(json.dumps({"cpu_s": cpu}))
        return model, path, cpu


def edgeauto_row(b: Bench, method: str, budget: float, seed: int) -> dict[str, Any]:
    """Rows (a) and (b): ``edgeauto run`` on the host, pinned and measured."""
    a = b.args
    out = a.out / f"{method}-{budget:g}-s{seed}"
    strategy = {"default": {}, "default-headroom-1.25": {"search_headroom": 1.25}}.get(
        method, {"strategy": method}
    )
    cpu = time.process_time()
    m = edgeauto.run(check=False, device="host", latency_ms=budget, dataset=b.spec, space=SPACE,
                     out=str(out), epochs=a.epochs, finetune_epochs=a.finetune_epochs,
                     trials=a.trials, search_batches=a.search_batches, seed=seed, int8=False,
                     **strategy)  # fmt: skip
    stages = json.loads((out / "stages.json").read_text())
    return _manifest_row(m, budget, time.process_time() - cpu, stages)


def _manifest_row(m: Any, budget: float, total_cpu: float, stages: dict) -> dict[str, Any]:
    train = stages.get("train", {})
    search = stages.get("search", {})
    return {"test_acc": m["accuracy"]["test"], "val_acc": m.accuracy,
            "measured_ms": m.measured_ms, "ratio": m.measured_ms / budget,
            "train_epochs": train.get("epochs", 0) + stages.get("finetune", {}).get("epochs", 0),
            "search_cpu_s": search.get("cpu_s", 0.0), "train_cpu_s": train.get("cpu_s"),
            "total_cpu_s": total_cpu,
            "measured_over_predicted_before_pruning": (m["pruning"] or {}).get("scale")}  # fmt: skip


def width_row(b: Bench, budget: float, seed: int) -> dict[str, Any]:
    """Row (c): the widest MobileNetV2-CIFAR whose measured latency fits the budget."""
    cpu = time.process_time()
    data = b.dataset(seed)
    lo, hi, best = 0.05, 1.5, None
    for _ in range(8):
        mid = (lo + hi) / 2
        ms = b.measure(mobilenet_v2_cifar(mid, data.num_classes, data.input_shape))
        lo, hi, best = (mid, hi, (mid, ms)) if ms <= budget else (lo, mid, best)
        if best and best[1] >= 0.9 * budget:
            break
    if best is None:
        return {"error": f"even width {lo:g} is over {budget} ms"}
    torch.manual_seed(seed)
    model = mobilenet_v2_cifar(best[0], data.num_classes, data.input_shape)
    model, train_cpu = b.train(model, seed, b.args.epochs + b.args.finetune_epochs)
    return _scored(b, model, budget, seed, {"width": round(best[0], 4), "train_cpu_s": train_cpu,
                   "train_epochs": b.args.epochs + b.args.finetune_epochs,
                   "total_cpu_s": time.process_time() - cpu})  # fmt: skip


def _scored(b: Bench, model: nn.Module, budget: float, seed: int, extra: dict) -> dict[str, Any]:
    """Measured latency and both accuracies of a baseline (test read once, here)."""
    data = b.dataset(seed)
    ms = b.measure(model)
    return {"test_acc": accuracy(model, data.x_test, data.y_test),
            "val_acc": accuracy(model, data.x_val, data.y_val), "measured_ms": ms,
            "ratio": ms / budget, "search_cpu_s": 0.0, **extra}  # fmt: skip


def torch_pruning_row(b: Bench, budget: float, seed: int) -> dict[str, Any]:
    """Row (d): Torch-Pruning's magnitude pruner (group L2, its default) on the dense model,
    at the share whose measured latency is the largest within the budget; then fine-tuned."""
    cpu = time.process_time()
    dense, _path, dense_cpu = b.dense(seed)
    shape = b.dataset(seed).input_shape
    best: tuple[float, nn.Module] | None = None
    for share in [i / 40 for i in range(4, 39)]:  # scanned: rounded widths are not monotone
        cand = copy.deepcopy(dense)
        tp.pruner.MagnitudePruner(
            cand, torch.zeros(1, *shape), importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=share, ignored_layers=[cand[-1]], round_to=8,
        ).step()  # fmt: skip
        ms = b.measure(cand)
        if ms <= budget and (best is None or ms > best[0]):
            best = (ms, cand)
        if ms < 0.8 * budget:
            break
    if best is None:
        return {"error": f"no pruning share brings the dense model under {budget} ms"}
    model, ft_cpu = b.train(best[1], seed, b.args.finetune_epochs)
    return _scored(b, model, budget, seed, {"train_cpu_s": dense_cpu + ft_cpu,
                   "train_epochs": b.args.epochs + b.args.finetune_epochs,
                   "total_cpu_s": time.process_time() - cpu})  # fmt: skip


def compress_row(b: Bench, budget: float, seed: int) -> dict[str, Any]:
    """Row (e): ``edgeauto compress`` of the same dense model (the user-with-a-model path)."""
    cpu = time.process_time()
    _dense, path, dense_cpu = b.dense(seed)
    out = b.args.out / f"compress-{budget:g}-s{seed}"
    m = edgeauto.compress(check=False, device="host", latency_ms=budget, dataset=b.spec,
                          model=f"{Path(__file__).resolve()}:mobilenet_v2_cifar",
                          weights=str(path), out=str(out), seed=seed,  # weights: no training
                          finetune_epochs=b.args.finetune_epochs, int8=False)  # fmt: skip
    stages = json.loads((out / "stages.json").read_text())
    row = _manifest_row(m, budget, time.process_time() - cpu, stages)
    return row | {"train_epochs": b.args.epochs + b.args.finetune_epochs,
                  "train_cpu_s": dense_cpu}  # fmt: skip


def run_row(b: Bench, method: str, budget: float, seed: int) -> dict[str, Any]:
    if method in ROWS["a"] + ROWS["b"] + ROWS["f"]:
        return edgeauto_row(b, method, budget, seed)
    rows: dict[str, Callable[[Bench, float, int], dict[str, Any]]] = {
        "mbv2-width": width_row,
        "torch-pruning": torch_pruning_row,
        "compress": compress_row,
    }
    return rows[method](b, budget, seed)


# -- budgets, throughput, goals -------------------------------------------------------------------


def spread_budgets(spec: str) -> list[float]:
    """Three budgets at the 20%, 55% and 90% quantiles of random archs' predicted latency."""
    data = DataSpec(spec).load()
    space = get_space(SPACE, data.input_shape, data.num_classes)
    _, lat = open_table(load_profile("host"), space, NullReporter())
    rng = random.Random(0)
    costs = sorted(lat.predict(space.blocks(space.sample(rng))) for _ in range(300))
    return [round(costs[int(q * (len(costs) - 1))], 3) for q in (0.2, 0.55, 0.9)]


def throughput(b: Bench) -> dict[str, float]:
    """Training images/s of ``fit`` (augmentation, schedule, all) vs a bare loop, same net."""
    data = b.dataset(0)
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(0.5, data.num_classes, data.input_shape)
    stats = FitStats()
    fit(model, data, TrainConfig(epochs=1, max_batches=40, augment=True), 0, stats=stats)
    plain = plain_throughput(model, data, batch_size=64, steps=40, seed=0)
    return {"ours_img_s": round(stats.images_per_s, 1), "plain_img_s": round(plain, 1),
            "net": "mobilenet_v2_cifar(0.5)", "threads": torch.get_num_threads()}  # fmt: skip


def goals(rows: list[dict[str, Any]], budgets: list[float]) -> list[str]:
    """The issue's goals, one line each, with the figures that decide them."""

    def mean(method: str, budget: float, key: str = "test_acc") -> float | None:
        vals = [r[key] for r in rows if r["method"] == method and r["budget_ms"] == budget
                and r.get(key) is not None]  # fmt: skip
        return statistics.mean(vals) if vals else None

    lines = []
    for budget in budgets:
        ours, c, d, e = (mean(m, budget) for m in ("default", "mbv2-width", "torch-pruning",
                                                   "compress"))  # fmt: skip
        ratio = mean("default", budget, "ratio")
        base = max(v for v in (c, d, -1.0) if v is not None)
        lines.append(f"{budget:g} ms: default {_pct(ours)} vs best of (c, d) {_pct(base)}: "
                     f"{'MET' if ours is not None and ours >= base + 0.01 else 'missed'} "
                     f"(+1.0 point); ratio {ratio and round(ratio, 3)} "
                     f"{'MET' if ratio and 0.9 <= ratio <= 1.0 else 'missed'}; (e) {_pct(e)} vs "
                     f"(d) {_pct(d)} {'MET' if e is not None and d is not None and e >= d else 'missed'}")  # fmt: skip
    search = [r["search_cpu_s"] / r["train_cpu_s"] for r in rows
              if r["method"] == "default" and r.get("train_cpu_s")]  # fmt: skip
    worst = max(search) if search else None
    lines.append(
        f"search CPU / one final training: {worst and round(worst, 2)} "
        f"{'MET' if worst is not None and worst <= 3 else 'missed'} (goal <= 3)"
    )
    return lines


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = (
        args.json
        or ROOT / "benchmarks" / "results" / f"real_task{'-quick' if args.quick else ''}.json"
    )
    doc = json.loads(path.read_text()) if path.exists() else {"rows": []}
    spec = dataset_spec(args)
    bench = Bench(args, spec)
    doc.setdefault("load", load_times(shared_zip()))
    doc.setdefault("throughput", throughput(bench))
    budgets = (
        [float(v) for v in args.budgets.split(",") if v]
        or doc.get("budgets")
        or spread_budgets(spec)
    )
    budgets = budgets[1:2] if args.quick and len(budgets) > 1 else budgets
    doc |= {"budgets": budgets, "dataset": spec, "space": SPACE, **stamp(),
            "recipe": {k: getattr(args, k) for k in ("epochs", "finetune_epochs", "trials",
                                                     "search_batches", "train_images")}}  # fmt: skip
    done = {(r["method"], r["budget_ms"], r["seed"]) for r in doc["rows"]}
    for budget in budgets:
        for seed in range(args.seeds):
            for method in args.methods:
                if (method, budget, seed) in done:
                    continue
                print(f"[{budget:g} ms, seed {seed}] {method} ...", flush=True)
                row = {"device": "host", "budget_ms": budget, "method": method, "seed": seed,
                       **run_row(bench, method, budget, seed),
                       "commit": stamp()["commit"], "date": stamp()["date"]}  # fmt: skip
                print("   ", {k: round(v, 4) if isinstance(v, float) else v
                              for k, v in row.items()}, flush=True)  # fmt: skip
                doc["rows"].append(row)
                write_json(path, doc)
    doc["goals"] = goals(doc["rows"], budgets)
    write_json(path, doc)
    print("\n".join(doc["goals"]))
    print(
        f"throughput: ours {doc['throughput']['ours_img_s']} img/s, plain "
        f"{doc['throughput']['plain_img_s']} img/s; zip load {doc['load']}"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
