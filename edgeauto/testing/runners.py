"""The conformance suite of runners (:data:`edgeauto.latency.runners.RUNNERS`).

A runner is checked against a real device: ``local`` is this machine; ``ssh`` is this
machine through a throwaway OpenSSH server on 127.0.0.1 (:mod:`edgeauto.testing.sshd`),
skipped with the reason when sshd is absent; other kinds (``adb``) need the caller's
profile of a reachable device, else they are skipped.
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeauto.devices.profile import DeviceProfile, load_profile
from edgeauto.errors import RunnerError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import get_runtime
from edgeauto.latency.runners import RUNNERS, DeviceInfo, Runner
from edgeauto.latency.table import LatencyStat
from edgeauto.spaces.modules import Stem
from edgeauto.testing.common import CheckSkipped
from edgeauto.testing.sshd import ThrowawaySshd, sshd_unavailable

SHAPE = (1, 8, 8)


@contextmanager
def _default_profile(name: str, tmp: Path) -> Iterator[DeviceProfile]:
    """This machine reached the runner's way; :class:`CheckSkipped` when it cannot be."""
    if name == "local":
        yield load_profile("host")
        return
    if name != "ssh":
        raise CheckSkipped(f"the {name} runner needs a reachable device: pass its profile")
    if why := sshd_unavailable():
        raise CheckSkipped(why)
    base = load_profile("raspberry-pi-4").model_copy(update={"name": "check-board", "threads": 1})
    with ThrowawaySshd(tmp / "sshd") as server:
        yield server.profile(base, python=sys.executable, workdir=str(tmp / "board"))


def _artifact(profile: DeviceProfile, tmp: Path) -> Path:
    """A tiny real model exported for the profile's runtime."""
    onnx_path = export_onnx(Stem(SHAPE[0], 8, 1).train(False), SHAPE, tmp / "m.onnx")
    runtime = get_runtime(profile.runtime)
    return runtime.from_onnx(onnx_path, tmp / f"m{runtime.suffix}")


def check_runner(name: str, profile: DeviceProfile | None = None) -> None:
    """``describe()`` reports the device; ``run_python`` runs a script beside the files sent
    (or says the device has no Python); ``measure``/``measure_many`` time a real exported
    model with sane stats, one per artifact in order; bad counts and suffixes are one-line
    :class:`RunnerError`; ``close`` is idempotent. ``profile`` defaults to this machine
    reached the runner's way (:class:`CheckSkipped` when it cannot be)."""
    cls = RUNNERS.get(name)
    assert cls.kind == name, f"runner {name!r} says its kind is {cls.kind!r}"
    assert cls.batch_size >= 1, f"runner {name!r} has batch_size {cls.batch_size}"
    with tempfile.TemporaryDirectory() as tmp, _given_or_default(name, profile, Path(tmp)) as prof:
        assert prof.connection.kind == name, f"profile connects by {prof.connection.kind}"
        artifact = _artifact(prof, Path(tmp))
        runner = cls(prof)
        with runner as entered:
            assert entered is runner, "__enter__ must return the runner"
            _check_describe(runner.describe())
            _check_python(runner, Path(tmp))
            _check_measure(runner, artifact)
            _check_refusals(runner, artifact)
        runner.close()  # a second close (after __exit__'s) must be harmless
        runner.close()


@contextmanager
def _given_or_default(
    name: str, profile: DeviceProfile | None, tmp: Path
) -> Iterator[DeviceProfile]:
    if profile is not None:
        yield profile
    else:
        with _default_profile(name, tmp) as prof:
            yield prof


def _check_describe(info: object) -> None:
    assert isinstance(info, DeviceInfo), f"describe() returned {info!r}"
    assert isinstance(info.cpu_model, str) and info.cpu_model.strip(), "describe(): no CPU model"
    assert isinstance(info.runtime_version, str) and info.runtime_version.strip(), (
        "describe(): no runtime version"
    )


def _check_python(runner: Runner, tmp: Path) -> None:
    """None (no Python there: ``describe().python`` is None too), or the script's stdout, run
    where the files were sent; a failing script is a one-line RunnerError."""
    sent = tmp / "sent.txt"
    sent.write_text("edgeauto sent this")
    got = runner.run_python(["-c", "print(open('in.txt').read())"], {"in.txt": sent})
    assert (got is None) == (runner.describe().python is None), "python: run_python disagrees"
    if got is None:
        return
    assert got.strip() == "edgeauto sent this", f"run_python printed {got!r}"
    try:
        runner.run_python(["-c", "raise SystemExit('boom')"], {})
    except RunnerError as exc:
        assert "\n" not in str(exc) and "boom" in str(exc), f"a failed script: {exc}"
    else:
        raise AssertionError("run_python of a failing script must raise RunnerError")


def _sane(stat: object) -> None:
    assert isinstance(stat, LatencyStat), f"a measurement must be a LatencyStat, got {stat!r}"
    assert math.isfinite(stat.p90_ms) and 0 < stat.median_ms <= stat.p90_ms, f"bad stat {stat}"
    assert stat.runs >= 1, f"a measurement of {stat.runs} runs"


def _check_measure(runner: Runner, artifact: Path) -> None:
    stat = runner.measure(artifact, threads=1, runs=30, warmup=2)
    _sane(stat)
    many = runner.measure_many([artifact, artifact], threads=1, runs=30, warmup=2)
    assert isinstance(many, list) and len(many) == 2, "measure_many: one stat per artifact"
    for s in many:
        _sane(s)


def _check_refusals(runner: Runner, artifact: Path) -> None:
    for args, what in (
        ((artifact, 1, 0, 0), "runs=0"),
        ((artifact.with_suffix(".pt"), 1, 5, 1), ".pt"),
    ):
        try:
            runner.measure(*args)
        except RunnerError as exc:
            assert "\n" not in str(exc), f"{what}: the error spans lines: {exc}"
        else:
            raise AssertionError(f"measure with {what} must raise RunnerError")
