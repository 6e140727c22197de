"""Structured pruning, side by side in one run: criteria, Torch-Pruning, NNI, latency budgets.

    python benchmarks/prune.py [--json PATH] [--epochs 3] [--finetune-epochs 1] [--quick]

Two models, trained here on the data this project ships:
- ``mnist-cnn``: a VGG-style CNN on MNIST-5k (1x28x28), about 22 MMACs.
- ``cifar-resnet``: a CIFAR-style ResNet (3x32x32, residual blocks, so pruning must keep the
  adds consistent) trained on MNIST-5k padded to 32x32 and repeated to 3 channels; the
  project has only 100 CIFAR-10 images, too few to train on.

For 30/40/50% FLOPs cuts, every criterion prunes the same per-layer share (the share that
meets the cut), as do Torch-Pruning's magnitude pruner and NNI 3.0's L1/Taylor pruners with
ModelSpeedup (when the optional ``nni`` extra is installed); each pruned model is fine-tuned
for the same epochs and measured with LiteRT (host profile threads). Then the latency-budget
mode (NetAdapt allocation on per-layer latencies measured on the host, then whole-model
calibration as ``edgeauto compress`` does) at three budgets, beside Torch-Pruning's uniform
pruning bisected to the same measured latency.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torch_pruning as tp
from _stamp import stamp
from torch import nn

from edgeauto.compress import PRUNERS, PruneConfig, PruneProblem, count_macs, get_criterion
from edgeauto.compress.graph import classifier_layers
from edgeauto.compress.landing import prune_measured
from edgeauto.compress.layer_lut import LayerLatency
from edgeauto.compress.scratch import recalibrate_bn
from edgeauto.compress.uniform import prune_uniform
from edgeauto.data import Dataset, load_dataset
from edgeauto.devices.profile import load_profile
from edgeauto.fileio import write_json
from edgeauto.latency.builder import BlockTimer, TimingSettings, make_timer
from edgeauto.train import TrainConfig, accuracy, accuracy_on_test, fit

CUTS = (0.3, 0.4, 0.5)
CRITERIA = ("l1", "group-l1", "l2", "taylor", "taylor2", "hessian", "ispasp", "random")
BUDGETS = (0.75, 0.6, 0.45)  # of the unpruned model's measured latency
ROUND_TO = load_profile("host").pruning_multiple  # 16 on x86: see DeviceProfile


@dataclass
class Row:
    model: str
    method: str
    flops_cut: float
    acc: float
    measured_ms: float
    speedup_over_flops: float
    macs: int
    budget_ms: float | None = None
    seconds: float = 0.0
    test_acc: float | None = None  # the held-out split, read once per model


def mnist_cnn(c: int = 1, classes: int = 10) -> nn.Module:
    """VGG-style: 32-64-64-128-128 channels, two stride-2 convs."""
    widths = [(c, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
    layers: list[nn.Module] = []
    for cin, cout, s in widths:
        layers += [nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes))


class Block(nn.Module):
    """A ResNet basic block; a 1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.skip = (
            nn.Identity() if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


def cifar_resnet(c: int = 3, classes: int = 10) -> nn.Module:
    """ResNet-10-style for 32x32: 16-32-64 channels, two blocks per stage."""
    stem = [nn.Conv2d(c, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    blocks = [Block(16, 16, 1), Block(16, 32, 2), Block(32, 32, 1), Block(32, 64, 2)]
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*stem, *blocks, Block(64, 64, 1), *head)


def mnist_32x3(data: Dataset) -> Dataset:
    """MNIST-5k padded to 32x32 and repeated to 3 channels (a CIFAR-shaped input)."""

    def to32(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (2, 2, 2, 2)).repeat(1, 3, 1, 1)

    return Dataset(
        "mnist5k-32x32x3", to32(data.x_train[:]), data.y_train, to32(data.x_val[:]), data.y_val,
        data.classes,
    )  # fmt: skip


def ratio_for_cut(model: nn.Module, shape: tuple[int, ...], cut: float) -> float:
    """The smallest per-layer share whose uniform pruning removes ``cut`` of the MACs."""
    base = count_macs(model, shape)
    lo, hi = 0.0, 0.9
    while hi - lo > 0.005:
        mid = (lo + hi) / 2
        cand = copy.deepcopy(model)
        prune_uniform(cand, shape, get_criterion("l1"), mid, ROUND_TO)
        lo, hi = (lo, mid) if count_macs(cand, shape) <= base * (1 - cut) else (mid, hi)
    return hi


def conv_shares(before: nn.Module, after: nn.Module) -> dict[str, float]:
    """The share of output channels each conv lost between two versions of a model."""
    widths = {n: m.out_channels for n, m in after.named_modules() if isinstance(m, nn.Conv2d)}
    return {
        n: 1 - widths[n] / m.out_channels
        for n, m in before.named_modules()
        if isinstance(m, nn.Conv2d) and n in widths
    }


def tp_magnitude(model: nn.Module, shape: tuple[int, ...], ratio: float) -> nn.Module:
    """Torch-Pruning's own magnitude pruner (group L2) at a per-layer share."""
    pruner = tp.pruner.MagnitudePruner(
        model, torch.zeros(1, *shape), importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio, ignored_layers=classifier_layers(model), round_to=ROUND_TO,
    )  # fmt: skip
    pruner.step()
    return model


def nni_prune(model: nn.Module, data: Dataset, ratios: dict[str, float], kind: str) -> nn.Module:
    """NNI 3.0's L1 or Taylor pruner with a share per conv, then ModelSpeedup."""
    import nni
    from nni.compression import TorchEvaluator
    from nni.compression.pruning import L1NormPruner, TaylorPruner
    from nni.compression.speedup import ModelSpeedup

    for name in ("nni", "nni.compression"):  # its per-module progress floods the table
        logging.getLogger(name).setLevel(logging.WARNING)
    config = [{"op_names": [n], "sparse_ratio": r} for n, r in ratios.items() if r > 0]
    if kind == "l1":
        pruner = L1NormPruner(model, config)
    else:
        opt = nni.trace(torch.optim.SGD)(model.parameters(), lr=1e-3)
        evaluator = TorchEvaluator(_nni_training(data), opt, _nni_step)
        pruner = TaylorPruner(model, config, evaluator, training_steps=16)
    _, masks = pruner.compress()
    pruner.unwrap_model()
    model.train(False)
    dummy = data.x_val[:1]
    ModelSpeedup(model, dummy, masks, graph_module=torch.fx.symbolic_trace(model)).speedup_model()
    return model


def _nni_step(batch: tuple[torch.Tensor, torch.Tensor], model: nn.Module) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1])


