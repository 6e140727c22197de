"""``run(config) -> Manifest``: the only orchestrator, as short named stages.

device -> table -> search -> train -> prune to budget -> fine-tune -> export -> parity ->
measure -> manifest + report. Finished stages are recorded in ``stages.json``; with
``resume=True`` they are loaded from the run directory instead of recomputed.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeauto.bundle import write_bundle
from edgeauto.compress import CRITERIA, PRUNERS, PruneConfig, PruneProblem, PruningPlan
from edgeauto.compress.calibrate import MAX_CALIBRATIONS, prune_measured
from edgeauto.compress.scratch import reinitialize
from edgeauto.config import RunConfig
from edgeauto.data import Dataset, load_dataset
from edgeauto.devices.profile import DeviceProfile, load_profile
from edgeauto.errors import ConfigError, RunDirError, RunnerError, TableMiss
from edgeauto.export.memory import measure_peak_activations
from edgeauto.export.onnx import export_onnx
from edgeauto.export.parity import check_parity
from edgeauto.export.runtimes import RUNTIMES, get_runtime, time_calls
from edgeauto.fileio import atomic_path, sha256_file
from edgeauto.killpoints import kill_point
from edgeauto.latency.calibration import (
    calibration_factor,
    expected_error,
    fit_emulation,
    record_verification,
)
from edgeauto.latency.fresh import FreshCalibration, measure_calibration
from edgeauto.latency.importers import usable_imported
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.latency.profiler import (
    BlockTimer,
    ProfileSettings,
    check_compatible,
    fill_table,
    make_timer,
    open_device_table,
)
from edgeauto.latency.roofline import warn_below_floor
from edgeauto.latency.runners import get_runner
from edgeauto.latency.store import load_if_exists, table_path
from edgeauto.latency.table import LatencyStat, LatencyTable
from edgeauto.latency.worst_case import Member, WorstCasePredictor
from edgeauto.limits import Footprint, estimate
from edgeauto.manifest import Manifest
from edgeauto.progress import NullReporter, Reporter
from edgeauto.report import write_report
from edgeauto.report.pareto import breakdown, pareto_points, points_json
from edgeauto.rundir import EPOCH_SUFFIX, RunDir, release
from edgeauto.search import STRATEGIES, SearchProblem, Trial
from edgeauto.search.base import LatencyPredictor
from edgeauto.search.executors import InProcessExecutor
from edgeauto.search.objective import TrainObjective, preload
from edgeauto.search.study import TrialJournal, run_study
from edgeauto.spaces import SearchSpace, get_space
from edgeauto.spaces.base import Arch
from edgeauto.train import EpochCheckpoint, TrainConfig, accuracy, fit
from edgeauto.version import __version__

VERIFY_ROUNDS = 5
INHERITED = "checkpoints/inherited.pt"  # supernet weights of the searched arch (dnas)


@dataclass
class Context:
    """State shared by the stages of one run."""

    cfg: RunConfig
    rd: RunDir
    reporter: Reporter
    profile: DeviceProfile
    data: Dataset
    space: SearchSpace | None
    table: LatencyTable | None
    predictor: MeasuringPredictor | None
    # A user's own model has no block keys: it is costed layer by layer (compression.py)
    cost: Callable[[nn.Module], float] | None = None
    timer: BlockTimer | None = None
    # How the final artifact was measured (measure_stage): on the device or emulated, the
    # CPU the runner reported, the emulation's fit, the calibration history
    measurement: dict[str, Any] = dataclasses.field(default_factory=dict)
    # --one-model: every device's budget at once, in this device's ms (latency/worst_case.py)
    worst: WorstCasePredictor | None = None

    @property
    def latency(self) -> LatencyPredictor:
        """What search and pruning aim with: this device's predictor, or the worst case."""
        assert self.predictor is not None  # set whenever a space is searched
        return self.worst or self.predictor

    def own_latency(self, model: nn.Module) -> float:
        """This device's own prediction (ms), whatever the search aimed with."""
        if self.cost is not None or self.predictor is None:
            return self.latency_of(model)
        return self.predictor.predict_keys(model.op_keys(self.data.input_shape[1:]))

    def latency_of(self, model: nn.Module) -> float:
        """Predicted latency (ms): the block table for searched nets, else ``cost``."""
        if self.cost is not None:
            return self.cost(model)
        return self.latency.predict_keys(model.op_keys(self.data.input_shape[1:]))

    @property
    def whole_timer(self) -> BlockTimer | None:
        """The timer that can measure a whole model on the device, if any."""
        return self.timer or (self.predictor.timer if self.predictor else None)

    def resumed(self, stage: str) -> dict[str, Any] | None:
        return self.rd.stages().get(stage) if self.cfg.resume else None


