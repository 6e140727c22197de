"""The context a job's stages share, built once: device profile, budget, data, space,
latency model and timers (closed in one place, :meth:`Context.close`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from edgeauto.budget import Budget
from edgeauto.compress import CRITERIA, PRUNERS
from edgeauto.config import RunConfig
from edgeauto.data import Dataset
from edgeauto.devices.profile import DeviceProfile, load_profile
from edgeauto.errors import ConfigError
from edgeauto.jobs.reference import open_reference
from edgeauto.latency.builder import BlockTimer, check_precision
from edgeauto.latency.calibration.fresh import FreshCalibration, measure_calibration
from edgeauto.latency.device import open_table
from edgeauto.latency.model import LatencyModel
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.latency.table import LatencyTable
from edgeauto.latency.worst_case import Member, WorstCasePredictor
from edgeauto.progress import Reporter
from edgeauto.rundir import CONFIG_FILE, RunDir
from edgeauto.search import STRATEGIES
from edgeauto.spaces import SearchSpace, get_space
from edgeauto.timing import Reference

INHERITED = "checkpoints/inherited.pt"  # supernet weights of the searched arch (dnas)


@dataclass
class Context:
    """State shared by the stages of one run."""

    cfg: RunConfig
    rd: RunDir
    reporter: Reporter
    profile: DeviceProfile
    data: Dataset
    space: SearchSpace | None = None
    table: LatencyTable | None = None
    predictor: MeasuringPredictor | None = None
    # A user's own model has no block keys: it is costed layer by layer (jobs/compress.py)
    cost: Callable[[nn.Module], float] | None = None
    timer: BlockTimer | None = None
    # How the final artifact was measured (measure_stage): on the device or emulated, the
    # CPU the runner reported, the emulation's fit, the calibration history
    measurement: dict[str, Any] = dataclasses.field(default_factory=dict)
    # --one-model: every device's budget at once, in this device's ms (latency/worst_case.py)
    worst: WorstCasePredictor | None = None
    # The model every whole-model timing of the run is taken beside (jobs/reference.py):
    # set by the fresh calibration, else by prune_stage
    reference: Reference | None = None

    @property
    def latency(self) -> LatencyModel:
        """What search and pruning aim with: this device's predictor, or the worst case."""
        assert self.predictor is not None  # set whenever a space is searched
        return self.worst or self.predictor

    def own_latency(self, model: nn.Module) -> float:
        """This device's own prediction (ms), whatever the search aimed with."""
        if self.cost is not None or self.predictor is None:
            return self.latency_of(model)
        return self.predictor.predict(model.op_keys(self.data.input_shape[1:]))

    def latency_of(self, model: nn.Module) -> float:
        """Predicted latency (ms): the block table for searched nets, else ``cost``."""
        if self.cost is not None:
            return self.cost(model)
        return self.latency.predict(model.op_keys(self.data.input_shape[1:]))

    @property
    def whole_timer(self) -> BlockTimer | None:
        """The timer that can measure a whole model on the device, if any."""
        return self.timer or (self.predictor.timer if self.predictor else None)

    @property
    def deployed(self) -> str:
        """The artifact the verdict measures on this device (:func:`deployed_artifact`)."""
        return deployed_artifact(self.profile, self.cfg.precision)

    @property
    def budget(self) -> Budget:
        """The run's budget (latency, tolerance, headroom, bands, limits)."""
        return self.cfg.budget

    def resumed(self, stage: str) -> dict[str, Any] | None:
        """The record of ``stage`` when resuming and it finished, else None."""
        return self.rd.stages().get(stage) if self.cfg.resume else None

    def timers(self) -> list[BlockTimer]:
        """Every timer the context opened (this device's, each ``--one-model`` device's)."""
        found = [self.timer, self.predictor.timer if self.predictor else None]
        found += [m.predictor.timer for m in self.worst.members] if self.worst else []
        unique = {id(t): t for t in found if t is not None}
        return list(unique.values())

    def close(self) -> None:
        """Close the timers the context opened; safe to call twice."""
        for timer in self.timers():
            timer.close()


