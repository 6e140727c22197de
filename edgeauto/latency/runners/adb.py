"""The ``adb`` runner: Android phones, timed with LiteRT's ``benchmark_model`` binary.

The binary (the user builds or downloads it for the phone's CPU and names it in the profile's
``connection.benchmark_model``) is pushed once per runner to ``workdir``; each batch pushes its
models in one ``adb push``, runs ``benchmark_model --graph=... --num_threads=N --num_runs=R
--warmup_runs=W`` for each in one ``adb shell`` call, parses the output and removes the models.
``adb shell`` joins its arguments into one string for the phone's shell, so every argument is
quoted with :func:`shlex.quote`.

Unverified on hardware: tested against recorded ``benchmark_model`` output and a fake ``adb``.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError, RunnerError
from edgeauto.latency.runners.base import RUNNERS, DeviceInfo, Runner, check_counts
from edgeauto.timing import LatencyStat, spread

CALL_TIMEOUT_S = 3600
BINARY = "benchmark_model"
MARK = "@@edgeauto-model"  # printed before each model's output, to split one shell call's text
# Standard-normal quantiles: p90 estimated from p95 or std when the tool reports no p90.
Z90, Z95 = 1.2816, 1.6449
_NUM = r"([0-9.]+(?:[eE][+-]?[0-9]+)?)"
_SUMMARY = re.compile(
    rf"Inference timings in us: Init: {_NUM}, First inference: {_NUM}, "
    rf"Warmup \(avg\): {_NUM}, Inference \(avg\): {_NUM}"
)
_DETAIL = re.compile(
    rf"count=(\d+) first={_NUM} curr={_NUM} min={_NUM} max={_NUM} avg={_NUM} std={_NUM}"
    rf"(?: p5={_NUM} median={_NUM} p95={_NUM})?"
)


@dataclass(frozen=True)
class BenchmarkRun:
    """The figures of one ``benchmark_model`` run, in microseconds."""

    init_us: float
    first_us: float
    warmup_avg_us: float
    avg_us: float
    count: int | None = None
    std_us: float | None = None
    median_us: float | None = None
    p95_us: float | None = None

    def stat(self, runs: int) -> LatencyStat:
        """Median and p90 in ms. benchmark_model prints no p90: it is interpolated between the
        median and p95 (normal quantiles), else avg + 1.28 std, else the average."""
        median = self.median_us if self.median_us is not None else self.avg_us
        if self.p95_us is not None:
            p90 = median + (self.p95_us - median) * Z90 / Z95
        elif self.std_us is not None:
            p90 = self.avg_us + Z90 * self.std_us
        else:
            p90 = self.avg_us
        return LatencyStat(median / 1e3, max(p90, median) / 1e3, self.count or runs)


def parse_benchmark_output(text: str) -> BenchmarkRun:
    """Parse ``benchmark_model``'s text: the ``Inference timings in us`` line and, when
    present, the last ``count=... avg=... std=... [p5= median= p95=]`` line before it."""
    summary = _SUMMARY.search(text)
    if summary is None:
        last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:] or ["no output"]
        raise RunnerError(
            f"benchmark_model printed no 'Inference timings in us' line (last line: "
            f"{last[0]!r}); run it by hand on the phone to see why"
        )
    init, first, warm, avg = (float(v) for v in summary.groups())
    details = list(_DETAIL.finditer(text, 0, summary.start()))
    if not details:
        return BenchmarkRun(init, first, warm, avg)
    g = details[-1].groups()
    optional = [float(v) if v is not None else None for v in (g[7], g[8], g[9])]
    return BenchmarkRun(init, first, warm, avg, int(g[0]), float(g[6]), optional[1], optional[2])


def pooled(stats: Sequence[LatencyStat]) -> LatencyStat:
    """Rounds of one model: medians of the rounds' medians and p90s, runs summed, and how
    much the rounds' medians spread (the figure's repeatability)."""
    return LatencyStat(
        statistics.median(s.median_ms for s in stats),
        statistics.median(s.p90_ms for s in stats),
        sum(s.runs for s in stats),
        spread([s.median_ms for s in stats]),
    )


def explain_adb_failure(target: str, text: str, rc: int) -> str:
    """One line for a failed adb call, from what adb printed."""
    last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:] or ["no output"]
    if re.search(r"device '.*' not found", text):
        return (
            f"no such adb device: {target} ({last[0]}); connect the phone with USB debugging "
            "on and check `adb devices`, or fix connection.serial"
        )
    if "no devices/emulators found" in text:
        return (
            f"no adb device attached for {target} ({last[0]}); connect the phone with USB "
            "debugging on and check `adb devices`"
        )
    if "more than one device" in text:
        return f"several adb devices attached; set connection.serial to one of `adb devices` ({last[0]})"
    if "unauthorized" in text or "offline" in text:
        return f"adb device {target} is not usable ({last[0]}); unlock it and accept the USB debugging prompt"
    return f"adb call to {target} failed (exit {rc}): {last[0]}"


@RUNNERS.register("adb")
class AdbRunner(Runner):
    """Times ``.tflite`` artifacts on an Android phone with ``benchmark_model`` over adb."""

    kind = "adb"

    def __init__(self, profile: DeviceProfile) -> None:
        super().__init__(profile)
        self.conn = profile.connection
        self.target = self.conn.target()
        if not self.conn.benchmark_model:
            raise ConfigError(
                f"device {profile.name}: connection.benchmark_model is not set; timing over adb "
                "needs LiteRT's benchmark_model binary built for the phone (android_arm64): set "
                "connection.benchmark_model to its path on this machine"
            )
        if profile.runtime != "litert":
            raise ConfigError(
                f"device {profile.name}: the adb runner times with LiteRT's benchmark_model, "
                f"but runtime is {profile.runtime!r}; set runtime: litert"
            )
        self.binary = Path(self.conn.benchmark_model).expanduser()
        if not self.binary.is_file():
            raise ConfigError(
                f"device {profile.name}: connection.benchmark_model {str(self.binary)!r} is not "
                "a file; fix the path"
            )
        self.workdir = self.conn.workdir.rstrip("/") or "/"
        self.remote_binary = f"{self.workdir}/{BINARY}"
        self._pushed = False

    def adb(self, *args: str) -> str:
        """Run ``adb [-s serial] ARGS``; its stdout (stderr folded in) or a :class:`RunnerError`."""
        serial = ["-s", self.conn.serial] if self.conn.serial else []
        argv = [self.conn.adb, *serial, *args]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=CALL_TIMEOUT_S)
        except FileNotFoundError:
            raise RunnerError(
                f"adb executable {self.conn.adb!r} not found; install Android platform-tools or "
                "set connection.adb to its path"
            ) from None
        except subprocess.TimeoutExpired:
            raise RunnerError(
                f"adb {args[0]} on {self.target} took over {CALL_TIMEOUT_S} s"
            ) from None
        text = (proc.stdout + proc.stderr).decode(errors="replace")
        if proc.returncode != 0:
            raise RunnerError(explain_adb_failure(self.target, text, proc.returncode))
        return text

    def shell(self, *words: str) -> str:
        """Run one command on the phone, every word quoted for the phone's shell."""
        return self.adb("shell", " ".join(shlex.quote(w) for w in words))

    def _ensure_binary(self) -> None:
        if self._pushed:
            return
        self.shell("mkdir", "-p", self.workdir)
        self.adb("push", str(self.binary), self.remote_binary)
        self.shell("chmod", "755", self.remote_binary)
        self._pushed = True

    def describe(self) -> DeviceInfo:
        model = self.shell("getprop", "ro.product.model").strip() or "android"
        soc = self.shell("getprop", "ro.board.platform").strip()
        digest = hashlib.sha256(self.binary.read_bytes()).hexdigest()[:12]
        return DeviceInfo(f"{model} ({soc})" if soc else model, f"benchmark_model sha256:{digest}")

    def measure_many(
        self, artifacts: Sequence[Path], threads: int, runs: int, warmup: int, rounds: int = 1
    ) -> list[LatencyStat]:
        check_counts(runs, warmup, rounds)
        if not artifacts:
            return []
        bad = [str(a) for a in artifacts if Path(a).suffix != ".tflite"]
        if bad:
            raise RunnerError(
                f"the adb runner times .tflite files with benchmark_model, got {bad[0]}; "
                "measure the .tflite artifact"
            )
        self._ensure_binary()
        tag = uuid.uuid4().hex[:8]
        names = [f"edgeauto-{tag}-{i}.tflite" for i in range(len(artifacts))]
        with tempfile.TemporaryDirectory(prefix="edgeauto-adb-") as tmp:
            # Our own names on the phone: local names may clash or need quoting.
            staged = [shutil.copyfile(a, Path(tmp) / n) for a, n in zip(artifacts, names)]
            self.adb("push", *(str(f) for f in staged), f"{self.workdir}/")
        text = self.adb("shell", self._batch_command(names, threads, runs, warmup, rounds))
        sections = _split(text)
        stats = []
        for name, artifact in zip(names, artifacts):
            if not sections.get(name):
                raise RunnerError(
                    f"benchmark_model printed nothing for {artifact} on {self.target}; run it by "
                    "hand with adb shell to see why"
                )
            stats.append(pooled([parse_benchmark_output(t).stat(runs) for t in sections[name]]))
        return stats

    def _batch_command(
        self, names: list[str], threads: int, runs: int, warmup: int, rounds: int
    ) -> str:
        """One phone shell command: each model ``rounds`` times, marked, then removed."""
        q, wd = shlex.quote, self.workdir
        flags = [f"--num_threads={threads}", f"--num_runs={runs}", f"--warmup_runs={warmup}"]
        parts = []
        # taskset <hex mask>, as TFLite's benchmark guide pins a phone's big cores (toybox has it)
        pin = ["taskset", format(sum(1 << c for c in self.cores), "x")] if self.cores else []
        for n in names:
            run = " ".join(q(w) for w in (*pin, self.remote_binary, f"--graph={wd}/{n}", *flags))
            parts += [f"echo {MARK} {n}; {run} 2>&1"] * rounds
        parts.append("rm -f " + " ".join(q(f"{wd}/{n}") for n in names))
        return "; ".join(parts)


def _split(text: str) -> dict[str, list[str]]:
    """Output of one batch command -> model name -> the text of each of its runs."""
    out: dict[str, list[list[str]]] = {}
    name = None
    for line in text.splitlines():
        if line.startswith(MARK + " "):
            name = line[len(MARK) + 1 :].strip()
            out.setdefault(name, []).append([])
        elif name is not None:
            out[name][-1].append(line)
    return {n: ["\n".join(run) for run in runs] for n, runs in out.items()}