def open_table(
    profile: DeviceProfile, space: SearchSpace, reporter: Reporter, root: Path | None = None
) -> tuple[LatencyTable, MeasuringPredictor]:
    """Load the device's table for ``space``, measuring missing keys when the device is local.

    A remote device (ssh, adb) is not contacted here: its table must exist (``edgeauto
    profile`` builds it through the device's runner), or :class:`TableMiss` names the command.
    An imported table of the device (``edgeauto lut import``) is used as it is, never extended.
    """
    if profile.connection.kind == "local":
        timer: BlockTimer | None = make_timer(profile, ProfileSettings())
        table = open_device_table(profile, space.name, timer, root)
    else:
        timer, path = None, table_path(profile, space.name, root)
        table = load_if_exists(path)
        if table is None:
            raise TableMiss(
                f"no latency table for {profile.name} ({profile.runtime}) at {path}; build it with "
                f"edgeauto profile --device {profile.name} --space {space.name}"
            )
        if not usable_imported(table, profile):
            check_compatible(table, profile, get_runtime(profile.runtime), space.name)
    warn_below_floor(table, profile)  # faster than physics allows: flagged, not rejected
    missing = table.missing(space.all_keys())
    if missing and timer is not None:
        desc = f"profiling {len(missing)} blocks on {profile.name} ({profile.runtime})"
        with reporter.task(desc, len(missing)) as task:
            fill_table(table, missing, timer, lambda d, t, _k: task.update(d, t))
    return table, MeasuringPredictor(table, timer)


def setup(cfg: RunConfig, reporter: Reporter) -> Context:
    """Validate inputs in the order a user would fix them, then open data, space and table."""
    # unknown names fail fast, before any data is loaded or block measured
    STRATEGIES.get(cfg.strategy), PRUNERS.get(cfg.allocation), CRITERIA.get(cfg.criterion)
    profile = load_profile(cfg.device)
    if profile.cost_model != "latency":  # no latency budget means anything there
        raise ConfigError(
            f"device {profile.name} is costed by ReLU count, not latency; give --relu-budget N "
            "instead of --latency-ms"
        )
    if cfg.relu_budget is not None:
        raise ConfigError(
            f"--relu-budget needs a device costed by ReLU count (cost_model: relu-count), and "
            f"{profile.name} is costed by latency; drop --relu-budget or use --device pi-relu"
        )
    rd, data, space = open_run(cfg)
    root = Path(cfg.tables) if cfg.tables else None
    table, predictor = open_table(profile, space, reporter, root)
    rd.write_json("config.json", cfg.to_json())
    ctx = Context(cfg, rd, reporter, profile, data, space, table, predictor)
    if cfg.also:
        first = Member(profile, cfg.latency_ms, predictor)
        ctx.worst = WorstCasePredictor([first, *_members(cfg, space, reporter, root)])
    return ctx


def calibrate_devices(ctx: Context) -> None:
    """:func:`calibrate_stage` for the run's device and, with ``--one-model``, each other."""
    assert ctx.predictor is not None  # a searched space always has a predictor
    members = ctx.worst.members if ctx.worst else [
        Member(ctx.profile, ctx.cfg.latency_ms, ctx.predictor)
    ]  # fmt: skip
    for member in members:
        calibrate_stage(ctx, member)


