"""int8 vs fp32 on this machine: where a full-integer LiteRT model beats the float one.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/int8_vs_fp32.py [--json PATH] [--rounds 5]

A few random archs (fixed seed) of each space at its input size: ``fbnet-cifar`` at 3x32x32
(ms scale), ``ofa-mbv3`` at 3x160x160 (its smallest resolution, 1000 classes) and
``fbnet-micro``/``fbnet-lite`` at MNIST's 1x28x28 (us scale). Each model (random weights:
timing only) is exported to ONNX, then to ``model.tflite`` (float32) and to a full-integer
``model_int8.tflite`` calibrated on fixed-seed random inputs (the scales do not change the
kernels; see ``edgeauto.export.quantize.timing_calibration``), as ``--precision int8`` does.

Timing: LiteRT with XNNPACK, 1 thread, the process pinned to the host profile's cores
(``os.sched_setaffinity``). ``--rounds`` rounds, each a fresh session of both files in turn
(interleaved, so that a change in the machine's load hits both), ``runs`` timed calls after
a warm-up, ``runs`` chosen per model for ~0.25 s a round. A model's figure is the median of
its round medians; ``rsd`` is the relative standard deviation of those round medians (how
repeatable the figure is). ``speedup`` = fp32 ms / int8 ms (> 1: int8 is faster).

Result on the 2-core dev host (``benchmarks/results/int8_vs_fp32.json``, LiteRT 2.3.0): int8
1.83x faster for fbnet-cifar (ms scale); 0.45-0.58x (slower) for fbnet-micro/lite at 28x28
(tens of us: fixed per-op costs dominate); 0.20x for ofa-mbv3, whose int8 HARD_SWISH runs
outside XNNPACK (a 1x1 conv + hard-swish at 32x40x40: 188 us int8 vs 34 us fp32).

JSON: ``command``, ``commit``, ``date``, ``cpu``, ``litert``, ``rounds``,
``rows[i].{space, input_shape, arch, fp32_ms, int8_ms, speedup, fp32_rsd, int8_rsd, runs}``
and ``summary.<space>.{median_speedup, min, max}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _stamp import stamp

from edgeauto.devices.profile import host_cpu_name, load_profile
from edgeauto.export.onnx import export_onnx
from edgeauto.export.quantize import export_int8_timed
from edgeauto.export.runtimes import get_runtime
from edgeauto.export.tflite import export_tflite
from edgeauto.fileio import write_json
from edgeauto.latency.cores import resolve_cores
from edgeauto.spaces import Arch, SearchSpace, get_space
from edgeauto.timing import allowed_cores

#: (space, input shape, classes, archs): the cases of the task, ms and us scale.
CASES: tuple[tuple[str, tuple[int, int, int], int, int], ...] = (
    ("fbnet-cifar", (3, 32, 32), 10, 3),
    ("ofa-mbv3", (3, 160, 160), 1000, 2),
    ("fbnet-micro", (1, 28, 28), 10, 2),
    ("fbnet-lite", (1, 28, 28), 10, 2),
)
ROUND_S = 0.25  # timed seconds per round and file: enough calls for a stable round median


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=5, help="fresh sessions per file")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sampled archs")
    return ap.parse_args()


def archs(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    """``n`` distinct random archs; a searched resolution is set to the input's (no resize)."""
    rng, found = random.Random(seed), []
    while len(found) < n:
        arch = space.sample(rng)
        if arch.resolution:
            arch = dataclasses.replace(arch, resolution=space.input_shape[1])
        if arch not in found:
            found.append(arch)
    return found


def convert(space: SearchSpace, arch: Arch, work: Path) -> tuple[Path, Path]:
    """``model.tflite`` and ``model_int8.tflite`` of ``arch`` (random weights)."""
    model = space.build(arch).eval()
    onnx_path = export_onnx(model, space.input_shape, work / "model.onnx")
    fp32 = export_tflite(onnx_path, work / "model.tflite")
    int8 = export_int8_timed(onnx_path, work / "model_int8.tflite", space.input_shape)
    return fp32, int8


