"""Why timing is pinned: one model timed per core, unpinned, and on 1 vs 2 threads, side by side.

A fixed random arch of ``--space`` (default ``fbnet-cifar`` at 3x32x32: ms scale) is converted once for LiteRT and
timed in ``--rounds`` fresh sessions of ``--runs`` runs each, interleaved over the settings
(each core pinned alone, unpinned, two threads on every core), so a drift in the machine's load
spreads over all of them. For each setting: the median of the round medians and the
repeatability (relative stdev of the round medians), plus the core the ``host`` profile's
``cpu_affinity: auto`` picks.

    .venv/bin/python benchmarks/pinning.py [--json PATH] [--rounds 12] [--runs 100]
        [--space fbnet-lite --input-shape 1,28,28]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _stamp import stamp

from edgeauto.devices.profile import host_cpu_name, load_profile
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import get_runtime
from edgeauto.fileio import write_json
from edgeauto.latency.cores import resolve_cores
from edgeauto.spaces import get_space
from edgeauto.timing import allowed_cores, pinned, spread


def settings() -> dict[str, tuple[tuple[int, ...] | None, int]]:
    """name -> (cores or None for unpinned, threads)."""
    cores = allowed_cores()
    out: dict[str, tuple[tuple[int, ...] | None, int]] = {f"core {c}": ((c,), 1) for c in cores}
    out["unpinned, 1 thread"] = (None, 1)
    if len(cores) > 1:
        out[f"{len(cores)} threads, all cores"] = (cores, len(cores))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--space", default="fbnet-cifar")
    ap.add_argument("--input-shape", default="3,32,32", help="C,H,W")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.input_shape.split(","))
    space = get_space(args.space, shape, 10)
    arch = space.sample(random.Random(0))
    litert = get_runtime("litert")
    cases = settings()
    medians: dict[str, list[float]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(space.build(arch).train(False), shape, Path(tmp) / "m.onnx")
        art = litert.from_onnx(onnx_path, Path(tmp) / "m.tflite")
        for r in range(args.rounds):
            for name, (cores, threads) in cases.items():
                with pinned(cores):
                    samples = litert.sample(art, threads, args.runs, 20)
                medians[name].append(statistics.median(samples))
            print(f"\rround {r + 1}/{args.rounds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    rows = {n: {"median_ms": statistics.median(m), "repeatability": spread(m), "rounds_ms": m}
            for n, m in medians.items()}  # fmt: skip
    result: dict[str, Any] = {
        **stamp(),
        "cpu": host_cpu_name(), "model": {"space": space.name, "input_shape": list(shape), "arch": arch.to_json()},
        "runtime": f"litert {litert.version()}", "rounds": args.rounds, "runs": args.runs,
        "auto_picks": list(resolve_cores(load_profile("host")) or ()), "settings": rows,
    }  # fmt: skip
    print(f"{'setting':24}{'median ms':>10}{'repeatability':>15}")
    for name, row in rows.items():
        print(f"{name:24}{row['median_ms']:10.3f}{row['repeatability']:15.1%}")
    print(f"cpu_affinity: auto picks cores {result['auto_picks']}")
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