def _nni_training(data: Dataset) -> Callable:
    def train(
        model, optimizers, training_step, lr_schedulers=None, max_steps=None, max_epochs=None
    ):
        opt = optimizers[0] if isinstance(optimizers, list) else optimizers
        model.train()
        for step in range(max_steps or 16):
            i = (step * 64) % len(data.x_train)
            loss = training_step((data.x_train[i : i + 64], data.y_train[i : i + 64]), model)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return train


class Bench:
    """One model: its data, trained weights, base figures, and how to score a pruned copy."""

    def __init__(self, name: str, model: nn.Module, data: Dataset, args, timer: BlockTimer):
        self.name, self.data, self.args, self.timer = name, data, args, timer
        self._cache: dict[tuple, float] = {}
        self.shape = data.input_shape
        t = time.time()
        self.model = fit(model, data, TrainConfig(epochs=args.epochs), seed=0)
        print(f"[{name}] trained {args.epochs} epochs in {time.time() - t:.0f} s", flush=True)
        self.macs = count_macs(self.model, self.shape)
        self.ms = self.measure(self.model)
        self.rows = [Row(name, "unpruned", 0.0, accuracy(self.model, data.x_val, data.y_val),
                         self.ms, 1.0, self.macs,
                         test_acc=accuracy_on_test(self.model, data))]  # fmt: skip

    def measure(self, model: nn.Module) -> float:
        """LiteRT median, the lower of two timings: a burst of load elsewhere on the machine
        only ever slows a timing down. Same structure, same figure (cached by shapes)."""
        sig = tuple((n, tuple(p.shape)) for n, p in model.state_dict().items())
        if sig not in self._cache:
            timings = [self.timer.time_module(model.train(False), self.shape) for _ in range(2)]
            self._cache[sig] = min(t.median_ms for t in timings)
        return self._cache[sig]

    def score(self, method: str, pruned: nn.Module, t0: float, budget: float | None = None) -> Row:
        """Fine-tune, measure, and record one pruned model."""
        recalibrate_bn(pruned, self.data.x_train[:512])
        cfg = TrainConfig(epochs=self.args.finetune_epochs, lr=1e-3)
        fit(pruned, self.data, cfg, seed=0)
        macs, ms = count_macs(pruned, self.shape), self.measure(pruned)
        row = Row(
            self.name, method, round(1 - macs / self.macs, 4),
            accuracy(pruned, self.data.x_val, self.data.y_val), ms,
            (self.ms / ms) / (self.macs / macs), macs, budget, time.time() - t0,
            accuracy_on_test(pruned, self.data),
        )  # fmt: skip
        self.rows.append(row)
        print(f"  {method:28s} cut {row.flops_cut:.3f} acc {row.acc:.4f} {ms:.4f} ms "
              f"speedup/flops {row.speedup_over_flops:.2f}", flush=True)  # fmt: skip
        return row