def deployed_artifact(profile: DeviceProfile, precision: str) -> str:
    """The artifact a device runs at ``precision``: its runtime's (``model.tflite`` or
    ``model.onnx``), or ``litert_int8`` (``model_int8.tflite``) for int8."""
    return "litert_int8" if precision == "int8" else profile.runtime


def check_cost_model(profile: DeviceProfile, cfg: RunConfig) -> None:
    """The budget given is the one the device is costed by: milliseconds for a ``latency``
    device, ReLUs (``--relu-budget``) for a ``relu-count`` one."""
    if profile.cost_model != "latency" and cfg.relu_budget is None:
        raise ConfigError(
            f"device {profile.name} is costed by ReLU count, not latency; give --relu-budget N "
            "instead of --latency-ms"
        )
    if profile.cost_model == "latency" and cfg.relu_budget is not None:
        raise ConfigError(
            f"--relu-budget needs a device costed by ReLU count (cost_model: relu-count), and "
            f"{profile.name} is costed by latency; drop --relu-budget or use --device pi-relu"
        )


def setup(cfg: RunConfig, reporter: Reporter, profile: DeviceProfile | None = None) -> Context:
    """Validate inputs in the order a user would fix them, then open data, space and table.

    ``profile`` is the device's, when the caller loaded it already (else loaded here, once).
    """
    # unknown names fail fast, before any data is loaded or block measured
    STRATEGIES.get(cfg.strategy), PRUNERS.get(cfg.allocation), CRITERIA.get(cfg.criterion)
    profile = profile or load_profile(cfg.device)
    check_cost_model(profile, cfg)
    check_precision(profile, cfg.precision)  # before the run directory and data are touched
    rd, data, space = open_run(cfg)
    root = Path(cfg.tables) if cfg.tables else None
    table, predictor = open_table(profile, space, reporter, root, cfg.precision)
    ctx = Context(cfg, rd, reporter, profile, data, space, table, predictor)
    if cfg.also:
        first = Member(profile, cfg.latency_ms, predictor)
        ctx.worst = WorstCasePredictor([first, *_members(cfg, space, reporter, root)])
    return ctx


def open_run(cfg: RunConfig) -> tuple[RunDir, Dataset, SearchSpace]:
    """Lock and start the run directory (checking a resumed config), record the config, load
    data and space."""
    rd = RunDir(cfg.out)
    rd.start(cfg.resume, cfg.to_json())
    # recorded first, so that ``--resume DIR`` finds it even if the table build is killed
    rd.write_json(CONFIG_FILE, cfg.to_json())
    data = cfg.data_spec.load()
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
        _table, predictor = open_table(profile, space, reporter, root, cfg.precision)
        members.append(Member(profile, budget, predictor))
    return members


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
    calibration factor from whole networks timed now (:mod:`edgeauto.latency.calibration.fresh`); a
    resumed run reuses the recorded factor, so that it predicts as the interrupted one did."""
    predictor, name = member.predictor, member.profile.name
    if ctx.cfg.calibration != "fresh" or predictor.timer is None or ctx.space is None:
        return
    recorded = (ctx.resumed("calibrate") or {}).get(name)
    if recorded is not None:
        fresh = FreshCalibration.from_json(recorded)
    else:  # a few seconds, without a progress line: any input error must stay one line
        fresh = measure_calibration(
            predictor, ctx.space, ctx.data.input_shape, member.budget_ms, ctx.cfg.seed,
            _reference(ctx, member),
        )  # fmt: skip
        done = ctx.rd.stages().get("calibrate", {})
        ctx.rd.record("calibrate", {**done, name: fresh.to_json()})
    predictor.recalibrate(fresh.factor, "fresh")


def _reference(ctx: Context, member: Member) -> Callable[[nn.Module], Reference] | None:
    """What makes the run's reference from the calibration network nearest the budget (and
    keeps it in ``ctx``): the run's own device only (``--one-model`` times several: None)."""
    timer = member.predictor.timer
    if ctx.worst is not None or member.predictor is not ctx.predictor or timer is None:
        return None

    def make(net: nn.Module) -> Reference:
        shape, resume = ctx.data.input_shape, ctx.cfg.resume
        ctx.reference = open_reference(ctx.rd, timer, net, shape, resume)
        return ctx.reference

    return make
