"""The whole job, side by side in one run: search-then-compress vs joint vs a hand-made net.

    python benchmarks/pipeline.py [--json PATH] [--budgets 5] [--epochs 5] [--trials 6]
        [--skip-make-run] [--quick]

1. ``make_run_s``: wall time of the default job (``edgeauto run`` as ``make run`` calls it,
   its latency table already built), the goal being <= 5 min on 2 cores.
2. For each budget (spread between the 25% and 90% quantiles of the predicted latency of
   random archs of the default space), ``edgeauto run`` in both modes on the host: measured
   LiteRT latency / budget (goal: in [0.90, 1.00] for every budget) and validation accuracy.
3. A hand-made MobileNetV2-style net (inverted residuals, ReLU6; width multiplier scanned by
   bisection on measured latency to the largest that fits the budget), trained on the same
   split for as many epochs as our final model got in all, training + fine-tuning after
   pruning (the larger of the two modes' totals, ``handmade.epochs``): the baseline a user
   would otherwise write by hand.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _stamp import stamp
from torch import nn

import edgeauto
from edgeauto.data import load_dataset
from edgeauto.devices.profile import load_profile
from edgeauto.fileio import write_json
from edgeauto.latency.builder import TimingSettings, make_timer
from edgeauto.latency.device import open_table
from edgeauto.progress import NullReporter
from edgeauto.rundir import RunDir
from edgeauto.spaces import get_space
from edgeauto.train import TrainConfig, accuracy, accuracy_on_test, fit

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--budgets", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-pipeline")
    ap.add_argument("--skip-make-run", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 budgets, 2 epochs, 3 trials")
    args = ap.parse_args()
    if args.quick:
        args.budgets, args.epochs, args.trials = 2, 2, 3
    return args


def time_make_run(out: Path) -> tuple[float, int]:
    """The default job as ``make run`` runs it (table cached), in a fresh process: wall time
    and exit code (3 = finished but measured over budget; anything else but 0 is a crash)."""
    t = time.perf_counter()
    rc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "edgeauto"), "run", "--device", "host", "--latency-ms",
         "0.06", "--dataset", "mnist5k", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, check=False,
    ).returncode  # fmt: skip
    if rc not in (0, 3):
        raise SystemExit(f"make run's job failed with exit code {rc}")
    return time.perf_counter() - t, rc


def budgets(n: int, dataset: str) -> list[float]:
    """``n`` budgets from the 25% to the 90% quantile of random archs' predicted latency."""
    data = load_dataset(dataset)
    space = get_space("fbnet-lite", data.input_shape, data.num_classes)
    _, lat = open_table(load_profile("host"), space, NullReporter())
    rng = random.Random(0)
    costs = sorted(lat.predict(space.blocks(space.sample(rng))) for _ in range(300))
    qs = [0.25 + (0.9 - 0.25) * i / max(1, n - 1) for i in range(n)]
    return [round(costs[int(q * (len(costs) - 1))], 4) for q in qs]


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int = 6) -> None:
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(),
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid),
            nn.ReLU6(), nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.use_res else self.body(x)


def mobilenet_v2ish(width: float, cin: int = 1, classes: int = 10) -> nn.Module:
    """MobileNetV2's layout shrunk for 28x28: stem, 4 inverted-residual stages, head."""

    def c(n: int) -> int:
        return max(8, round(n * width / 8) * 8)

    layers: list[nn.Module] = [nn.Conv2d(cin, c(16), 3, 2, 1, bias=False), nn.BatchNorm2d(c(16)),
                               nn.ReLU6()]  # fmt: skip
    prev = c(16)
    for out, stride, n in ((16, 1, 1), (24, 2, 2), (32, 2, 2), (64, 1, 1)):
        for i in range(n):
            layers.append(InvertedResidual(prev, c(out), stride if i == 0 else 1))
            prev = c(out)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(prev, classes)]
    return nn.Sequential(*layers)


def handmade(budget: float, data: Any, epochs: int, timer: Any) -> dict[str, Any]:
    """Bisect the width multiplier on measured latency, then train the widest that fits."""
    shape = data.input_shape
    lo, hi, best = 0.1, 2.0, None
    for _ in range(7):
        mid = (lo + hi) / 2
        ms = timer.time_module(mobilenet_v2ish(mid, shape[0]), shape).median_ms
        if ms <= budget:
            lo, best = mid, (mid, ms)
        else:
            hi = mid
    if best is None:
        return {"width": None, "acc": None, "measured_ms": None}
    torch.manual_seed(0)
    model = mobilenet_v2ish(best[0], shape[0], data.num_classes)
    fit(model, data, TrainConfig(epochs=epochs), seed=0)
    acc = accuracy(model, data.x_val, data.y_val)
    return {
        "width": round(best[0], 3),
        "epochs": epochs,
        "acc": acc,
        "test_acc": accuracy_on_test(model, data),
        "measured_ms": best[1],
    }


