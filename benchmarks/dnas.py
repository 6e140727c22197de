"""DNAS (supernet, PruNet pruning) vs a baseline strategy at equal wall time, for 3 budgets.

On real data (default mnist5k, fbnet-lite, this machine's measured LiteRT table). Per budget:

- ``dnas``: one supernet search (its wall time is the budget for the baseline), the derived
  arch trained from scratch for ``--epochs`` (the final training), its validation accuracy
  and its latency measured whole with the device's runtime (LiteRT on ``host``);
- ``baseline`` (default ``random``): proxy-trained trials (1 epoch x ``--batches``) until it
  has used the same wall time, then its best arch trained and measured the same way.

Then ``search_over_train`` (DNAS search time / the final training time, mean over budgets;
goal <= 3) and, at the middle budget, a second DNAS search with block and layer pruning off:
``pruning_speedup`` = mean search-step time without / with pruning, ``memory_saving`` = the
last search epoch's training memory (saved activations + 4x parameters) without / with.
Budgets default to the 25/50/75% quantiles of the predicted latency of 200 random archs.

    .venv/bin/python benchmarks/dnas.py [--json PATH] [--quick] [--budgets 0.03 0.04 0.05]
        [--epochs 3] [--search-epochs 3] [--max-batches N] [--baseline random]
        [--budget-term hinge|fbnet|fbnet-additive]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _stamp import stamp

from edgeauto.data import Dataset
from edgeauto.devices.profile import load_profile
from edgeauto.fileio import write_json
from edgeauto.latency.device import open_table
from edgeauto.progress import RichReporter
from edgeauto.search import STRATEGIES, SearchProblem, Trial
from edgeauto.search.dnas import BUDGET_TERMS, DNAS, DNASConfig
from edgeauto.search.objective import TrainObjective, cached_dataset
from edgeauto.spaces import Arch, SearchSpace, get_space
from edgeauto.train import TrainConfig, accuracy, accuracy_on_test, fit


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--budgets", type=float, nargs="*", default=None, help="ms (default: quantiles)"
    )
    ap.add_argument("--space", default="fbnet-lite")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--device", default="host", help="a local device profile")
    ap.add_argument("--tables", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=5, help="final training epochs")
    ap.add_argument("--warmup-epochs", type=int, default=1)
    ap.add_argument("--search-epochs", type=int, default=3)
    ap.add_argument("--max-batches", type=int, default=None, help="supernet steps per epoch cap")
    ap.add_argument("--batches", type=int, default=60, help="baseline proxy-training batches")
    ap.add_argument("--baseline", default="random")
    ap.add_argument(
        "--budget-term", choices=list(BUDGET_TERMS), default="hinge",
        help="; ".join(f"{k}: {v}" for k, v in BUDGET_TERMS.items()).replace("%", "%%"),
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.search_epochs, args.max_batches, args.batches = 1, 1, 8, 10
    return args


def quantile_budgets(space: SearchSpace, latency: Any) -> list[float]:
    rng = random.Random(12345)
    ms = sorted(latency.predict(space.blocks(space.sample(rng))) for _ in range(200))
    return [ms[len(ms) // 4], ms[len(ms) // 2], ms[3 * len(ms) // 4]]


def train_final(space: SearchSpace, arch: Arch, data: Dataset, epochs: int, seed: int) -> tuple:
    """The arch trained from scratch: (model, val accuracy, wall seconds)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = space.build(arch)
    start = time.perf_counter()
    fit(model, data, TrainConfig(epochs=epochs), seed)
    return model, accuracy(model, data.x_val, data.y_val), time.perf_counter() - start


def dnas_search(args: argparse.Namespace, problem: SearchProblem, **cfg: Any) -> tuple:
    """(derived arch, the strategy, wall seconds) of one supernet search."""
    config = DNASConfig(
        warmup_epochs=args.warmup_epochs, search_epochs=args.search_epochs,
        max_batches=args.max_batches, budget_term=args.budget_term, **cfg,
    )  # fmt: skip
    start = time.perf_counter()
    dnas = DNAS(problem, config)
    arch = dnas.ask()
    return arch, dnas, time.perf_counter() - start


def baseline_search(args: argparse.Namespace, problem: SearchProblem, wall: float) -> tuple:
    """Proxy-trained trials of the baseline strategy until ``wall`` seconds are used."""
    objective = TrainObjective(args.dataset, args.space, args.seed, 1, args.batches)
    strategy = STRATEGIES.get(args.baseline)(problem)
    start, n = time.perf_counter(), 0
    while n == 0 or time.perf_counter() - start < wall:
        arch = strategy.ask()
        acc = objective(arch, args.seed)["accuracy"]
        strategy.tell(Trial(n, arch, problem.predict(arch), acc))
        n += 1
    return strategy.result.best.arch, n