def runs_for(paths: tuple[Path, ...]) -> int:
    """Calls per round so that the slower file takes about :data:`ROUND_S` a round."""
    rt = get_runtime("litert")
    probe = max(statistics.median(rt.sample(p, 1, 10, 5)) for p in paths)
    return max(30, min(5000, int(ROUND_S * 1000 / probe)))


def time_pair(fp32: Path, int8: Path, rounds: int) -> dict[str, Any]:
    """Interleaved rounds of both files: median of round medians and their rsd, each."""
    rt, runs = get_runtime("litert"), runs_for((fp32, int8))
    medians: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(rounds):
        for name, path in (("fp32", fp32), ("int8", int8)):
            samples = rt.sample(path, 1, runs, max(10, runs // 5))
            medians[name].append(statistics.median(samples))
    out: dict[str, Any] = {"runs": runs}
    for name, ms in medians.items():
        out[f"{name}_ms"] = statistics.median(ms)
        out[f"{name}_rsd"] = statistics.stdev(ms) / statistics.mean(ms) if len(ms) > 1 else 0.0
        out[f"{name}_round_ms"] = ms
    out["speedup"] = out["fp32_ms"] / out["int8_ms"]
    return out


def measure(rounds: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for name, shape, classes, n in CASES:
        space = get_space(name, shape, classes)
        for i, arch in enumerate(archs(space, n, seed)):
            with tempfile.TemporaryDirectory(prefix="int8-vs-fp32-") as tmp:
                fp32, int8 = convert(space, arch, Path(tmp))
                row = {"space": name, "input_shape": list(shape), "arch": arch.to_json(),
                       "index": i, **time_pair(fp32, int8, rounds)}  # fmt: skip
            rows.append(row)
            print_row(row, flush=True)
    return rows


def fmt_ms(ms: float) -> str:
    return f"{ms * 1000:8.1f} us" if ms < 1 else f"{ms:8.3f} ms"


def print_row(r: dict[str, Any], flush: bool = False) -> None:
    shape = "x".join(map(str, r["input_shape"]))
    print(
        f"{r['space']:12s} {shape:11s} #{r['index']}  fp32 {fmt_ms(r['fp32_ms'])} "
        f"(rsd {r['fp32_rsd']:5.1%})  int8 {fmt_ms(r['int8_ms'])} (rsd {r['int8_rsd']:5.1%})  "
        f"fp32/int8 {r['speedup']:5.2f}x  {'int8 faster' if r['speedup'] > 1 else 'fp32 faster'}",
        flush=flush,
    )


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name, *_ in CASES:
        s = [r["speedup"] for r in rows if r["space"] == name]
        out[name] = {"median_speedup": statistics.median(s), "min": min(s), "max": max(s)}
    return out


def main() -> None:
    args = parse_args()
    cores = resolve_cores(load_profile("host")) or allowed_cores()[:1]
    os.sched_setaffinity(0, set(cores))  # the host profile's cores: no migration while timing
    start = time.perf_counter()
    print(f"LiteRT {get_runtime('litert').version()}, 1 thread, pinned to cores {list(cores)}, "
          f"{args.rounds} rounds; speedup = fp32 ms / int8 ms")  # fmt: skip
    rows = measure(args.rounds, args.seed)
    summ = summary(rows)
    print("\nmedian fp32/int8 per space (> 1: int8 faster):")
    for name, s in summ.items():
        print(f"  {name:12s} {s['median_speedup']:5.2f}x  (range {s['min']:.2f}-{s['max']:.2f})")
    wall = time.perf_counter() - start
    print(f"{wall:.0f} s")
    if args.json:
        doc = {
            "command": " ".join(["benchmarks/int8_vs_fp32.py", *sys.argv[1:]]),
            **{k: v for k, v in stamp().items() if k != "command"},
            "cpu": host_cpu_name(), "litert": get_runtime("litert").version(), "threads": 1,
            "pinned_cpu": list(cores), "rounds": args.rounds, "wall_s": wall, "rows": rows,
            "summary": summ,
        }  # fmt: skip
        write_json(args.json, doc)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
