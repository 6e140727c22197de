"""Progressive SMBO vs random search vs regularized evolution at a fixed number of trained archs.

On real data (default mnist5k, fbnet-lite, this machine's measured LiteRT table), every
strategy trains N archs with the same short proxy training (``--batches`` batches of 64, one
epoch, seeded: an arch trained twice gets the same accuracy, so the strategies of one seed
share a cache of trained archs) under a latency budget (default: the median predicted latency
of 200 random archs, so about half the space fits). Per seed and strategy: best accuracy after
N trainings. Then:

- ``evals_to_match_random``: trainings SMBO needs before its best reaches random search's
  best-of-N (same seed); a seed where it never does counts as N (a lower bound), and
  ``reached`` says how many did. The goal is <= N/5.
- ``surrogate_spearman``: the surrogate fitted on SMBO's trials, ranking the archs the other
  two strategies trained and SMBO did not (held out), against their trained accuracy.
- ``zero_cost_spearman``: TE-NAS scores at initialisation of random search's archs against
  their trained accuracy (NTK condition sign-flipped: > 0 means the score agrees).
- ``ray_speedup``: seed 0's SMBO study in-process (one trial at a time) vs on a local Ray
  cluster with ``--ray-workers`` workers (1 CPU each); the two must give the same trials.
  The speed-up is bounded by the CPUs this process may use (``cpus_available``).

    .venv/bin/python benchmarks/smbo.py [--n 20] [--seeds 3] [--json PATH] [--batches 60]
        [--space fbnet-lite] [--dataset mnist5k] [--latency-ms MS] [--ray-workers 2]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _stamp import stamp

from edgeauto.devices.profile import load_profile
from edgeauto.fileio import write_json
from edgeauto.jobs.search import zero_cost_spearman
from edgeauto.latency.device import open_table
from edgeauto.latency.fusion import spearman
from edgeauto.progress import RichReporter
from edgeauto.rundir import RunDir
from edgeauto.search import STRATEGIES, SearchProblem, Trial
from edgeauto.search.executors import RayExecutor
from edgeauto.search.objective import ZERO_COST_SAMPLES, TrainObjective, cached_dataset
from edgeauto.search.smbo import ProgressiveSMBO
from edgeauto.search.study import TrialJournal, run_study
from edgeauto.search.zero_cost import ZeroCostScorer
from edgeauto.spaces import Arch, SearchSpace, get_space

STRATEGY_NAMES = ("smbo", "random", "evolution")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="archs trained per strategy and seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--space", default="fbnet-lite")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--batches", type=int, default=60, help="proxy-training batches per trial")
    ap.add_argument("--latency-ms", type=float, default=None, help="budget (default: median)")
    ap.add_argument("--device", default="host", help="a local device profile")
    ap.add_argument("--tables", type=Path, default=None)
    ap.add_argument("--ray-workers", type=int, default=2, help="0 skips the Ray timing")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    return ap.parse_args()


class Cache:
    """Trained accuracy per (arch, seed): training is seeded, so a repeat would be equal."""

    def __init__(self, objective: TrainObjective, seed: int) -> None:
        self.objective, self.seed = objective, seed
        self.acc: dict[Arch, float] = {}
        self.trained = 0

    def __call__(self, arch: Arch) -> float:
        if arch not in self.acc:
            self.acc[arch] = self.objective(arch, self.seed)["accuracy"]
            self.trained += 1
        return self.acc[arch]


def median_budget(space: SearchSpace, problem_latency: Any) -> float:
    rng = random.Random(12345)
    return statistics.median(
        problem_latency.predict(space.blocks(space.sample(rng))) for _ in range(200)
    )


def run_strategy(name: str, problem: SearchProblem) -> tuple[list[Trial], Any, float]:
    start = time.perf_counter()
    strategy = STRATEGIES.get(name)(problem)
    result = strategy.search()
    return result.trials, strategy, time.perf_counter() - start


def evals_to_reach(trials: list[Trial], target: float) -> int | None:
    best = -1.0
    for i, t in enumerate(trials, 1):
        best = max(best, t.accuracy)
        if best >= target:
            return i
    return None


def held_out_spearman(smbo: ProgressiveSMBO, others: list[Trial]) -> float | None:
    """The surrogate fitted on all of SMBO's trials, ranking archs it never saw."""
    seen = {t.arch for t in smbo.result.trials}
    held = {t.arch: t.accuracy for t in others if t.arch not in seen}
    surrogate = smbo.fit_surrogate()
    if surrogate is None or len(held) < 3:
        return None
    archs = list(held)
    mean, _ = surrogate.predict([smbo.features(a) for a in archs])
    return spearman(mean.tolist(), [held[a] for a in archs])