def calibrate_stage(ctx: Context, member: Member) -> None:
    """With ``calibration="fresh"`` and a device this machine can time, set the device's
    calibration factor from whole networks timed now (:mod:`edgeauto.latency.fresh`); a
    resumed run reuses the recorded factor, so that it predicts as the interrupted one did."""
    predictor, name = member.predictor, member.profile.name
    if ctx.cfg.calibration != "fresh" or predictor.timer is None or ctx.space is None:
        return
    recorded = (ctx.resumed("calibrate") or {}).get(name)
    if recorded is not None:
        fresh = FreshCalibration.from_json(recorded)
    else:  # a few seconds, without a progress line: any input error must stay one line
        fresh = measure_calibration(
            predictor, ctx.space, ctx.data.input_shape, member.budget_ms, ctx.cfg.seed
        )
        done = ctx.rd.stages().get("calibrate", {})
        ctx.rd.record("calibrate", {**done, name: fresh.to_json()})
    predictor.recalibrate(fresh.factor, "fresh")


def open_run(cfg: RunConfig) -> tuple[RunDir, Dataset, SearchSpace]:
    """Lock and start the run directory (checking a resumed config), load data and space."""
    rd = RunDir(cfg.out)
    rd.start(cfg.resume, cfg.to_json())
    data = load_dataset(cfg.dataset, seed=cfg.seed)
    return rd, data, get_space(cfg.space, data.input_shape, data.num_classes)


def _members(
    cfg: RunConfig, space: SearchSpace, reporter: Reporter, root: Path | None
) -> list[Member]:
    """The further devices of ``--one-model``, each with its own table and budget."""
    members = []
    for device, budget in cfg.also:
        profile = load_profile(device)
        if profile.cost_model != "latency":
            raise ConfigError(f"--one-model needs latency devices; {profile.name} counts ReLUs")
        members.append(Member(profile, budget, open_table(profile, space, reporter, root)[1]))
    return members


def search_stage(
    ctx: Context, aim: LatencyPredictor | None = None, budget: float | None = None
) -> Arch:
    """Search the space for the most accurate arch within ``budget x headroom``.

    Trials are journalled in ``trials.jsonl`` as they finish; with ``resume`` an interrupted
    search continues from them (:func:`edgeauto.search.study.run_study`). ``aim`` and
    ``budget`` replace the device's latency and budget for a device costed otherwise (ReLUs:
    :mod:`edgeauto.jobs.private`); the caller then checks feasibility itself.
    """
    if done := ctx.resumed("search"):
        arch = _recorded_arch(ctx, done)
        if aim is None:
            calibrate_devices(ctx)  # the recorded factors: predictions as the first time
        return arch
    cfg = ctx.cfg
    preload(cfg.dataset, cfg.seed, ctx.data)  # the objective finds the loaded data here
    objective = TrainObjective(
        cfg.dataset, cfg.space, cfg.seed, cfg.search_epochs, cfg.search_batches
    )

    def evaluate(arch: Arch) -> float:
        return objective(arch, cfg.seed)["accuracy"]

    problem = SearchProblem(
        ctx.space, aim or ctx.latency, budget or cfg.latency_ms * cfg.headroom, evaluate,
        trials=cfg.trials, seed=cfg.seed, device=ctx.profile.name, profile=ctx.profile,
        data=ctx.data, limits=cfg.limits if cfg.limits.any else None,
        floor_ms=cfg.latency_ms if aim is None and cfg.headroom > 1.0 else 0.0,
    )  # fmt: skip
    if cfg.inherit_weights and not hasattr(STRATEGIES.get(cfg.strategy), "weights_for"):
        raise ConfigError(
            f"--inherit-weights needs a strategy that trains a supernet (dnas), not "
            f"{cfg.strategy}; drop the flag or use --strategy dnas"
        )
    TrialJournal(ctx.rd).load()  # a damaged journal fails here, before the progress bar
    if aim is None:  # after the checks of the inputs (a bad one costs no timing), before
        calibrate_devices(ctx)  # the budget's feasibility, which is judged calibrated
        problem.check_feasible(cfg.latency_ms)
    strategy = STRATEGIES.get(cfg.strategy)(problem)
    with ctx.reporter.task(f"search ({cfg.strategy}, {cfg.trials} trials)", cfg.trials) as task:

        def on_trial(trial: Trial) -> None:
            task.update(trial.number + 1, cfg.trials)

        executor = InProcessExecutor(objective)
        best = run_study(strategy, executor, TrialJournal(ctx.rd), on_trial).best
    ctx.rd.record(
        "search",
        {"arch": best.arch.to_json(), "accuracy": best.accuracy, "predicted_ms": best.predicted_ms,
         **_search_extras(ctx, strategy, best.arch)},
    )  # fmt: skip
    return best.arch


