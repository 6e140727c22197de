"""The stages before export: search, train, prune to the budget, the scratch baseline and
the analysis of what the search evaluated. Each records itself in ``stages.json`` and is
reloaded from it on resume."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeauto.compress import PRUNERS, PruneConfig, PruneProblem, PruningPlan
from edgeauto.compress.landing import MAX_ATTEMPTS, prune_measured
from edgeauto.compress.scratch import reinitialize, scratch_b_epochs
from edgeauto.counting import count_macs
from edgeauto.errors import ConfigError, RunDirError
from edgeauto.export.quantize import calibration_set
from edgeauto.fileio import atomic_path
from edgeauto.jobs.context import INHERITED, Context, calibrate_devices
from edgeauto.jobs.reference import open_reference
from edgeauto.jobs.search import make_strategy, run_trials, study_objective
from edgeauto.killpoints import kill_point
from edgeauto.latency.model import LatencyModel
from edgeauto.report.pareto import breakdown, pareto_points, points_json
from edgeauto.rundir import EPOCH_SUFFIX
from edgeauto.search import STRATEGIES, SearchProblem
from edgeauto.search.executors import InProcessExecutor
from edgeauto.search.objective import TrainObjective, preload
from edgeauto.search.study import TrialJournal
from edgeauto.spaces.base import Arch
from edgeauto.train import EpochCheckpoint, TrainConfig, accuracy, fit


def search_stage(
    ctx: Context, aim: LatencyModel | None = None, budget: float | None = None
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
    preload(cfg.data_spec, cfg.seed, ctx.data)  # the objective finds the loaded data here
    objective = study_objective(cfg)
    problem = _search_problem(ctx, objective, aim, budget)
    if cfg.inherit_weights and not hasattr(STRATEGIES.get(cfg.strategy), "weights_for"):
        raise ConfigError(
            f"--inherit-weights needs a strategy that trains a supernet (dnas), not "
            f"{cfg.strategy}; drop the flag or use --strategy dnas"
        )
    TrialJournal(ctx.rd).load()  # a damaged journal fails here, before the progress bar
    if aim is None:  # after the checks of the inputs (a bad one costs no timing), before
        calibrate_devices(ctx)  # the budget's feasibility, which is judged calibrated
        problem.check_feasible(cfg.latency_ms)
    strategy = make_strategy(cfg, problem)
    title = f"search ({cfg.strategy}, {cfg.trials} trials)"
    cpu0, wall0 = time.process_time(), time.perf_counter()
    best = run_trials(strategy, InProcessExecutor(objective), ctx.rd, ctx.reporter, title).best
    # what the search cost this process (all its threads): the benchmarks compare it with
    # one final training; Ray workers' time is not in it
    cost = {"cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0}
    ctx.rd.record(
        "search",
        {"arch": best.arch.to_json(), "accuracy": best.accuracy, "predicted_ms": best.predicted_ms,
         **cost, **_search_extras(ctx, strategy, best.arch)},
    )  # fmt: skip
    return best.arch


def _search_problem(
    ctx: Context, objective: TrainObjective, aim: LatencyModel | None, budget: float | None
) -> SearchProblem:
    """The run's search: its space, latency model and budget (``aim``/``budget`` when the
    device is costed otherwise), the proxy training as the evaluator, the other limits."""
    cfg, bands = ctx.cfg, ctx.budget

    def evaluate(arch: Arch) -> float:
        return objective(arch, cfg.seed)["accuracy"]

    return SearchProblem(
        ctx.space, aim or ctx.latency, budget or bands.search_ms, evaluate,
        trials=cfg.trials, seed=cfg.seed, device=ctx.profile.name, profile=ctx.profile,
        data=ctx.data, limits=cfg.limits if cfg.limits.any else None,
        floor_ms=bands.floor_ms if aim is None else 0.0,
    )  # fmt: skip


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
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if epochs > 0:
        total = epochs * -(-len(ctx.data.x_train) // TrainConfig.batch_size)
        # every epoch is checkpointed: a killed run resumes at its last finished epoch
        epoch_ckpt = EpochCheckpoint(
            ctx.rd.path(f"checkpoints/{stage}{EPOCH_SUFFIX}"),
            lambda _epoch: kill_point(f"{stage}_epoch"),
        )
        with ctx.reporter.task(f"{stage} ({epochs} epochs)", total) as task:
            fit(
                model, ctx.data, ctx.cfg.train_config(epochs), ctx.cfg.seed, task.update, epoch_ckpt
            )
    acc = accuracy(model, ctx.data.x_val, ctx.data.y_val)
    with atomic_path(ckpt) as tmp:
        torch.save(model.state_dict(), tmp)
    cost = {"epochs": epochs, "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - wall0}  # fmt: skip
    ctx.rd.record(stage, {"accuracy": acc, **cost})
    ctx.rd.path(f"checkpoints/{stage}{EPOCH_SUFFIX}").unlink(missing_ok=True)
    return acc


def prune_stage(ctx: Context, model: nn.Module) -> tuple[nn.Module, PruningPlan]:
    """Prune a copy of ``model`` until it meets the budget; the pruned model and its plan.

    On a device this machine can time, the unpruned model is measured whole first and the
    predicted cost rescaled to it, so pruning aims at the measured latency (a little under the
    budget: :attr:`edgeauto.budget.Budget.landing`); the pruned model is measured, and
    a miss either way re-aims pruning (:func:`edgeauto.compress.landing.prune_measured`).
    A remote device is pruned on the calibrated prediction alone. With ``precision="int8"``
    the timer's table and measurements are int8 (:func:`_measure_whole`).
    """
    shape = ctx.data.input_shape
    timer = ctx.whole_timer
    if timer and ctx.reference is None and ctx.worst is None:  # none from the calibration
        args = (ctx.data.input_shape, ctx.cfg.resume, _int8_inputs(ctx))
        ctx.reference = open_reference(ctx.rd, timer, model, *args)
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
    attempts = [0]
    with ctx.reporter.task(title, MAX_ATTEMPTS) as task:
        model, plan = prune_measured(
            pruner, model, problem, measure, lambda n: _pruned(task, attempts, n), ctx.budget
        )
        task.update(attempts[0], attempts[0])  # landed early: the bar ends full, not at 1/4
    ctx.rd.record("prune", {"plan": plan.to_json()})
    kill_point("prune")
    return model, plan


def _pruned(task: Any, attempts: list[int], attempt: int) -> None:
    attempts[0] = attempt
    task.update(attempt, MAX_ATTEMPTS)
    kill_point("prune_step")


def scratch_stage(ctx: Context, model: nn.Module, unpruned_macs: int) -> dict[str, float]:
    """Liu et al.'s baselines, the pruned architecture trained from fresh weights: Scratch-E
    with the epochs the unpruned model got (train + fine-tune), Scratch-B with those epochs
    scaled to the unpruned model's training FLOPs (:func:`scratch_b_epochs`). Their
    validation accuracies, as ``{"scratch": Scratch-E, "scratch_b": Scratch-B}``."""
    epochs = ctx.cfg.epochs + ctx.cfg.finetune_epochs
    acc_e = _from_scratch(ctx, model, "scratch", epochs)
    pruned_macs = count_macs(model, ctx.data.input_shape)
    epochs_b = scratch_b_epochs(epochs, unpruned_macs, pruned_macs)
    if epochs_b == epochs:  # no MACs saved: Scratch-B is Scratch-E, same seed, same epochs
        return {"scratch": acc_e, "scratch_b": acc_e}
    return {"scratch": acc_e, "scratch_b": _from_scratch(ctx, model, "scratch_b", epochs_b)}


_SCRATCH_LABELS = {"scratch": "Scratch-E", "scratch_b": "Scratch-B"}


def _from_scratch(ctx: Context, model: nn.Module, stage: str, epochs: int) -> float:
    """Train a re-initialised copy of ``model`` for ``epochs``; its validation accuracy."""
    if done := ctx.resumed(stage):
        return float(done["accuracy"])
    fresh = reinitialize(copy.deepcopy(model), ctx.cfg.seed)
    total = epochs * -(-len(ctx.data.x_train) // TrainConfig.batch_size)
    with ctx.reporter.task(f"{_SCRATCH_LABELS[stage]} baseline ({epochs} epochs)", total) as task:
        fit(fresh, ctx.data, ctx.cfg.train_config(epochs), ctx.cfg.seed, task.update)
    acc = accuracy(fresh, ctx.data.x_val, ctx.data.y_val)
    ctx.rd.record(stage, {"accuracy": acc, "epochs": epochs})
    return acc


def _measure_whole(ctx: Context, model: nn.Module) -> float | None:
    """Measured latency of the whole model where the device is local, else None. With
    ``--one-model``, the worst measured-over-budget ratio in this device's ms (a device that
    cannot time here counts with its prediction). The timers convert at the run's precision:
    int8 models are calibrated on the inputs ``model_int8.tflite`` will be (export_stage)."""
    timer, shape, inputs = ctx.whole_timer, ctx.data.input_shape, _int8_inputs(ctx)
    if ctx.worst is None:
        if timer is None:
            return None
        if (ref := ctx.reference) is not None:  # beside the reference: free of the drift
            return timer.time_beside([model], shape, ref.path, inputs)[0].at(ref.ms).median_ms
        return timer.time_module(model, shape, inputs).median_ms
    keys = list(model.op_keys(shape[1:]))
    ratios = []
    for m in ctx.worst.members:
        t = m.predictor.timer
        ms = t.time_module(model, shape, inputs).median_ms if t else None
        ratios.append((ms if ms is not None else m.predictor.predict(keys)) / m.budget_ms)
    return ctx.worst.unit * max(ratios)


def _int8_inputs(ctx: Context) -> np.ndarray | None:
    """The calibration set of the deployed int8 model (None for fp32): the scales pruning's
    measurements are converted with, so the timed model is the one that ships."""
    if ctx.cfg.precision != "int8":
        return None
    return calibration_set(ctx.data.x_train, seed=ctx.cfg.seed)


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
