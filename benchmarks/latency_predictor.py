"""Latency predictors against whole networks measured end to end, side by side, per runtime.

N random archs of the space (default: fbnet-lite at MNIST's 1x28x28) are exported once,
converted for LiteRT and ONNX Runtime, and timed on this machine at the host profile's
threads. Timing follows edgeauto's own recipe and adds interleaving: every round loads a
fresh session per artifact (warm-up runs, then timed runs) and the rounds go over all
artifacts in turn, so a drift in the machine's load spreads over every arch instead of
biasing a few; each arch's latency is the median of its pooled samples. Predictors:

- ``naive``: sum of the table's block medians;
- ``fusion``: blocks minus the measured invocation overhead, plus one overhead per model;
- ``fusion+residual``: ``fusion`` with the ridge correction, K-fold cross-validated (each arch
  is predicted by a model trained on the other folds only);
- ``flops``: total FLOPs, a rank proxy (Spearman only).

For each: the share of archs predicted within ±5% and ±10%, RMSPE and Spearman's rho, beside
the timing's repeatability (relative stdev of each arch's round medians). Every timing, the
table's and the archs', is pinned to the profile's ``cpu_affinity`` (the host: ``auto``);
an arch whose rounds spread more than 5% is timed again (twice at most) and still counted,
so the scores include what an unsteady machine does to them.

    .venv/bin/python benchmarks/latency_predictor.py [--archs 100] [--json out.json]
        [--space fbnet-cifar --input-shape 3,32,32] [--runtimes litert,onnxruntime]
        [--tables DIR] [--work DIR] [--rounds 5] [--runs 100] [--folds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _stamp import stamp

from edgeauto.data import dataset_shape
from edgeauto.devices.profile import DeviceProfile, host_cpu_name, load_profile
from edgeauto.errors import ConfigError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.quantize import export_int8_timed
from edgeauto.export.runtimes import get_runtime
from edgeauto.fileio import write_json
from edgeauto.latency.cores import resolve_cores
from edgeauto.latency.device import open_table
from edgeauto.latency.fusion import (
    FusionResidual,
    Score,
    cross_validated,
    get_predictor,
    list_predictors,
)
from edgeauto.latency.runners.base import RETRIES
from edgeauto.latency.table import LatencyStat, LatencyTable, WholeModelRun
from edgeauto.progress import RichReporter
from edgeauto.spaces import Arch, SearchSpace, get_space
from edgeauto.timing import REPEATABLE, pinned, spread

RUNTIMES = ("litert", "onnxruntime")
#: What a ``--runtimes`` name times: (runtime, precision). ``litert-int8``: full-integer
#: LiteRT models, against the int8 table.
TARGETS = {"litert": ("litert", "fp32"), "onnxruntime": ("onnxruntime", "fp32"),
           "litert-int8": ("litert", "int8")}  # fmt: skip
ORDER = ("naive", "fusion", "fusion+residual", "flops")  # the order; others follow


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=100, help="random archs to measure")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--device", default="host", help="a local device profile")
    ap.add_argument("--space", default="fbnet-lite")
    ap.add_argument("--dataset", default="mnist5k", help="its input shape is used")
    ap.add_argument("--input-shape", default=None, help="C,H,W instead of the dataset's")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated")
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="keep converted archs here (a re-run converts only what is missing)",
    )
    ap.add_argument("--tables", type=Path, default=None, help="tables folder (default hw_latency)")
    ap.add_argument("--rounds", type=int, default=5, help="fresh sessions per arch and runtime")
    ap.add_argument("--runs", type=int, default=100, help="timed runs per round")
    ap.add_argument("--warmup", type=int, default=30, help="untimed runs per round")
    ap.add_argument("--folds", type=int, default=5, help="K of the residual's cross-validation")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def distinct_archs(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    rng, seen, archs = random.Random(seed), set(), []
    while len(archs) < n:
        arch = space.sample(rng)
        if arch not in seen:
            seen.add(arch)
            archs.append(arch)
    return archs


def export_all(
    space: SearchSpace, archs: list[Arch], work: Path, runtimes: list[str]
) -> list[dict[str, Path]]:
    """Per arch: runtime name -> its artifact (one ONNX export, converted per runtime); files
    already in ``work`` (named by the arch's hash) are reused."""
    out = []
    work.mkdir(parents=True, exist_ok=True)
    for i, arch in enumerate(archs):
        text = json.dumps(arch.to_json(), sort_keys=True) + repr(space.input_shape)
        stem = work / f"{space.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        onnx_path = stem.with_suffix(".src.onnx")
        if not onnx_path.exists():
            export_onnx(space.build(arch).train(False), space.input_shape, onnx_path)
        arts = {}
        for rt in runtimes:
            arts[rt] = _convert(onnx_path, stem, rt, space.input_shape)
        out.append(arts)
        print(f"\rexported {i + 1}/{len(archs)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def _convert(onnx_path: Path, stem: Path, target: str, shape: tuple[int, ...]) -> Path:
    """The artifact of ``target`` (kept in the work folder: converted once)."""
    runtime, precision = TARGETS[target]
    suffix = get_runtime(runtime).suffix
    out = Path(f"{stem}{'.int8' if precision == 'int8' else ''}{suffix}")
    if out.exists():
        return out
    if precision == "int8":  # calibrated like the int8 table's blocks: fixed-seed inputs
        return export_int8_timed(onnx_path, out, shape)  # type: ignore[arg-type]
    return get_runtime(runtime).from_onnx(onnx_path, out)


def measure_interleaved(
    artifacts: list[dict[str, Path]], threads: int, args: argparse.Namespace, rts: list[str]
) -> dict[str, list[list[list[float]]]]:
    """runtime -> arch -> round -> samples (ms). Round r times every arch before round r+1."""
    samples: dict[str, list[list[list[float]]]] = {rt: [[] for _ in artifacts] for rt in rts}
    for r in range(args.rounds):
        for i, arts in enumerate(artifacts):
            for rt in rts:
                runtime = get_runtime(TARGETS[rt][0])
                samples[rt][i].append(runtime.sample(arts[rt], threads, args.runs, args.warmup))
        print(f"\rtimed round {r + 1}/{args.rounds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return samples


def retime_unsteady(
    artifacts: list[dict[str, Path]], samples: dict[str, list[list[list[float]]]],
    threads: int, args: argparse.Namespace,
) -> int:  # fmt: skip
    """Time again (up to RETRIES times) each arch whose rounds spread over REPEATABLE, keeping
    the steadier set of rounds, as edgeauto's runners do (``Runner.measure_all``); here the
    rounds stay raw samples, interleaved. Returns how many were re-timed."""
    redone = 0
    for rt, per_arch in samples.items():
        for i, rounds in enumerate(per_arch):
            for _ in range(RETRIES):
                if noise(rounds) <= REPEATABLE:
                    break
                runtime = get_runtime(TARGETS[rt][0])
                again = [runtime.sample(artifacts[i][rt], threads, args.runs, args.warmup)
                         for _ in range(args.rounds)]  # fmt: skip
                redone += 1
                if noise(again) < noise(rounds):
                    rounds[:] = again
    return redone


def noise(rounds: list[list[float]]) -> float:
    """Relative spread of one arch's round medians (stdev / mean): its repeatability."""
    return spread([statistics.median(s) for s in rounds]) or 0.0


def score_runtime(table: LatencyTable, runs: list[WholeModelRun], folds: int) -> dict[str, Any]:
    """Each predictor's scores on ``runs`` (the residual out of fold)."""
    measured = [r.measured_ms for r in runs]
    out: dict[str, Any] = {}
    order = [n for n in ORDER if n in list_predictors()]
    for name in order + [n for n in list_predictors() if n not in order]:
        if name == "fusion+residual":
            try:
                pred = cross_validated(lambda: FusionResidual(table), runs, folds)
            except ConfigError as exc:  # too few archs per training fold
                out[name] = {"error": str(exc)}
                continue
        else:
            model = get_predictor(name, table)
            pred = [model.predict(r.keys) for r in runs]
        score = Score.of(pred, measured).to_json()
        if get_predictor(name, table).rank_only:
            score = {k: (v if k == "spearman" else None) for k, v in score.items()}
        out[name] = {**score, "predicted_ms": pred}
    return out


def tables_for(
    base: DeviceProfile, space: SearchSpace, root: Path | None, rts: list[str]
) -> dict[str, LatencyTable]:
    """The host's table per runtime (measured on first use: ~150 blocks, a few minutes)."""
    tables = {}
    for rt in rts:
        runtime, precision = TARGETS[rt]
        prof = base.model_copy(update={"runtime": runtime})
        tables[rt], _ = open_table(prof, space, RichReporter(), root, precision)
    return tables


def main() -> None:
    args = parse_args()
    base = load_profile(args.device)
    if base.connection.kind != "local":
        sys.exit(
            f"--device must be a local device profile, got {base.name} ({base.connection.kind})"
        )
    shape, classes = dataset_shape(args.dataset)
    if args.input_shape:
        shape = tuple(int(v) for v in args.input_shape.split(","))
    rts = args.runtimes.split(",")
    space = get_space(args.space, shape, classes)
    cores = resolve_cores(base)
    tables = tables_for(base, space, args.tables, rts)
    archs = distinct_archs(space, args.archs, args.seed)
    work = args.work or Path("runs") / "bench-latency-archs"
    artifacts = export_all(space, archs, work, rts)
    t0 = time.perf_counter()
    with pinned(cores):
        samples = measure_interleaved(artifacts, base.threads, args, rts)
        retimed = retime_unsteady(artifacts, samples, base.threads, args)
    result: dict[str, Any] = {
        **stamp(),
        "n_archs": len(archs), "space": space.name, "input_shape": list(shape),
        "threads": base.threads, "runtime": base.runtime, "cpu": host_cpu_name(),
        "cpu_affinity": list(cores) if cores else None,
        "core_speeds_ms": {rt: t.provenance.core_speeds_ms for rt, t in tables.items()},
        "timing": {"rounds": args.rounds, "runs": args.runs, "warmup": args.warmup,
                   "interleaved": True, "retimed": retimed, "seconds": time.perf_counter() - t0},
        "folds": args.folds, "archs": [a.to_json() for a in archs], "runtimes": {},
    }  # fmt: skip
    for rt in rts:
        stats = [LatencyStat.from_samples([x for rnd in s for x in rnd]) for s in samples[rt]]
        runs = [
            WholeModelRun(tuple(space.blocks(a)), st.median_ms, st.p90_ms, st.runs, "", a.to_json())
            for a, st in zip(archs, stats)
        ]
        spreads = [noise(s) for s in samples[rt]]
        result["runtimes"][rt] = {
            "measured_ms": [st.median_ms for st in stats], "repeatability": spreads,
            "noise": statistics.median(spreads),
            "unsteady": sum(x > REPEATABLE for x in spreads),
            "predictors": score_runtime(tables[rt], runs, args.folds),
        }  # fmt: skip
    result["predictors"] = result["runtimes"][rts[0]]["predictors"]
    print_table(result)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")


def _cell(v: float | None, pct: bool) -> str:
    if v is None:
        return f"{'-':>8}"
    return f"{v:8.1%}" if pct else f"{v:8.3f}"


def print_table(result: dict[str, Any]) -> None:
    rts = list(result["runtimes"])
    print(
        f"\n{result['n_archs']} archs of {result['space']} {tuple(result['input_shape'])}, "
        f"{result['threads']} thread(s), {result['cpu']}, pinned to cores "
        f"{result['cpu_affinity']}; repeatability (relative stdev of each arch's round medians: "
        "median, max; archs over 5%): "
        + ", ".join(
            f"{rt} {result['runtimes'][rt]['noise']:.1%}, "
            f"{max(result['runtimes'][rt]['repeatability']):.1%}; "
            f"{result['runtimes'][rt]['unsteady']}"
            for rt in rts
        )
    )
    head = "".join(f" | {rt:^35}" for rt in rts)
    sub = "".join(f" | {'±5%':>8}{'±10%':>8}{'RMSPE':>8}{'rho':>8}   " for _ in rts)
    print(f"{'predictor':16}{head}\n{'':16}{sub}")
    for name in result["predictors"]:
        cells = ""
        for rt in rts:
            s = result["runtimes"][rt]["predictors"][name]
            if "error" in s:
                cells += f" | {'n/a: too few archs per fold':35}"
                continue
            cells += (
                " | "
                + "".join(
                    _cell(s[k], k != "spearman")
                    for k in ("within_5pct", "within_10pct", "rmspe", "spearman")
                )
                + "   "
            )
        print(f"{name:16}{cells}")
    ms = {rt: result["runtimes"][rt]["measured_ms"] for rt in rts}
    print(
        "measured ms (min / median / max): "
        + ", ".join(
            f"{rt} {min(v):.4f} / {statistics.median(v):.4f} / {max(v):.4f}" for rt, v in ms.items()
        )
    )


if __name__ == "__main__":
    main()