def run_mode(mode: str, budget: float, args: argparse.Namespace) -> dict[str, Any]:
    out = args.out / f"{mode}-{budget:g}"
    shutil.rmtree(out, ignore_errors=True)
    m = edgeauto.run(check=False, device="host", latency_ms=budget, dataset=args.dataset, out=str(out),
                     epochs=args.epochs, trials=args.trials, mode=mode, int8=False)  # fmt: skip
    # searched arch's measured / predicted before pruning (pruning's plan.scale), and the
    # final artifact's measured / budget: the prediction's hit and the landing, both
    before = (m["pruning"] or {}).get("scale")
    stages = RunDir(out).stages()  # the final model's epochs: training, then fine-tuning
    epochs = sum(stages.get(k, {}).get("epochs", 0) for k in ("train", "finetune"))
    return {"epochs": epochs, "acc": m.accuracy, "test_acc": m["accuracy"].get("test"), "measured_ms": m.measured_ms, "ratio": m.measured_ms / budget,
            "measured_over_predicted_before_pruning": before,
            "repeatability": m["latency"].get("repeatability", {}).get("litert"),
            **frame(m, budget)}  # fmt: skip


def frame(m: edgeauto.Manifest, budget: float) -> dict[str, Any]:
    """The verdict's figure is read beside the run's reference model: the same model as
    timed now (raw) and how far the machine drifted since the reference's first timing."""
    ref = m["latency"].get("reference")
    if not ref:
        return {"raw_ratio": None, "drift": None}
    return {"raw_ratio": ref["raw_ms"] / budget, "drift": ref["drift"]}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    doc: dict[str, Any] = {**stamp(),
                           "make_run_s": None, "budgets": [], "settings": vars(args) | {
        "json": str(args.json), "out": str(args.out)}}  # fmt: skip
    if not args.skip_make_run:
        doc["make_run_s"], doc["make_run_exit"] = time_make_run(args.out / "make-run")
        mr = edgeauto.Manifest.load(args.out / "make-run")
        doc["make_run"] = {"ratio": mr.measured_ms / 0.06, "measured_ms": mr.measured_ms,
                           "measured_over_predicted_before_pruning": mr["pruning"].get("scale"),
                           **frame(mr, 0.06)}  # fmt: skip
        print(f"make run (table cached): {doc['make_run_s']:.0f} s (goal <= 300 s), "
              f"exit {doc['make_run_exit']}, measured / budget {doc['make_run']['ratio']:.3f}, "
              f"searched arch measured / predicted {doc['make_run']['measured_over_predicted_before_pruning']}")  # fmt: skip
    data = load_dataset(args.dataset)
    timer = make_timer(load_profile("host"), TimingSettings())
    print(
        " budget ms | stc acc  ms/budget meas/pred | joint acc ms/budget | hand acc  width ms/budget"
    )
    try:
        for b in budgets(args.budgets, args.dataset):
            stc, joint = run_mode("search-then-compress", b, args), run_mode("joint", b, args)
            # the same epochs as ours, fine-tuning included (0 when nothing was pruned)
            hand = handmade(b, data, max(stc["epochs"], joint["epochs"]), timer)
            row = {"budget_ms": b, "measured_ms": stc["measured_ms"], "acc_stc": stc["acc"],
                   "acc_joint": joint["acc"], "acc_handmade": hand["acc"], "stc": stc,
                   "joint": joint, "handmade": hand}  # fmt: skip
            doc["budgets"].append(row)
            h = hand["measured_ms"] / b if hand["measured_ms"] else float("nan")
            mp = stc["measured_over_predicted_before_pruning"] or float("nan")
            print(f"{b:10.4f} | {stc['acc']:.4f} {stc['ratio']:9.3f} {mp:9.3f} | {joint['acc']:.4f} "
                  f"{joint['ratio']:9.3f} | {hand['acc'] or 0:.4f} {hand['width']} {h:.3f}")  # fmt: skip
    finally:
        timer.close()
    mps = [r["stc"]["measured_over_predicted_before_pruning"] for r in doc["budgets"]]
    doc["prediction_hit"] = sum(x is not None and 0.9 <= x <= 1.1 for x in mps)
    print(f"searched arch measured / predicted within ±10%: {doc['prediction_hit']}/{len(mps)}")
    hits = [r["stc"]["ratio"] for r in doc["budgets"]]
    doc["budget_hit"] = sum(0.9 <= x <= 1.0 for x in hits)
    print(f"search-then-compress within [0.90, 1.00] x budget: {doc['budget_hit']}/{len(hits)}")
    if args.json:
        write_json(args.json, doc)


if __name__ == "__main__":
    sys.exit(main())