def one_budget(args: argparse.Namespace, ctx: dict[str, Any], budget: float) -> dict[str, Any]:
    space, latency, data, timer = ctx["space"], ctx["latency"], ctx["data"], ctx["timer"]
    problem = SearchProblem(
        space, latency, budget, lambda a: 0.0, trials=10**6, seed=args.seed, data=data
    )
    arch, dnas, wall = dnas_search(args, problem)
    model, acc, train_s = train_final(space, arch, data, args.epochs, args.seed)
    out: dict[str, Any] = {"budget_ms": budget, "dnas_search_s": wall, "final_train_s": train_s}
    out["dnas"] = {
        "arch": arch.describe(), "acc": acc, "test_acc": accuracy_on_test(model, data),
        "predicted_ms": problem.predict(arch),
        "derived_ms": problem.predict(dnas.derived), "derived_arch": dnas.derived.describe(),
        "measured_ms": timer.time_module(model, data.input_shape).median_ms,
        "curve": [p.to_json() for p in dnas.curve],
    }  # fmt: skip
    print(f"  budget {budget:.4f}: dnas {arch.describe()} acc {acc:.4f} "
          f"(predicted/budget {problem.predict(arch) / budget:.3f}; {wall:.0f} s search, "
          f"{train_s:.0f} s final training)", flush=True)  # fmt: skip
    b_arch, n = baseline_search(args, problem, wall)
    b_model, b_acc, _ = train_final(space, b_arch, data, args.epochs, args.seed)
    out["baseline"] = {
        "name": args.baseline, "arch": b_arch.describe(), "acc": b_acc,
        "test_acc": accuracy_on_test(b_model, data), "trials": n,
        "predicted_ms": problem.predict(b_arch),
        "measured_ms": timer.time_module(b_model, data.input_shape).median_ms,
    }  # fmt: skip
    print(f"  budget {budget:.4f}: {args.baseline} {b_arch.describe()} acc {b_acc:.4f} "
          f"({n} trials)", flush=True)  # fmt: skip
    out["_problem"] = problem
    out["_dnas"] = dnas
    return out


def pruning_effect(args: argparse.Namespace, problem: SearchProblem, pruned: DNAS) -> dict:
    """The same search without block and layer pruning: step time and memory, both ways."""
    _arch, kept, wall = dnas_search(args, problem, block_pruning=False, layer_pruning=False)

    def search_steps(d: DNAS) -> float:
        return statistics.mean(p.step_ms for p in d.curve if p.phase == "search")

    return {
        "step_ms": {"pruning": search_steps(pruned), "no_pruning": search_steps(kept)},
        "memory_mb": {"pruning": pruned.curve[-1].memory_mb, "no_pruning": kept.curve[-1].memory_mb},
        "params": {"pruning": pruned.curve[-1].params, "no_pruning": kept.curve[-1].params},
        "no_pruning_search_s": wall,
    }  # fmt: skip


def main() -> None:
    torch.set_num_threads(1)
    args = parse_args()
    profile = load_profile(args.device)
    data = cached_dataset(args.dataset, args.seed)
    space = get_space(args.space, data.input_shape, data.num_classes)
    _table, latency = open_table(profile, space, RichReporter(), args.tables)
    if latency.timer is None:
        raise SystemExit(f"device {args.device} is not local: latency cannot be measured here")
    budgets = args.budgets or quantile_budgets(space, latency)
    ctx = {"space": space, "latency": latency, "data": data, "timer": latency.timer}
    print(f"{args.space} on {args.dataset}, budgets {[round(b, 4) for b in budgets]} ms "
          f"({profile.name}, {profile.runtime}); dnas {args.warmup_epochs}+{args.search_epochs} "
          f"epochs, final training {args.epochs} epochs", flush=True)  # fmt: skip
    rows = [one_budget(args, ctx, b) for b in budgets]
    mid = rows[len(rows) // 2]
    effect = pruning_effect(args, mid.pop("_problem"), mid.pop("_dnas"))
    for r in rows:
        r.pop("_problem", None), r.pop("_dnas", None)
    ratio = statistics.mean(r["dnas_search_s"] / r["final_train_s"] for r in rows)
    result = {
        **stamp(), "space": args.space, "dataset": args.dataset, "device": profile.name,
        "runtime": profile.runtime, "settings": {k: str(v) for k, v in vars(args).items()},
        "budgets": rows, "search_over_train": ratio, "search_over_train_goal": 3.0,
        "pruning_speedup": effect["step_ms"]["no_pruning"] / effect["step_ms"]["pruning"],
        "memory_saving": effect["memory_mb"]["no_pruning"] / effect["memory_mb"]["pruning"],
        "pruning": effect,
    }  # fmt: skip
    print_table(result)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")


def print_table(r: dict[str, Any]) -> None:
    base = r["budgets"][0]["baseline"]["name"]
    print(f"\n{'budget ms':>10} | {'dnas acc':>9} {'measured':>9} {'pred/bud':>8} "
          f"{'argmax':>6} | {base + ' acc':>11} {'measured':>9} {'pred/bud':>8} {'trials':>6} | "
          f"{'search/train':>12}")  # fmt: skip
    for b in r["budgets"]:
        d, s, ms = b["dnas"], b["baseline"], b["budget_ms"]
        print(f"{ms:10.4f} | {d['acc']:9.4f} {d['measured_ms']:9.4f} "
              f"{d['predicted_ms'] / ms:8.3f} {d['derived_ms'] / ms:6.3f} | {s['acc']:11.4f} "
              f"{s['measured_ms']:9.4f} {s['predicted_ms'] / ms:8.3f} {s['trials']:6d} | "
              f"{b['dnas_search_s'] / b['final_train_s']:12.2f}")  # fmt: skip
    print(
        "pred/bud: predicted latency / budget of the arch trained; argmax: the same for the "
        "supernet's argmax arch before the greedy repair or fill"
    )
    p = r["pruning"]
    print(f"\nsearch time / final training time: {r['search_over_train']:.2f} (goal <= 3)")
    print(f"search step {p['step_ms']['no_pruning']:.1f} ms without block+layer pruning, "
          f"{p['step_ms']['pruning']:.1f} ms with: speed-up {r['pruning_speedup']:.2f}x")  # fmt: skip
    print(f"training memory (last epoch) {p['memory_mb']['no_pruning']:.1f} MB vs "
          f"{p['memory_mb']['pruning']:.1f} MB: {r['memory_saving']:.2f}x; supernet params "
          f"{p['params']['no_pruning']} vs {p['params']['pruning']}")  # fmt: skip


if __name__ == "__main__":
    main()
