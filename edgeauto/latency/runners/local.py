"""The ``local`` runner: this machine, with the runtimes edgeauto itself imports."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edgeauto.devices.profile import host_cpu_name
from edgeauto.errors import RunnerError
from edgeauto.export.runtimes import get_runtime
from edgeauto.latency.runners.base import (
    RUNNERS,
    DeviceInfo,
    Runner,
    check_counts,
    last_line,
    runtime_of,
)
from edgeauto.timing import LatencyStat, pinned


@RUNNERS.register("local")
class LocalRunner(Runner):
    """Times artifacts in this process with :meth:`edgeauto.export.runtimes.Runtime.measure`,
    pinned to the profile's cores (``os.sched_setaffinity`` around each session)."""

    kind = "local"
    batch_size = 1  # no round trip to save: per-key progress and saves

    def measure_many(
        self, artifacts: Sequence[Path], threads: int, runs: int, warmup: int, rounds: int = 1
    ) -> list[LatencyStat]:
        check_counts(runs, warmup, rounds)
        with pinned(self.cores):
            return [
                get_runtime(runtime_of(a)).measure(Path(a), threads, runs, warmup, rounds)
                for a in artifacts
            ]

    def describe(self) -> DeviceInfo:
        version = get_runtime(self.profile.runtime).version()
        return DeviceInfo(host_cpu_name(), version, platform.python_version())

    def run_python(self, args: Sequence[str], files: dict[str, Path]) -> str:
        """This interpreter in a temp folder holding copies of ``files``, as a board would."""
        with tempfile.TemporaryDirectory(prefix="edgeauto-local-") as tmp:
            for name, path in files.items():
                shutil.copyfile(path, Path(tmp) / name)
            proc = subprocess.run([sys.executable, *args], cwd=tmp, capture_output=True)
        if proc.returncode != 0:
            why = last_line(proc.stderr.decode(errors="replace"))
            raise RunnerError(f"{args[0]} failed on this machine (exit {proc.returncode}): {why}")
        return proc.stdout.decode(errors="replace")
