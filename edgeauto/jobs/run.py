"""``run(config) -> Manifest``: search, compress, export and verify one model.

device -> table -> search -> train -> prune to budget -> fine-tune -> export -> parity ->
measure -> manifest + report. Finished stages are recorded in ``stages.json``; with
``resume`` (True, or the run directory) they are loaded from the run directory instead of
recomputed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeauto.config import RunConfig, job_config
from edgeauto.counting import count_macs
from edgeauto.devices.profile import DeviceProfile, load_profile
from edgeauto.errors import OverBudget
from edgeauto.jobs.context import Context, setup
from edgeauto.jobs.stages import build_model, prune_stage, scratch_stage, search_stage, train_stage
from edgeauto.jobs.tail import finish
from edgeauto.manifest import Manifest
from edgeauto.progress import NullReporter, Reporter
from edgeauto.rundir import release
from edgeauto.spaces.base import Arch


def run(
    config: RunConfig | None = None,
    reporter: Reporter | None = None,
    *,
    check: bool = True,
    **overrides: Any,
) -> Manifest:
    """Search, compress, export and verify one model; returns the written :class:`Manifest`.

    Raises :class:`edgeauto.OverBudget` (its ``manifest`` written) when the final model fails
    its budget on the device, unless ``check=False`` (then the manifest is returned and
    ``manifest.within_budget`` says so); another :class:`edgeauto.EdgeAutoError` on bad input.

    ``resume=RUN_DIR`` continues the run recorded in ``RUN_DIR`` (its ``config.json``): the
    other keywords may be left out, and one that differs from the record is refused.
    ``resume=True`` resumes ``out`` with every setting given again.

    Example:
        >>> m = edgeauto.run(device="host", latency_ms=0.2, dataset="digits", space="fbnet-micro")
        >>> m.accuracy, m.predicted_ms, m.measured_ms
        >>> m = edgeauto.run(resume="runs/default")  # after a crash or Ctrl-C
    """
    cfg = job_config(config, overrides, RunConfig())
    try:
        return _run(cfg, reporter or NullReporter())
    except OverBudget as exc:
        if check:
            raise
        return exc.manifest  # a job's OverBudget carries the written manifest


def _run(cfg: RunConfig, reporter: Reporter, profile: DeviceProfile | None = None) -> Manifest:
    """:func:`run` on a run directory this process locks and frees."""
    try:
        ctx = setup(cfg, reporter, profile)
        try:
            arch = search_stage(ctx)
            torch.manual_seed(cfg.seed)  # same initial weights whether or not the search ran
            return compress_and_verify(ctx, build_model(ctx, arch), cfg.epochs, arch=arch)
        finally:
            ctx.close()
    finally:
        release(cfg.out)  # the run directory is free for the next run of this process


@dataclass(frozen=True)
class DeviceRun:
    """One device's model of :func:`run_each`: its manifest and, when over budget, why."""

    device: str
    budget_ms: float
    manifest: Manifest
    reasons: list[str]


def run_each(
    config: RunConfig, devices: list[tuple[str, float]], reporter: Reporter | None = None
) -> list[DeviceRun]:
    """One model per ``(device, latency_ms)``, each searched and compressed for its device in
    ``<out>/<device>``; a device over its budget does not stop the others (its reasons say
    why). Every profile is loaded first, so that a bad name fails before any work."""
    reporter = reporter or NullReporter()
    profiles = [load_profile(device) for device, _ in devices]
    done = []
    for (device, budget), profile in zip(devices, profiles):
        reporter.log(f"== {profile.name}: {budget:g} ms ==")
        cfg = dataclasses.replace(
            config, device=device, latency_ms=budget, out=str(Path(config.out) / profile.name)
        )
        try:
            manifest, reasons = _run(cfg, reporter, profile), []
        except OverBudget as exc:
            manifest, reasons = exc.manifest, exc.reasons
        done.append(DeviceRun(profile.name, budget, manifest, reasons))
    return done


def compress_and_verify(
    ctx: Context, model: nn.Module, train_epochs: int, arch: Arch | None = None,
    source: str | None = None,
) -> Manifest:  # fmt: skip
    """Train (``train_epochs``; 0 keeps given weights), prune to the budget, fine-tune, export,
    verify, and write the manifest and report. Shared by ``run`` and ``compress``."""
    cfg = ctx.cfg
    acc_trained = train_stage(ctx, model, "train", train_epochs)
    unpruned_macs = count_macs(model, ctx.data.input_shape)  # Scratch-B's training budget
    model, plan = prune_stage(ctx, model)
    scratch = scratch_stage(ctx, model, unpruned_macs) if cfg.scratch_baseline and plan.ops else {}
    acc = train_stage(ctx, model, "finetune", cfg.finetune_epochs if plan.ops else 0)
    results = {
        "arch": arch, "model": source, "plan": plan, "search": ctx.rd.stages().get("search"),
        "files": {"checkpoint": ctx.rd.path("checkpoints/finetune.pt")},
        "accuracy": {"val": acc, "val_before_pruning": acc_trained,
                     "val_scratch": scratch.get("scratch"),  # Scratch-E: the same epochs
                     "val_scratch_b": scratch.get("scratch_b")},  # the same training FLOPs
    }  # fmt: skip
    return finish(ctx, model, results)
