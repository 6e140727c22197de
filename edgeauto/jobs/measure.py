"""Export and measurement: the artifacts, their parity with PyTorch, and their latency on
the device (or emulated when it is out of reach), on every device of ``--one-model``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeauto.devices.profile import load_profile
from edgeauto.errors import ConfigError, RunnerError
from edgeauto.export.parity import export_checked
from edgeauto.export.runtimes import RUNTIMES, time_calls
from edgeauto.fileio import sha256_file
from edgeauto.jobs.context import Context, deployed_artifact
from edgeauto.killpoints import kill_point
from edgeauto.latency.builder import (
    TimingSettings,
    fill_table,
    make_timer,
    open_device_table,
    validate_table,
)
from edgeauto.latency.calibration.history import calibration_factor, record_verification
from edgeauto.latency.emulation import MIN_NETWORKS, expected_error, fit_emulation
from edgeauto.latency.runners import Runner, get_runner
from edgeauto.latency.runners.local import LocalRunner
from edgeauto.latency.worst_case import Member
from edgeauto.timing import REPEATABLE, LatencyStat, pinned

VERIFY_ROUNDS = 5


def export_stage(ctx: Context, model: nn.Module) -> tuple[dict[str, Path], dict[str, Any]]:
    """ONNX, then each runtime's artifact; every artifact must match PyTorch on val inputs."""
    if (done := ctx.resumed("export")) and (files := _unchanged(ctx, done["sha256"])):
        return files, done["parity"]
    with ctx.reporter.task("export and parity", len(RUNTIMES.names())) as task:

        def checked(done: int, total: int) -> None:
            task.update(done, total)
            kill_point("export")

        samples = ctx.data.x_val[: ctx.cfg.parity_samples]
        artifacts, checks = export_checked(model, samples, ctx.rd.root, on_artifact=checked)
    parity: dict[str, Any] = {n: dataclasses.asdict(p) for n, p in checks.items()}
    if ctx.cfg.int8 and "litert" in artifacts:
        artifacts["litert_int8"], parity["litert_int8"] = _int8_artifact(ctx, artifacts["litert"])
    hashes = {n: {"file": p.name, "sha256": sha256_file(p)} for n, p in artifacts.items()}
    ctx.rd.record("export", {"sha256": hashes, "parity": parity})
    return artifacts, parity


def _int8_artifact(ctx: Context, fp32: Path) -> tuple[Path, dict[str, Any]]:
    """model_int8.tflite, calibrated on training inputs and checked against ``fp32`` on the
    whole validation split (a warning, not an error, when they disagree: float32 ships)."""
    from edgeauto.export.quantize import check_int8, export_int8

    path = export_int8(ctx.rd.path("model.onnx"), ctx.rd.path("model_int8.tflite"),
                       ctx.data.x_train, seed=ctx.cfg.seed)  # fmt: skip
    check = check_int8(fp32, path, ctx.data.x_val, ctx.data.y_val, ctx.profile.threads)
    if warning := check.warning():
        ctx.reporter.log(f"warning: {warning}")
    return path, {**check.to_json(), "warning": warning}


def _unchanged(ctx: Context, recorded: dict[str, Any]) -> dict[str, Path] | None:
    """The recorded artifacts, if each is still in the run directory with its hash."""
    files = {n: ctx.rd.path(r["file"]) for n, r in recorded.items()}
    ok = all(p.is_file() and sha256_file(p) == recorded[n]["sha256"] for n, p in files.items())
    return files if ok else None


def measure_stage(
    ctx: Context, model: nn.Module, artifacts: dict[str, Path]
) -> dict[str, LatencyStat]:
    """Time the artifacts on the device through its runner (batch 1); on this machine also
    the model in PyTorch eager. The verdict reads the deployed one (:attr:`Context.deployed`).

    A remote device that cannot be reached, or has no usable connection, is emulated
    (:func:`_emulate`) and ``ctx.measurement`` says so. A real measurement of the profile's
    runtime is added to the table's history, which calibrates later runs' predictions.
    """
    if done := ctx.resumed("measure"):  # measured already: keep those numbers
        ctx.measurement.update(done["measurement"])
        return {n: LatencyStat(**st) for n, st in done["stats"].items()}
    total = len(artifacts) + 1
    local = ctx.profile.connection.kind == "local"
    with ctx.reporter.task(f"measuring on {ctx.profile.name}", total) as task:
        try:
            stats = _measure_on_device(ctx, artifacts, task.update)
        except (RunnerError, ConfigError) as exc:
            if local or ctx.table is None or ctx.space is None:
                raise  # this machine itself failed, or nothing to emulate from
            stats = _emulate(ctx, model, artifacts, exc)
        if local:
            runs, threads = ctx.cfg.measure_runs, ctx.profile.threads
            cores = ctx.measurement.get("cores")
            stats["torch_eager"] = measure_torch(model, ctx.data.input_shape, threads, runs, cores)
        task.update(total, total)
    if ctx.measurement["measured_on"] == "device":
        _record_history(ctx, model, artifacts, stats)
    stats_json = {n: dataclasses.asdict(st) for n, st in stats.items()}
    ctx.rd.record("measure", {"stats": stats_json, "measurement": ctx.measurement})
    kill_point("measure")
    return stats