def one_seed(
    args: argparse.Namespace, space: SearchSpace, latency: Any, budget: float, seed: int
) -> dict[str, Any]:
    objective = TrainObjective(args.dataset, args.space, seed, 1, args.batches)
    cache = Cache(objective, seed)
    runs: dict[str, Any] = {}
    for name in STRATEGY_NAMES:
        problem = SearchProblem(space, latency, budget, cache, trials=args.n, seed=seed)
        trained_before = cache.trained
        trials, strategy, wall = run_strategy(name, problem)
        runs[name] = {"trials": trials, "strategy": strategy, "wall_s": wall,
                      "trained": cache.trained - trained_before}  # fmt: skip
        best = max(t.accuracy for t in trials)
        print(
            f"  seed {seed} {name:10s} best {best:.4f}  ({wall:.0f} s, {runs[name]['trained']} trained)",
            flush=True,
        )
    target = max(t.accuracy for t in runs["random"]["trials"])
    others = runs["random"]["trials"] + runs["evolution"]["trials"]
    scorer = ZeroCostScorer(
        space, cached_dataset(args.dataset, seed).x_train[:ZERO_COST_SAMPLES], seed
    )
    scored = [
        Trial(t.number, t.arch, t.predicted_ms, t.accuracy, metrics={"zero_cost": scorer.score(t.arch).to_json()})
        for t in runs["random"]["trials"]
    ]  # fmt: skip
    return {
        "seed": seed,
        "best": {n: max(t.accuracy for t in r["trials"]) for n, r in runs.items()},
        "curves": {n: [t.accuracy for t in r["trials"]] for n, r in runs.items()},
        "evals_to_match_random": evals_to_reach(runs["smbo"]["trials"], target),
        "surrogate_spearman": held_out_spearman(runs["smbo"]["strategy"], others),
        "zero_cost_spearman": zero_cost_spearman(scored),
        "smbo_wall_s": runs["smbo"]["wall_s"],
        "smbo_trials": [t.to_json() for t in runs["smbo"]["trials"]],
    }


def ray_timing(
    args: argparse.Namespace,
    space: SearchSpace,
    latency: Any,
    budget: float,
    reference: list[dict[str, Any]],
) -> dict[str, Any]:
    """Seed 0's SMBO study again, on Ray: wall time and whether the trials are the same."""
    objective = TrainObjective(args.dataset, args.space, 0, 1, args.batches)
    problem = SearchProblem(space, latency, budget, lambda a: 0.0, trials=args.n, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with RayExecutor(objective, workers=args.ray_workers) as ex:
            ready = time.perf_counter()
            result = run_study(ProgressiveSMBO(problem), ex, TrialJournal(RunDir(tmp)))
        wall = time.perf_counter() - start
    same = [(t.arch.to_json(), t.accuracy) for t in result.trials] == [
        (r["arch"], r["accuracy"]) for r in reference
    ]
    return {"wall_s": wall, "startup_s": ready - start, "same_trials": same}


def mean_or_none(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.mean(vals) if vals else None


def main() -> None:
    args = parse_args()
    profile = load_profile(args.device)
    data = cached_dataset(args.dataset, 0)
    space = get_space(args.space, data.input_shape, data.num_classes)
    _table, latency = open_table(profile, space, RichReporter(), args.tables)
    budget = args.latency_ms or median_budget(space, latency)
    print(f"{args.space} on {args.dataset}, N={args.n}, {args.seeds} seeds, budget {budget:.4f} ms "
          f"({profile.name}, {profile.runtime}), {args.batches} batches/trial", flush=True)  # fmt: skip
    seeds = [one_seed(args, space, latency, budget, s) for s in range(args.seeds)]
    per_seed = [s["evals_to_match_random"] for s in seeds]
    result: dict[str, Any] = {
        **stamp(),
        "n": args.n, "space": args.space, "dataset": args.dataset, "budget_ms": budget,
        "batches": args.batches, "seeds": seeds,
        "best": {n: [s["best"][n] for s in seeds] for n in STRATEGY_NAMES},
        "evals_to_match_random": {
            "mean": statistics.mean(args.n if v is None else v for v in per_seed),
            "per_seed": per_seed, "reached": sum(v is not None for v in per_seed),
            "goal": args.n / 5,
        },
        "surrogate_spearman": mean_or_none([s["surrogate_spearman"] for s in seeds]),
        "zero_cost_spearman": {
            k: mean_or_none([(s["zero_cost_spearman"] or {}).get(k) for s in seeds])
            for k in ("ntk_cond", "linear_regions")
        },
        "cpus_available": len(os.sched_getaffinity(0)),
        "ray_speedup": None,
    }  # fmt: skip
    if args.ray_workers:
        ray = ray_timing(args, space, latency, budget, seeds[0]["smbo_trials"])
        result["ray"] = {
            **ray,
            "workers": args.ray_workers,
            "in_process_wall_s": seeds[0]["smbo_wall_s"],
        }
        result["ray_speedup"] = seeds[0]["smbo_wall_s"] / ray["wall_s"]
    print_table(result)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")


def _f(v: float | None, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def print_table(r: dict[str, Any]) -> None:
    print(f"\n{'strategy':12}{'best of N (mean)':>18}   per seed")
    for name in STRATEGY_NAMES:
        vals = r["best"][name]
        print(f"{name:12}{statistics.mean(vals):18.4f}   {' '.join(f'{v:.4f}' for v in vals)}")
    e = r["evals_to_match_random"]
    print(f"\nevals for SMBO to reach random's best-of-{r['n']}: mean {e['mean']:.1f} "
          f"(per seed {e['per_seed']}, reached {e['reached']}/{len(e['per_seed'])}; goal <= {e['goal']:g})")  # fmt: skip
    print(f"surrogate Spearman on held-out archs: {_f(r['surrogate_spearman'])} "
          f"(per seed {[_f(s['surrogate_spearman']) for s in r['seeds']]})")  # fmt: skip
    z = r["zero_cost_spearman"]
    print(f"zero-cost vs trained accuracy (Spearman): NTK condition {_f(z['ntk_cond'])}, "
          f"linear regions {_f(z['linear_regions'])}")  # fmt: skip
    if r["ray_speedup"] is not None:
        ray = r["ray"]
        print(f"Ray {ray['workers']} workers {ray['wall_s']:.1f} s (start-up {ray['startup_s']:.1f} s) vs "
              f"in-process {ray['in_process_wall_s']:.1f} s: speed-up {r['ray_speedup']:.2f}x on "
              f"{r['cpus_available']} CPU(s); same trials: {ray['same_trials']}")  # fmt: skip


if __name__ == "__main__":
    main()