def flops_cuts(b: Bench, criteria: tuple[str, ...], with_nni: bool) -> None:
    for cut in CUTS:
        ratio = ratio_for_cut(b.model, b.shape, cut)
        print(f"[{b.name}] {cut:.0%} FLOPs cut: per-layer share {ratio:.3f}", flush=True)
        for name in criteria:
            t0, m = time.time(), copy.deepcopy(b.model)
            crit = get_criterion(name)
            crit.prepare(m, b.data)
            prune_uniform(m, b.shape, crit, ratio, ROUND_TO)
            b.score(name, m, t0)
        t0 = time.time()
        ours = tp_magnitude(copy.deepcopy(b.model), b.shape, ratio)
        b.score("torch-pruning-magnitude", ours, t0)
        shares = conv_shares(b.model, ours)  # NNI gets the same width for every conv
        for kind in ("l1", "taylor") if with_nni else ():
            t0 = time.time()
            b.score(f"nni-{kind}", nni_prune(copy.deepcopy(b.model), b.data, shares, kind), t0)


def latency_budgets(b: Bench, criterion: str) -> None:
    """NetAdapt to a measured latency budget vs Torch-Pruning's uniform pruning bisected to the
    same measured latency."""
    cost = LayerLatency(b.timer, b.shape)
    pruner = PRUNERS.get("netadapt")(criterion, PruneConfig(iterations=4, round_to=ROUND_TO))
    for frac in BUDGETS:
        budget = b.ms * frac
        t0 = time.time()
        problem = PruneProblem(b.shape, cost, budget, b.data)
        m, plan = prune_measured(pruner, copy.deepcopy(b.model), problem, b.measure)
        row = b.score(f"netadapt-{criterion}", m, t0, budget)
        print(f"    plan: {plan.status}, {len(plan.steps) - 1} steps, "
              f"{len(plan.misses)} misses", flush=True)  # fmt: skip
        t0 = time.time()
        b.score("torch-pruning-magnitude@latency", _tp_at(b, row.measured_ms), t0, budget)


def _tp_at(b: Bench, ms: float) -> nn.Module:
    """Torch-Pruning's magnitude pruner at the share whose measured latency is closest to
    ``ms`` from below (the fastest one when none is that fast). Shares are scanned, not
    bisected: with rounded widths a larger share can prune less (narrow layers are skipped)."""
    seen: dict[tuple, tuple[float, nn.Module]] = {}
    for share in [i / 20 for i in range(1, 18)]:
        cand = tp_magnitude(copy.deepcopy(b.model), b.shape, share)
        sig = tuple(tuple(p.shape) for p in cand.state_dict().values())
        if sig not in seen:
            seen[sig] = (b.measure(cand), cand)
    under = [v for v in seen.values() if v[0] <= ms]
    return max(under, key=lambda v: v[0])[1] if under else min(seen.values(), key=lambda v: v[0])[1]


def summary(rows: list[Row]) -> None:
    print("\nmodel          method                          cut    acc     ms      spd/flops")
    for r in rows:
        budget = f"  budget {r.budget_ms:.4f}" if r.budget_ms else ""
        print(f"{r.model:14s} {r.method:31s} {r.flops_cut:.3f}  {r.acc:.4f}  {r.measured_ms:.4f}  "
              f"{r.speedup_over_flops:.2f}{budget}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="l1, taylor, random; mnist-cnn only")
    ap.add_argument("--budgets-only", action="store_true", help="skip the FLOPs-cut rows")
    args = ap.parse_args(argv)
    try:
        import nni  # noqa: F401

        with_nni = True
    except ImportError:
        with_nni = False
        print("nni not installed (make install-nni): its rows are skipped")
    profile = load_profile("host")
    timer = make_timer(profile, TimingSettings(runs=100, warmup=20, rounds=3))
    mnist = load_dataset("mnist5k", seed=0)
    benches = [("mnist-cnn", mnist_cnn, mnist)]
    if not args.quick:
        benches.append(("cifar-resnet", cifar_resnet, mnist_32x3(mnist)))
    criteria = ("l1", "taylor", "random") if args.quick else CRITERIA
    rows: list[Row] = []
    for name, build, data in benches:
        b = Bench(name, build(data.input_shape[0], data.num_classes), data, args, timer)
        if not args.budgets_only:
            flops_cuts(b, criteria, with_nni)
        latency_budgets(b, "taylor")
        rows += b.rows
    summary(rows)
    if args.json:
        doc = {**stamp(), "rows": [asdict(r) for r in rows], "profile": profile.name,
               "threads": profile.threads, "epochs": args.epochs,
               "finetune_epochs": args.finetune_epochs}  # fmt: skip
        write_json(args.json, doc)
    timer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
