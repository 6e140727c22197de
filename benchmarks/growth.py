"""Growth, training-free indicators and ReLU linearization on MNIST-5k (issue 10, part 1).

    python benchmarks/growth.py [--json PATH] [--quick] [--seeds 3] [--archs 50]

- ``gradmax``: an MLP (784 -> 8 hidden -> 10) grown by 8 hidden units every 40 steps up to 64
  with each init of :data:`edgeauto.grow.GROWTH_INITS`, same seeds and batches. Reports final
  validation accuracy (``*_acc``), the norm of the new outgoing weights' gradient right after
  the first growth on held-out data (``*_grad``) and the training loss on 1,000 training
  images 10 steps after each growth, averaged over growths (``*_loss_after``).
- ``noisy``: an MLP grown by NOISY (:mod:`edgeauto.grow.noisy`) from 784 -> 16 -> 10 on
  the training split (a tenth held out for its selection) vs the best of three fixed ReLU MLPs
  (one hidden layer; two of equal width; two halving) whose parameter counts match NOISY's
  final one within 5%, each trained from scratch with the same peak learning rate for as many
  optimizer steps as NOISY's kept lineage took (``steps x train_batches``). ``acc`` and
  ``fixed_acc`` are validation accuracies, ``params`` NOISY's final parameter count; the
  figures are means over ``--seeds`` (``widths``/``relu``/``moves`` describe the first seed).
- ``teg_spearman``: Spearman of the combined TEG rank (NTK condition, linear regions, GSNR;
  :mod:`edgeauto.search.teg`) with proxy-trained accuracy (1 epoch x 60 batches) over
  ``--archs`` random archs of ``fbnet-lite``; ``teg`` holds each indicator's Spearman.
- ``snl``: a 3-conv CNN (2,864 ReLUs at 28x28) trained 3 epochs, then SNL to three ReLU
  budgets vs whole ReLU layers replaced by identities to the same budget (the layers chosen
  by validation accuracy), with equal training epochs after the shared 3: SNL's mask epochs
  (its weights train too) + its fine-tuning, and as many fine-tuning epochs for the baseline
  (``finetune_epochs`` / ``baseline_finetune_epochs``; ``relus`` / ``baseline_relus``: what
  each kept).

JSON: ``command, commit, date`` (:mod:`_stamp`) first, then the parts above.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _stamp import stamp
from torch import nn
from torch.nn import functional as F

from edgeauto.data import Dataset, load_dataset
from edgeauto.fileio import write_json
from edgeauto.grow import GROWTH_INITS, Grower, GrowthSchedule
from edgeauto.grow.gradmax import find_pair, new_weight_grad_norm
from edgeauto.grow.noisy import NoisyConfig, NoisyMLP, count_params, noisy_search
from edgeauto.linearize import SNLConfig, count_relus, drop_relu_layers, linearize
from edgeauto.search.teg import analyze_zero_cost
from edgeauto.spaces import get_space
from edgeauto.train import TrainConfig, accuracy, accuracy_on_test, fit


def _mlp(hidden: int = 8) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


class _Probe:
    """Wraps a :class:`Grower`: gradient norm at the first growth, loss 10 steps after each."""

    def __init__(self, grower: Grower, data: Dataset) -> None:
        self.grower, self.data = grower, data
        self.grad: float | None = None
        self.losses: list[float] = []

    def __call__(self, step: int) -> None:
        before = len(self.grower.events)
        self.grower(step)
        model, k = self.grower.model, self.grower.schedule.units
        if self.grad is None and len(self.grower.events) > before:
            pair = find_pair(model, self.grower.schedule.layer)
            x, y = self.data.x_val[:1000], self.data.y_val[:1000]
            self.grad = new_weight_grad_norm(model, pair, k, x, y)
        if any(step == s + 10 for s, _, _ in self.grower.events):
            with torch.no_grad():
                x, y = self.data.x_train[:1000], self.data.y_train[:1000]
                self.losses.append(float(F.cross_entropy(model(x), y)))


def gradmax_rows(data: Dataset, seeds: int, epochs: int) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for init in GROWTH_INITS.names():
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = _mlp()
            schedule = GrowthSchedule(layer="1", every=40, units=8, max_units=56, init=init)
            probe = _Probe(Grower(model, schedule, data.x_train, data.y_train, seed=seed), data)
            fit(model, data, TrainConfig(epochs=epochs), seed=seed, on_step=probe)
            out.setdefault(f"{init}_acc", []).append(accuracy(model, data.x_val, data.y_val))
            out.setdefault(f"{init}_test_acc", []).append(accuracy_on_test(model, data))
            out.setdefault(f"{init}_grad", []).append(probe.grad or 0.0)
            out.setdefault(f"{init}_loss_after", []).append(statistics.mean(probe.losses))
        print(f"  gradmax {init}: acc {statistics.mean(out[f'{init}_acc']):.4f}", flush=True)
    return {k: statistics.mean(v) for k, v in out.items()}


def _mlp_params(n_in: int, widths: list[int], n_out: int) -> int:
    sizes = [n_in, *widths, n_out]
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def _matched_shapes(params: int, n_in: int, n_out: int) -> list[list[int]]:
    """Fixed hidden-layer shapes whose parameter counts are closest to ``params`` (within 5%)."""
    shapes = {
        "one": lambda h: [h],
        "two_equal": lambda h: [h, h],
        "two_halving": lambda h: [h, max(1, h // 2)],
    }
    out = []
    for make in shapes.values():
        widths = min((make(h) for h in range(1, 2049)),
                     key=lambda w: abs(_mlp_params(n_in, w, n_out) - params))  # fmt: skip
        if abs(_mlp_params(n_in, widths, n_out) - params) <= 0.05 * params:
            out.append(widths)
    return out


def noisy_rows(data: Dataset, seeds: int, quick: bool) -> dict[str, Any]:
    """NOISY's grown MLP vs the best fixed MLP of the same parameter count (means over seeds)."""
    n_in, n_out = 784, data.num_classes
    rows: dict[str, list[float]] = {"acc": [], "fixed_acc": [], "params": [], "fixed_params": [],
                                    "test_acc": [], "fixed_test_acc": []}  # fmt: skip
    first: dict[str, Any] = {}
    for seed in range(seeds):
        cfg = NoisyConfig(steps=12 if quick else 30, candidates=4, train_batches=30,
                          start_width=16, lr=1e-2, seed=seed)  # fmt: skip
        grown = noisy_search(data, cfg)
        fixed: list[tuple[float, int, list[int], float | None]] = []
        for widths in _matched_shapes(grown.params, n_in, n_out):
            model = NoisyMLP.create(n_in, widths, n_out, torch.Generator().manual_seed(seed))
            train = TrainConfig(epochs=cfg.steps, max_batches=cfg.train_batches, lr=cfg.lr)
            fit(model, data, train, seed=seed)  # as many steps as NOISY's kept lineage
            fixed.append((accuracy(model, data.x_val, data.y_val), count_params(model), widths,
                          accuracy_on_test(model, data)))  # fmt: skip
        best = max(fixed, key=lambda f: f[:2])  # chosen on validation
        values = (grown.accuracy, best[0], grown.params, best[1],
                  accuracy_on_test(grown.model, data), best[3])  # fmt: skip
        for key, value in zip(rows, values):
            rows[key].append(value)
        first = first or {"widths": grown.model.widths, "relu": grown.model.relu,
                          "moves": [h.move for h in grown.history], "fixed_widths": best[2],
                          "train_steps": grown.train_steps}  # fmt: skip
        print(f"  noisy seed {seed}: {grown.accuracy:.4f} ({grown.params} params, "
              f"{grown.model.widths}) vs fixed {best[0]:.4f} ({best[1]}, {best[2]})", flush=True)  # fmt: skip
    return {k: statistics.mean(v) for k, v in rows.items()} | first | {"seeds": seeds}


