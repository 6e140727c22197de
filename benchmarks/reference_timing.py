"""Why a run times beside a reference: one model's raw median vs its ratio to a reference,
over many takes spread in time, side by side.

Two fixed random archs of ``--space`` (default ``fbnet-lite`` at 1x28x28, the default job's
µs scale) are converted once for LiteRT: the first is the model, the second the reference.
Each take is what a run's relative timing does (``Runner.measure_beside``, pinned to the
``host`` profile's cores): ``--rounds`` interleaved rounds of one fresh session each. Takes
are ``--gap`` seconds apart. For the model's raw median and for the ratio: the spread over
takes (relative stdev) and max / min.

    .venv/bin/python benchmarks/reference_timing.py [--json PATH] [--takes 20] [--gap 5]
"""

from __future__ import annotations

import argparse
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
from edgeauto.export.runtimes import get_runtime
from edgeauto.fileio import write_json
from edgeauto.latency.runners.local import LocalRunner
from edgeauto.spaces import get_space
from edgeauto.timing import spread


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--takes", type=int, default=20)
    ap.add_argument("--gap", type=float, default=5.0, help="seconds between takes")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--space", default="fbnet-lite")
    ap.add_argument("--input-shape", default="1,28,28", help="C,H,W")
    return ap.parse_args()


def convert(space_name: str, shape: tuple[int, int, int], folder: Path) -> list[Path]:
    """The model and the reference: two random archs, converted for LiteRT."""
    space, rng, out = get_space(space_name, shape, 10), random.Random(0), []
    litert = get_runtime("litert")
    for name in ("model", "reference"):
        net = space.build(space.sample(rng)).train(False)
        out.append(litert.from_onnx(export_onnx(net, shape, folder / f"{name}.onnx"),
                                    folder / f"{name}.tflite"))  # fmt: skip
    return out


def summary(values: list[float]) -> dict[str, float | None]:
    return {"median": statistics.median(values), "spread": spread(values),
            "max_over_min": max(values) / min(values)}  # fmt: skip


def main() -> None:
    args = parse_args()
    shape = tuple(int(v) for v in args.input_shape.split(","))
    runner = LocalRunner(load_profile("host"))
    takes: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model, reference = convert(args.space, shape, Path(tmp))  # type: ignore[arg-type]
        for i in range(args.takes):
            rel = runner.measure_beside([model], reference, 1, args.runs, 10, args.rounds)[0]
            takes.append({"model_ms": rel.model.median_ms, "reference_ms": rel.reference.median_ms,
                          "ratio": rel.ratio})  # fmt: skip
            print(f"take {i + 1:2d}: model {rel.model.median_ms:.4f} ms, reference "
                  f"{rel.reference.median_ms:.4f} ms, ratio {rel.ratio:.4f}", flush=True)  # fmt: skip
            time.sleep(args.gap)
    doc: dict[str, Any] = {
        **stamp(), "cpu": host_cpu_name(), "cpu_affinity": list(runner.cores or ()),
        "space": args.space, "input_shape": list(shape), "settings": vars(args) | {
            "json": str(args.json)}, "takes": takes,
        "raw": summary([t["model_ms"] for t in takes]),
        "ratio": summary([t["ratio"] for t in takes]),
    }  # fmt: skip
    for name in ("raw", "ratio"):
        s = doc[name]
        print(f"{name:5s}: spread over takes {s['spread']:.1%}, max/min {s['max_over_min']:.3f}")
    if args.json:
        write_json(args.json, doc)


if __name__ == "__main__":
    sys.exit(main())