def _search_extras(ctx: Context, strategy: Any, arch: Arch) -> dict[str, Any]:
    """What a supernet strategy (dnas) leaves besides trials: its per-epoch curve
    (``search_curve.json``) and, with ``inherit_weights``, the winner's supernet weights."""
    extras: dict[str, Any] = {}
    curve = [p.to_json() for p in getattr(strategy, "curve", [])]
    if curve:
        ctx.rd.write_json("search_curve.json", {"strategy": ctx.cfg.strategy, "epochs": curve})
        extras["curve"] = curve
    if ctx.cfg.inherit_weights:
        with atomic_path(ctx.rd.path(INHERITED)) as tmp:
            torch.save(strategy.weights_for(arch), tmp)
        extras["inherited"] = INHERITED
    return extras


def build_model(ctx: Context, arch: Arch) -> nn.Module:
    """A fresh model of ``arch``; with ``inherit_weights``, the supernet's weights in it."""
    model = ctx.space.build(arch)
    if ctx.cfg.inherit_weights:
        model.load_state_dict(torch.load(ctx.rd.path(INHERITED), weights_only=True))
    return model


def _recorded_arch(ctx: Context, done: dict[str, Any]) -> Arch:
    """The arch a finished search recorded; a damaged record names the file and the fix."""
    try:
        return Arch.from_json(done["arch"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise RunDirError(
            f"{ctx.rd.path('stages.json')}: the search record is damaged ({exc}); delete the "
            "file or drop --resume"
        ) from None


def train_stage(ctx: Context, model: nn.Module, stage: str, epochs: int) -> float:
    """Train ``model`` for ``epochs`` (or load the checkpoint when resuming); val accuracy."""
    ckpt = ctx.rd.path(f"checkpoints/{stage}.pt")
    if (done := ctx.resumed(stage)) and ckpt.exists():
        model.load_state_dict(torch.load(ckpt, weights_only=True))
        return float(done["accuracy"])
    if epochs > 0:
        total = epochs * -(-len(ctx.data.x_train) // TrainConfig.batch_size)
        # every epoch is checkpointed: a killed run resumes at its last finished epoch
        epoch_ckpt = EpochCheckpoint(
            ctx.rd.path(f"checkpoints/{stage}{EPOCH_SUFFIX}"),
            lambda _epoch: kill_point(f"{stage}_epoch"),
        )
        with ctx.reporter.task(f"{stage} ({epochs} epochs)", total) as task:
            fit(model, ctx.data, TrainConfig(epochs=epochs), ctx.cfg.seed, task.update, epoch_ckpt)
    acc = accuracy(model, ctx.data.x_val, ctx.data.y_val)
    with atomic_path(ckpt) as tmp:
        torch.save(model.state_dict(), tmp)
    ctx.rd.record(stage, {"accuracy": acc})
    ctx.rd.path(f"checkpoints/{stage}{EPOCH_SUFFIX}").unlink(missing_ok=True)
    return acc


def prune_stage(ctx: Context, model: nn.Module) -> tuple[nn.Module, PruningPlan]:
    """Prune a copy of ``model`` until it meets the budget; the pruned model and its plan.

    On a device this machine can time, the unpruned model is measured whole first and the
    predicted cost rescaled to it, so pruning aims at the measured latency (a little under the
    budget: :data:`edgeauto.compress.calibrate.LANDING`); the pruned model is measured, and
    a miss either way re-aims pruning (:func:`edgeauto.compress.calibrate.prune_measured`).
    A remote device is pruned on the calibrated prediction alone.
    """
    shape = ctx.data.input_shape
    if done := ctx.resumed("prune"):
        plan = PruningPlan.from_json(done["plan"])
        plan.apply(model, shape)
        return model, plan
    cfg = ctx.cfg
    prune_cfg = PruneConfig(round_to=ctx.profile.pruning_multiple, seed=cfg.seed)
    pruner = PRUNERS.get(cfg.allocation)(cfg.criterion, prune_cfg)
    problem = PruneProblem(shape, ctx.latency_of, cfg.latency_ms, ctx.data)
    measure = (lambda m: _measure_whole(ctx, m)) if ctx.whole_timer else None
    title = f"pruning ({cfg.allocation}, {cfg.criterion}) to {cfg.latency_ms:g} ms"
    with ctx.reporter.task(title, MAX_CALIBRATIONS) as task:
        model, plan = prune_measured(pruner, model, problem, measure, lambda n: _pruned(task, n))
    ctx.rd.record("prune", {"plan": plan.to_json()})
    kill_point("prune")
    return model, plan


def _pruned(task: Any, attempt: int) -> None:
    task.update(attempt, MAX_CALIBRATIONS)
    kill_point("prune_step")


def scratch_stage(ctx: Context, model: nn.Module) -> float:
    """Liu et al.'s baseline: the pruned architecture trained from scratch with the same
    epochs as the unpruned model got (train + fine-tune); its validation accuracy."""
    if done := ctx.resumed("scratch"):
        return float(done["accuracy"])
    fresh = reinitialize(copy.deepcopy(model), ctx.cfg.seed)
    epochs = ctx.cfg.epochs + ctx.cfg.finetune_epochs
    total = epochs * -(-len(ctx.data.x_train) // TrainConfig.batch_size)
    with ctx.reporter.task(f"scratch baseline ({epochs} epochs)", total) as task:
        fit(fresh, ctx.data, TrainConfig(epochs=epochs), ctx.cfg.seed, task.update)
    acc = accuracy(fresh, ctx.data.x_val, ctx.data.y_val)
    ctx.rd.record("scratch", {"accuracy": acc, "epochs": epochs})
    return acc


def _measure_whole(ctx: Context, model: nn.Module) -> float | None:
    """Measured latency of the whole model where the device is local, else None. With
    ``--one-model``, the worst measured-over-budget ratio in this device's ms (a device that
    cannot time here counts with its prediction)."""
    timer = ctx.whole_timer
    if ctx.worst is None:
        return timer.time_module(model, ctx.data.input_shape).median_ms if timer else None
    keys = list(model.op_keys(ctx.data.input_shape[1:]))
    ratios = []
    for m in ctx.worst.members:
        t = m.predictor.timer
        ms = t.time_module(model, ctx.data.input_shape).median_ms if t else None
        ratios.append((ms if ms is not None else m.predictor.predict_keys(keys)) / m.budget_ms)
    return ctx.worst.unit * max(ratios)


def export_stage(ctx: Context, model: nn.Module) -> tuple[dict[str, Path], dict[str, Any]]:
    """ONNX, then each runtime's artifact; every artifact must match PyTorch on val inputs."""
    if (done := ctx.resumed("export")) and (files := _unchanged(ctx, done["sha256"])):
        return files, done["parity"]
    shape = ctx.data.input_shape
    artifacts: dict[str, Path] = {}
    parity: dict[str, Any] = {}
    with ctx.reporter.task("export and parity", len(RUNTIMES.names())) as task:
        onnx_path = export_onnx(model, shape, ctx.rd.path("model.onnx"))
        for i, name in enumerate(RUNTIMES.names(), 1):
            rt = get_runtime(name)
            artifacts[name] = rt.from_onnx(onnx_path, ctx.rd.path(f"model{rt.suffix}"))
            samples = ctx.data.x_val[: ctx.cfg.parity_samples]
            parity[name] = dataclasses.asdict(check_parity(model, rt, artifacts[name], samples))
            task.update(i, len(RUNTIMES.names()))
            kill_point("export")
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
    the model in PyTorch eager.

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
            stats["torch_eager"] = measure_torch(model, ctx.data.input_shape, threads, runs)
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
    """Each artifact timed by the device's runner, the profile's runtime first.

    On a remote device only the profile's runtime is required: a board may lack the other
    one (and adb times .tflite only), so those failures are recorded and skipped.
    """
    p, runs = ctx.profile, ctx.cfg.measure_runs
    order = [p.runtime, *(n for n in artifacts if n != p.runtime)]
    stats: dict[str, LatencyStat] = {}
    skipped: dict[str, str] = {}
    with get_runner(p) as runner:
        info = runner.describe()
        for i, name in enumerate(order, 1):
            try:
                stats[name] = runner.measure(artifacts[name], p.threads, *verify_counts(runs))
            except RunnerError as exc:
                if name == p.runtime or p.connection.kind == "local":
                    raise
                skipped[name] = str(exc)
            update(i, len(artifacts) + 1)
    ctx.measurement.update(
        measured_on="device", cpu=info.cpu_model, runtime_version=info.runtime_version,
        skipped=skipped,
    )  # fmt: skip
    return {n: stats[n] for n in artifacts if n in stats}


def _emulate(
    ctx: Context, model: nn.Module, artifacts: dict[str, Path], reason: Exception
) -> dict[str, LatencyStat]:
    """The device's latency estimated here: the artifact timed on this machine with the
    profile's runtime, mapped by the device/host law (fixed cost + ratio) fitted on the
    blocks both tables share (:func:`edgeauto.latency.calibration.fit_emulation`).

    This machine's table for the space is opened (or started) and given the model's blocks,
    so that the blocks the model is made of are among those the law is fitted on.
    """
    assert ctx.table is not None and ctx.space is not None  # checked by the caller
    rt, runs = ctx.profile.runtime, ctx.cfg.measure_runs
    host = load_profile("host").model_copy(update={"runtime": rt})
    keys = model.op_keys(ctx.data.input_shape[1:])
    timer = make_timer(host, ProfileSettings())
    try:
        host_table = open_device_table(host, ctx.space.name, timer, _tables_root(ctx))
        fill_table(host_table, keys, timer)
    finally:
        timer.close()
    fit = fit_emulation(ctx.table, host_table)
    host_stat = get_runtime(rt).measure(artifacts[rt], host.threads, *verify_counts(runs))
    emulation = {
        "reason": str(reason), "host_cpu": host_table.provenance.cpu_model,
        "host_threads": host.threads, "host_ms": host_stat.median_ms,
        "host_p90_ms": host_stat.p90_ms, "host_table": str(host_table.path), **fit.to_json(),
        "expected_error": expected_error(fit, ctx.table, host_table),
    }  # fmt: skip
    ctx.measurement.update(
        measured_on="emulated", cpu=ctx.table.provenance.cpu_model, emulation=emulation
    )
    return {rt: fit.emulate(host_stat)}


def _tables_root(ctx: Context) -> Path | None:
    return Path(ctx.cfg.tables) if ctx.cfg.tables else None


def _record_history(
    ctx: Context, model: nn.Module, artifacts: dict[str, Path], stats: dict[str, LatencyStat]
) -> None:
    """Add (uncalibrated prediction, measurement) of the final artifact to the table's history."""
    if ctx.table is None or ctx.predictor is None:
        return  # a user's own model is costed by its layers: no block table to calibrate
    rt = ctx.profile.runtime
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


def measure_torch(model: nn.Module, shape: tuple[int, ...], threads: int, runs: int) -> LatencyStat:
    """PyTorch eager latency at batch 1 with ``threads`` intra-op threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    x = torch.randn(1, *shape)
    try:
        with torch.inference_mode():
            return time_calls(lambda: model(x), runs, warmup=max(20, runs // 4))
    finally:
        torch.set_num_threads(old)


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    names = (
        "torch",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
        "tensorflow-cpu",
        "onnx2tf",
        "torch-pruning",
    )
    out = {"python": platform.python_version(), "edgeauto": __version__}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = "missing"
    return out


def _latency_json(ctx: Context, predicted: float, stats: dict[str, LatencyStat]) -> dict[str, Any]:
    measured = stats[ctx.profile.runtime].median_ms
    per_runtime: dict[str, float] = {}
    for name, st in stats.items():
        per_runtime[f"{name}_ms"] = st.median_ms
        per_runtime[f"{name}_p90_ms"] = st.p90_ms
    limit = ctx.cfg.latency_ms * (1 + ctx.cfg.tolerance)
    m = ctx.measurement
    return {
        "predicted_ms": predicted, "measured_ms": measured, "measured": per_runtime,
        "runtime": ctx.profile.runtime, "threads": ctx.profile.threads, "runs": ctx.cfg.measure_runs,
        "prediction_error": (predicted - measured) / measured, "within_budget": measured <= limit,
        # measured_ms is an estimate when the device could not be reached: say how it was made
        "measured_on": m.get("measured_on", "device"), "emulation": m.get("emulation"),
        "skipped": m.get("skipped", {}), "calibration": m.get("calibration"),
        "predictor": ctx.predictor.to_json() if ctx.predictor else None,
    }  # fmt: skip


def _table_json(ctx: Context) -> dict[str, Any]:
    """Which latency numbers the run used: the block table, or a model's own layer table."""
    if ctx.table is None or ctx.predictor is None:
        layers = getattr(ctx.cost, "to_json", None)
        copy_path = ctx.rd.write_json("layer_table.json", layers()) if layers else None
        return {"kind": "layers", "copy": str(copy_path) if copy_path else None}
    table_copy = ctx.rd.write_json("table.json", ctx.table.to_json())
    return {
        "kind": "blocks", "path": str(ctx.table.path), "copy": str(table_copy),
        "sha256": ctx.table.sha256(), "entries": len(ctx.table.entries),
        "measured_on_demand": ctx.predictor.measured_on_demand,
    }  # fmt: skip


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
    limit = member.budget_ms * (1 + ctx.cfg.tolerance)
    doc: dict[str, Any] = {"name": p.name, "runtime": p.runtime, "threads": p.threads,
                           "budget_ms": member.budget_ms,
                           "predicted_ms": member.predictor.predict_keys(keys)}  # fmt: skip
    try:
        with get_runner(p) as runner:
            stat = runner.measure(artifacts[p.runtime], p.threads, *verify_counts(runs))
    except RunnerError as exc:  # out of reach: say so, judge by the prediction
        ok = doc["predicted_ms"] <= limit
        return {**doc, "measured_ms": None, "measured_on": "unreachable", "error": str(exc),
                "within_budget": ok}  # fmt: skip
    return {**doc, "measured_ms": stat.median_ms, "p90_ms": stat.p90_ms,
            "measured_on": "device", "within_budget": stat.median_ms <= limit}  # fmt: skip


def footprint(ctx: Context, model: nn.Module, artifacts: dict[str, Path]) -> Footprint:
    """Parameters (BN folded, as exported), the float32 .tflite file's size, the peak
    activation estimate from the block keys (unknown for a user's model, which has no keys)
    and the peak measured through ONNX Runtime."""
    keys = list(model.op_keys(ctx.data.input_shape[1:])) if hasattr(model, "op_keys") else []
    est = estimate(keys)
    params = est.params if keys else sum(p.numel() for p in model.parameters())
    measured = measure_peak_activations(artifacts["onnxruntime"])
    return Footprint(
        params, artifacts["litert"].stat().st_size, est.activation_bytes if keys else None, measured
    )


def _limits_json(ctx: Context, results: dict[str, Any]) -> dict[str, Any]:
    fp: Footprint = results["footprint"]
    return {"limits": ctx.cfg.limits.to_json(), "footprint": fp.to_json(),
            "violations": ctx.cfg.limits.violations(fp)}  # fmt: skip


def build_manifest(ctx: Context, results: dict[str, Any]) -> Manifest:
    """Assemble ``manifest.json`` from the stage results and write it atomically."""
    cfg, data, rd = ctx.cfg, ctx.data, ctx.rd
    doc = {
        "edgeauto_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": cfg.to_json(),
        "device": {"name": ctx.profile.name, "runtime": ctx.profile.runtime, "threads": ctx.profile.threads,
                   "connection": ctx.profile.connection.kind,
                   "measured_on": ctx.measurement.get("measured_on", "device"),
                   "cpu": ctx.measurement.get("cpu") or (ctx.table.provenance.cpu_model if ctx.table else None)},
        "budget": {"latency_ms": cfg.latency_ms, "tolerance": cfg.tolerance,
                   **_limits_json(ctx, results)},
        "dataset": {"name": data.name, "input_shape": list(data.input_shape), "classes": data.classes,
                    "train": len(data.x_train), "val": len(data.x_val), "seed": cfg.seed},
        "space": ctx.space.name if ctx.space else None,
        "arch": results["arch"].to_json() if results.get("arch") else None,
        "model": results.get("model"),
        "search": results.get("search"),
        "pruning": results["plan"].to_json(),
        "accuracy": results["accuracy"],
        "latency": _latency_json(ctx, results["predicted_ms"], results["stats"]),
        "parity": results["parity"],
        "devices": results.get("devices") or [],
        "analysis": results.get("analysis"),
        "artifacts": {name: {"path": str(p), "sha256": sha256_file(p)} for name, p in results["files"].items()},
        "table": _table_json(ctx),
        "versions": _versions(),
    }  # fmt: skip
    path = rd.write_json("manifest.json", doc)
    return Manifest(doc, path)


def _write_extras(ctx: Context) -> dict[str, Path]:
    """labels.txt, preprocess.json and infer.py: the artifacts work without this package."""
    return write_bundle(ctx.rd.root, ctx.data)


def run(
    config: RunConfig | None = None, reporter: Reporter | None = None, **overrides: Any
) -> Manifest:
    """Search, compress, export and verify one model; returns the written :class:`Manifest`.

    Example:
        >>> m = edgeauto.run(device="host", latency_ms=0.2, dataset="digits", space="fbnet-micro")
        >>> m.accuracy, m.predicted_ms, m.measured_ms
    """
    cfg = dataclasses.replace(config or RunConfig(), **overrides)
    try:
        ctx = setup(cfg, reporter or NullReporter())
        arch = search_stage(ctx)
        torch.manual_seed(cfg.seed)  # same initial weights whether or not the search ran now
        return compress_and_verify(ctx, build_model(ctx, arch), cfg.epochs, arch=arch)
    finally:
        release(cfg.out)  # the run directory is free for the next run of this process


def analysis_stage(ctx: Context, model: nn.Module) -> dict[str, Any]:
    """Every evaluated arch timed on the device (the Pareto chart) and the final model's
    per-block breakdown, predicted vs measured alone; recorded, so a resume skips it."""
    if done := ctx.resumed("analysis"):
        return done
    out: dict[str, Any] = {"pareto": [], "breakdown": []}
    journal = TrialJournal(ctx.rd)
    if ctx.space is not None and journal.path.exists():
        trials = sorted(journal.load().values(), key=lambda t: t.number)
        timer = ctx.whole_timer if ctx.measurement.get("measured_on") == "device" else None
        with ctx.reporter.task("timing every evaluated arch", 1):
            points = pareto_points(trials, ctx.space, ctx.data.input_shape, timer)
        out["pareto"] = points_json(points)
    if ctx.table is not None and ctx.predictor is not None and hasattr(model, "op_keys"):
        keys = list(model.op_keys(ctx.data.input_shape[1:]))
        out["breakdown"] = breakdown(keys, ctx.table, ctx.predictor.calibration)
    ctx.rd.record("analysis", out)
    return out


def compress_and_verify(
    ctx: Context, model: nn.Module, train_epochs: int, arch: Arch | None = None,
    source: str | None = None,
) -> Manifest:  # fmt: skip
    """Train (``train_epochs``; 0 keeps given weights), prune to the budget, fine-tune, export,
    verify, and write the manifest and report. Shared by ``run`` and ``compress``."""
    cfg = ctx.cfg
    acc_trained = train_stage(ctx, model, "train", train_epochs)
    model, plan = prune_stage(ctx, model)
    scratch = scratch_stage(ctx, model) if cfg.scratch_baseline and plan.ops else None
    acc = train_stage(ctx, model, "finetune", cfg.finetune_epochs if plan.ops else 0)
    artifacts, parity = export_stage(ctx, model)
    stats = measure_stage(ctx, model, artifacts)
    devices = devices_stage(ctx, model, artifacts)
    files = {"onnx": artifacts["onnxruntime"], "tflite": artifacts["litert"], **_write_extras(ctx)}
    if "litert_int8" in artifacts:
        files["tflite_int8"] = artifacts["litert_int8"]
    files["checkpoint"] = ctx.rd.path("checkpoints/finetune.pt")
    results = {
        "arch": arch, "model": source, "plan": plan, "parity": parity, "stats": stats,
        "files": files, "search": ctx.rd.stages().get("search"),
        "accuracy": {"val": acc, "val_before_pruning": acc_trained, "val_scratch": scratch},
        "predicted_ms": ctx.own_latency(model),
        "analysis": analysis_stage(ctx, model),
        "footprint": footprint(ctx, model, artifacts), "devices": devices,
    }  # fmt: skip
    manifest = build_manifest(ctx, results)
    kill_point("manifest")
    write_report(ctx.rd.path("report.md"), manifest)
    return manifest