def _cnn() -> nn.Module:
    def conv(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, 2, 1), nn.ReLU()]

    return nn.Sequential(*conv(1, 8), *conv(8, 16), *conv(16, 32), nn.Flatten(), nn.Linear(512, 10))


def snl_rows(data: Dataset, budgets: tuple[int, ...], finetune: int) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    trained = fit(_cnn(), data, TrainConfig(epochs=3), seed=0)
    base = accuracy(trained, data.x_val, data.y_val)
    total = count_relus(trained, data.input_shape)
    print(f"  snl: trained CNN {base:.4f} with {total} ReLUs", flush=True)
    rows = []
    cfg = SNLConfig(finetune_epochs=finetune)
    for budget in budgets:
        ours, theirs = copy.deepcopy(trained), copy.deepcopy(trained)  # changed in place
        snl = linearize(ours, data, budget, cfg)
        # equal epochs on both sides: SNL's weights also train during its mask epochs, so the
        # baseline fine-tunes that much longer (SNL's last mask epoch may stop early, once the
        # budget is met: the rounding is the baseline's gain). It picks its layers on val.
        same = dataclasses.replace(cfg, finetune_epochs=finetune + snl.mask_epochs)
        drop = drop_relu_layers(theirs, data, budget, same)
        rows.append({
            "relu_budget": budget, "acc": snl.accuracy, "baseline_acc": drop.accuracy,
            "test_acc": accuracy_on_test(ours, data),
            "baseline_test_acc": accuracy_on_test(theirs, data),
            "relus": snl.relus_after, "baseline_relus": drop.relus_after,
            "mask_epochs": snl.mask_epochs, "finetune_epochs": finetune,
            "baseline_finetune_epochs": same.finetune_epochs,
            "trained_acc": base, "relus_before": total,
        })  # fmt: skip
        print(f"  snl {budget}: {snl.accuracy:.4f} ({snl.relus_after}) vs drop "
              f"{drop.accuracy:.4f} ({drop.relus_after})", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="1 seed, 12 archs, short training")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--archs", type=int, default=50)
    args = ap.parse_args(argv)
    seeds, archs = (1, 12) if args.quick else (args.seeds, args.archs)
    data = load_dataset("mnist5k", seed=0)
    t0 = time.perf_counter()
    result: dict[str, Any] = {**stamp(), "dataset": "mnist5k", "quick": args.quick,
                              "seeds": seeds, "archs": archs}  # fmt: skip
    result["noisy"] = noisy_rows(data, seeds, args.quick)
    result["gradmax"] = gradmax_rows(data, seeds, 2 if args.quick else 4)
    result["snl"] = snl_rows(data, (1500, 800, 300), 2 if args.quick else 3)
    space = get_space("fbnet-lite", data.input_shape, data.num_classes)
    batches = 30 if args.quick else 60
    teg = analyze_zero_cost(space, data, archs, 0, TrainConfig(epochs=1, max_batches=batches))
    result["teg"] = teg["spearman"] | {"archs": archs, "batches": batches}
    result["teg_spearman"] = teg["spearman"]["combined"]
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({k: v for k, v in result.items()}, indent=1))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
