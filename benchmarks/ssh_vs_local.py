"""SSH table build time vs local, for the same table, side by side.

Builds one latency table twice on this machine: in-process (the ``local`` runner) and through
a throwaway OpenSSH server on 127.0.0.1 (the ``ssh`` runner: blocks converted here, copied and
timed by the timing script, JSON read back). Same space, shape, runtime, threads and timing
settings, so the difference is the runner's cost. Needs /usr/sbin/sshd (openssh-server).

    python benchmarks/ssh_vs_local.py [--space fbnet-micro] [--input-shape 1,8,8] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _stamp import stamp

from edgeauto.devices.profile import DeviceProfile, load_profile
from edgeauto.fileio import write_json
from edgeauto.latency.builder import TimingSettings, fill_table, make_timer, open_device_table
from edgeauto.latency.table import LatencyTable
from edgeauto.spaces import get_space
from edgeauto.testing.sshd import ThrowawaySshd, sshd_unavailable


def build(
    profile: DeviceProfile, space: str, shape: tuple[int, int, int], root: Path
) -> tuple[LatencyTable, float]:
    """Build the table from nothing; (table, wall seconds including connection set-up)."""
    keys = get_space(space, shape, 10).all_keys()
    t0 = time.perf_counter()
    timer = make_timer(profile, TimingSettings())
    try:
        table = open_device_table(profile, space, timer, root)
        fill_table(table, keys, timer)
    finally:
        timer.close()
    return table, time.perf_counter() - t0


def warm_up_conversion() -> None:
    from edgeauto.export.onnx import export_onnx
    from edgeauto.export.runtimes import get_runtime
    from edgeauto.spaces.modules import Stem

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(Stem(1, 1, 1).train(False), (1, 1, 1), Path(tmp) / "w.onnx")
        get_runtime("litert").from_onnx(onnx_path, Path(tmp) / "w.tflite")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="fbnet-micro")
    parser.add_argument("--input-shape", default="1,8,8", help="C,H,W")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if why := sshd_unavailable():
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    shape = tuple(int(v) for v in args.input_shape.split(","))
    host = load_profile("host")
    warm_up_conversion()  # TensorFlow/onnx2tf load once, outside both timings
    with (
        tempfile.TemporaryDirectory(prefix="edgeauto-bench-") as tmp,
        ThrowawaySshd(Path(tmp) / "sshd") as server,
    ):
        board = host.model_copy(update={"name": "host-over-ssh"})
        remote = server.profile(board, python=sys.executable, workdir=f"{tmp}/board")
        local_table, local_s = build(host, args.space, shape, Path(tmp) / "local")  # type: ignore[arg-type]
        ssh_table, ssh_s = build(remote, args.space, shape, Path(tmp) / "ssh")  # type: ignore[arg-type]
    n = len(local_table.entries)
    ratios = [
        ssh_table.entries[k].median_ms / local_table.entries[k].median_ms
        for k in local_table.entries
    ]
    s = TimingSettings()
    print(f"table: {args.space} @ {args.input_shape}, {n} blocks + overhead, {host.runtime}, "
          f"{host.threads} thread(s), {s.runs} runs x {s.rounds} rounds after {s.warmup} warm-up")  # fmt: skip
    print(f"{'':28}{'local':>10}{'ssh 127.0.0.1':>16}")
    print(f"{'build time (s)':28}{local_s:>10.1f}{ssh_s:>16.1f}")
    print(f"{'per block (s)':28}{local_s / n:>10.2f}{ssh_s / n:>16.2f}")
    print(
        f"{'overhead entry (ms)':28}{local_table.overhead_ms():>10.4f}{ssh_table.overhead_ms():>16.4f}"
    )
    print(f"block medians ssh/local: median {statistics.median(ratios):.2f}, "
          f"range {min(ratios):.2f}-{max(ratios):.2f}")  # fmt: skip
    if args.json:
        figures = {**stamp(), "space": args.space, "input_shape": list(shape), "blocks": n,
                   "local_s": local_s, "ssh_s": ssh_s, "median_ratio": statistics.median(ratios)}  # fmt: skip
        write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