def verify_counts(runs: int) -> tuple[int, int, int]:
    """(runs, warmup, rounds) of a verification: ``runs`` split over :data:`VERIFY_ROUNDS`
    fresh sessions, so that one session slowed by other load is dropped
    (:meth:`LatencyStat.from_rounds`) rather than taken for the device's speed."""
    per_round = max(20, runs // VERIFY_ROUNDS)
    return per_round, max(10, per_round // 2), VERIFY_ROUNDS


def _measure_on_device(
    ctx: Context, artifacts: dict[str, Path], update: Callable[[int, int], None]
) -> dict[str, LatencyStat]:
    """Each artifact timed by the device's runner, the deployed one first.

    On a remote device only the profile's runtime and the deployed artifact are required: a
    board may lack the other runtime (and adb times .tflite only), so those failures are
    recorded and skipped.
    """
    p = ctx.profile
    required = {p.runtime, ctx.deployed}
    order = [ctx.deployed, *(n for n in artifacts if n != ctx.deployed)]
    stats: dict[str, LatencyStat] = {}
    skipped: dict[str, str] = {}
    with get_runner(p) as runner:
        info = runner.describe()
        for i, name in enumerate(order, 1):
            try:
                stats[name] = _verify(ctx, runner, artifacts[name], name == ctx.deployed)
            except RunnerError as exc:
                if name in required or p.connection.kind == "local":
                    raise
                skipped[name] = str(exc)
            update(i, len(artifacts) + 1)
        cores = runner.cores
    ctx.measurement.update(
        measured_on="device", cpu=info.cpu_model, runtime_version=info.runtime_version,
        skipped=skipped, cores=list(cores) if cores else None,
    )  # fmt: skip
    _warn_unsteady(ctx, stats)
    return {n: stats[n] for n in artifacts if n in stats}


def _verify(ctx: Context, runner: Runner, artifact: Path, deployed: bool) -> LatencyStat:
    """One artifact timed for the verdict. The deployed one is taken beside the run's
    reference where pruning measured against it, and read in the reference's frame (the
    machine as pruning saw it); the figure as timed now and the drift are recorded too."""
    p, runs, ref = ctx.profile, ctx.cfg.measure_runs, ctx.reference
    if not deployed or ref is None:
        return runner.measure(artifact, p.threads, *verify_counts(runs))
    rel = runner.measure_beside([artifact], ref.path, p.threads, *verify_counts(runs))[0]
    ctx.measurement["reference"] = {
        **ref.to_json(), "ratio": rel.ratio, "now_ms": rel.reference.median_ms,
        "drift": rel.reference.median_ms / ref.ms, "raw_ms": rel.model.median_ms,
        "raw_repeatability": rel.model.repeatability,
    }  # fmt: skip
    return rel.at(ref.ms)


def _warn_unsteady(ctx: Context, stats: dict[str, LatencyStat]) -> None:
    """Say, in the log and the manifest, which figures stayed unsteady after re-taking them:
    the machine was busy, and those numbers are not to be bet on."""
    shaky = {n: s.repeatability for n, s in stats.items() if not s.repeatable}
    ctx.measurement["unrepeatable"] = shaky
    if shaky:
        worst = max(v for v in shaky.values() if v is not None)
        ctx.reporter.log(
            f"warning: {', '.join(shaky)} timed unsteadily (rounds spread up to {worst:.1%}, "
            f"above {REPEATABLE:.0%}) even after re-measuring: something else loads the device"
        )


def _emulate(
    ctx: Context, model: nn.Module, artifacts: dict[str, Path], reason: Exception
) -> dict[str, LatencyStat]:
    """The device's latency estimated here: the artifact timed on this machine with the
    profile's runtime, mapped by the device/host law (fixed cost + ratio) fitted on the
    blocks both tables share (:func:`edgeauto.latency.emulation.fit_emulation`).

    This machine's table for the space (at the run's precision) is opened (or started) and
    given the model's blocks, so that the blocks the model is made of are among those the
    law is fitted on. The deployed artifact is the one timed.
    """
    assert ctx.table is not None and ctx.space is not None  # checked by the caller
    rt, runs, name = ctx.profile.runtime, ctx.cfg.measure_runs, ctx.deployed
    host = load_profile("host").model_copy(update={"runtime": rt})
    keys = model.op_keys(ctx.data.input_shape[1:])
    timer = make_timer(host, TimingSettings(), ctx.cfg.precision)
    try:
        host_table = open_device_table(host, ctx.space.name, timer, _tables_root(ctx))
        fill_table(host_table, keys, timer)
        if (short := MIN_NETWORKS - len(host_table.validation)) > 0:  # the expected error's data
            validate_table(host_table, ctx.space, timer, short)
    finally:
        timer.close()
    fit = fit_emulation(ctx.table, host_table)
    with LocalRunner(host) as runner:  # pinned like the host table it is compared with
        host_stat = runner.measure(artifacts[name], host.threads, *verify_counts(runs))
    emulation = {
        "reason": str(reason), "host_cpu": host_table.provenance.cpu_model,
        "host_threads": host.threads, "host_ms": host_stat.median_ms,
        "host_p90_ms": host_stat.p90_ms, "host_repeatability": host_stat.repeatability,
        "host_cores": list(runner.cores or ()), "host_table": str(host_table.path), **fit.to_json(),
        "expected_error": expected_error(fit, ctx.table, host_table),
        "expected_error_networks": len(host_table.validation),
        "table_conversion": ctx.table.provenance.conversion or None,
    }  # fmt: skip
    ctx.measurement.update(
        measured_on="emulated", cpu=ctx.table.provenance.cpu_model, emulation=emulation
    )
    return {name: fit.emulate(host_stat)}


def _tables_root(ctx: Context) -> Path | None:
    return Path(ctx.cfg.tables) if ctx.cfg.tables else None


def _record_history(
    ctx: Context, model: nn.Module, artifacts: dict[str, Path], stats: dict[str, LatencyStat]
) -> None:
    """Add (uncalibrated prediction, measurement) of the deployed artifact to the table's
    history (the table of its precision)."""
    if ctx.table is None or ctx.predictor is None:
        return  # a user's own model is costed by its layers: no block table to calibrate
    rt = ctx.deployed
    predicted = ctx.predictor.uncalibrated(model.op_keys(ctx.data.input_shape[1:]))
    signature = ctx.predictor.model.signature()
    record_verification(
        ctx.table, sha256_file(artifacts[rt]), predicted, stats[rt].median_ms, signature
    )
    ctx.measurement["calibration"] = {
        "used": ctx.predictor.calibration, "source": ctx.predictor.calibration_source,
        "history": len(ctx.table.history), "next": calibration_factor(ctx.table, signature),
    }  # fmt: skip
    if fresh := (ctx.rd.stages().get("calibrate") or {}).get(ctx.profile.name):
        ctx.measurement["calibration"]["fresh_networks"] = fresh["archs"]


def measure_torch(
    model: nn.Module,
    shape: tuple[int, ...],
    threads: int,
    runs: int,
    cores: Sequence[int] | None = None,
) -> LatencyStat:
    """PyTorch eager latency at batch 1 with ``threads`` intra-op threads, on ``cores``."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    x = torch.randn(1, *shape)
    try:
        with torch.inference_mode(), pinned(cores):
            return time_calls(lambda: model(x), runs, warmup=max(20, runs // 4))
    finally:
        torch.set_num_threads(old)


def devices_stage(
    ctx: Context, model: nn.Module, artifacts: dict[str, Path]
) -> list[dict[str, Any]]:
    """``--one-model``: the artifact of each further device's runtime, timed on that device
    through its runner (an unreachable device is judged by its prediction, and says so)."""
    if ctx.worst is None:
        return []
    if done := ctx.resumed("devices"):
        return list(done["devices"])
    keys = list(model.op_keys(ctx.data.input_shape[1:]))
    with ctx.reporter.task("measuring on the other devices", len(ctx.worst.members) - 1):
        out = [_device_verdict(ctx, m, keys, artifacts) for m in ctx.worst.members[1:]]
    ctx.rd.record("devices", {"devices": out})
    return out


def _device_verdict(
    ctx: Context, member: Member, keys: list[Any], artifacts: dict[str, Path]
) -> dict[str, Any]:
    p, runs = member.profile, ctx.cfg.measure_runs
    budget = ctx.budget.at(member.budget_ms)
    doc: dict[str, Any] = {"name": p.name, "runtime": p.runtime, "threads": p.threads,
                           "budget_ms": member.budget_ms,
                           "predicted_ms": member.predictor.predict(keys)}  # fmt: skip
    try:
        with get_runner(p) as runner:
            artifact = artifacts[deployed_artifact(p, ctx.cfg.precision)]
            stat = runner.measure(artifact, p.threads, *verify_counts(runs))
    except RunnerError as exc:  # out of reach: say so, judge by the prediction
        ok = budget.within(doc["predicted_ms"])
        return {**doc, "measured_ms": None, "measured_on": "unreachable", "error": str(exc),
                "within_budget": ok}  # fmt: skip
    return {**doc, "measured_ms": stat.median_ms, "p90_ms": stat.p90_ms,
            "measured_on": "device", "within_budget": budget.within(stat.median_ms)}  # fmt: skip
