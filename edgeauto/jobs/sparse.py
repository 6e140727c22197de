"""``edgeauto compress --method NAME --sparsity S``: unstructured sparse training in place of
structured pruning, then the same export, parity, measurement and manifest as ``compress``.

The dense ``model.tflite`` is what ships and is verified against the budget. A second file,
``model_sparse.tflite``, stores the pruned tensors in TFLite's sparse format; it is checked
for parity and timed beside the dense one, and the manifest says whether sparsity bought any
latency (on XNNPACK hosts it buys size, not speed: LiteRT densifies the weights at load).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeauto.compress import PruningPlan
from edgeauto.devices.profile import load_profile
from edgeauto.export.parity import check_parity
from edgeauto.export.runtimes import get_runtime
from edgeauto.export.tflite import export_tflite
from edgeauto.fileio import atomic_path
from edgeauto.jobs.context import Context
from edgeauto.jobs.measure import verify_counts
from edgeauto.jobs.tail import finish
from edgeauto.latency.runners.local import LocalRunner
from edgeauto.manifest import Manifest
from edgeauto.spaces.base import Arch
from edgeauto.sparse.base import SparseConfig, get_sparse_method
from edgeauto.sparse.masks import Masks
from edgeauto.timing import LatencyStat
from edgeauto.train import accuracy

CHECKPOINT, MASKS = "checkpoints/finetune.pt", "checkpoints/masks.pt"


def sparse_config(ctx: Context) -> SparseConfig:
    """The run's sparse training settings: ``epochs`` of training, IMP retrains with
    ``finetune_epochs`` per round (at least 1)."""
    cfg = ctx.cfg
    return SparseConfig(sparsity=cfg.sparsity, epochs=cfg.epochs, seed=cfg.seed,
                        retrain_epochs=max(1, cfg.finetune_epochs),
                        rewind_epoch=min(1, cfg.epochs - 1))  # fmt: skip


def sparse_stage(ctx: Context, model: nn.Module) -> dict[str, Any]:
    """Train ``model`` sparse in place (or reload it on resume); the method's record."""
    if (done := ctx.resumed("sparse")) and ctx.rd.path(CHECKPOINT).exists():
        model.load_state_dict(torch.load(ctx.rd.path(CHECKPOINT), weights_only=True))
        Masks.load(ctx.rd.path(MASKS), model).apply(model)
        return done
    method = get_sparse_method(str(ctx.cfg.sparse_method), sparse_config(ctx))
    with ctx.reporter.task(f"sparse training ({method.name}, {ctx.cfg.sparsity:.0%})", 1) as task:
        result = method.run(model, ctx.data)
        task.update(1, 1)
    result.masks.save(ctx.rd.path(MASKS))
    with atomic_path(ctx.rd.path(CHECKPOINT)) as tmp:
        torch.save(model.state_dict(), tmp)
    record = result.to_json() | {"accuracy": accuracy(model, ctx.data.x_val, ctx.data.y_val)}
    ctx.rd.record("sparse", record)
    return record


def sparse_artifact(ctx: Context, model: nn.Module, dense_ms: float | None) -> dict[str, Any]:
    """``model_sparse.tflite``: parity-checked, timed with LiteRT, compared with the dense."""
    litert = get_runtime("litert")
    path = export_tflite(ctx.rd.path("model.onnx"), ctx.rd.path("model_sparse.tflite"), sparse=True)
    parity = check_parity(model, litert, path, ctx.data.x_val[: ctx.cfg.parity_samples])
    runs, threads = ctx.cfg.measure_runs, ctx.profile.threads
    # this machine's runner: pinned to the host profile's cores, unsteady figures re-taken
    with LocalRunner(load_profile("host")) as runner:
        dense, sparse = runner.measure_all(
            [ctx.rd.path("model.tflite"), path], threads, *verify_counts(runs)
        )
    ratio = sparse.median_ms / dense.median_ms
    # XNNPACK densifies sparse weights at load (no gain), but TFLite's own sparse
    # fully-connected kernel runs very sparse layers faster; within 10% is timing noise
    faster = ratio < 0.9
    note = (f"sparse file timed {ratio:.2f}x the dense one: deploy model_sparse.tflite" if faster
            else f"no latency gain ({ratio:.2f}x): LiteRT densifies these sparse weights at "
            "load; the sparse file only saves size")  # fmt: skip
    return {"path": str(path), "size_bytes": path.stat().st_size,
            "dense_size_bytes": ctx.rd.path("model.tflite").stat().st_size,
            "litert_ms": sparse.median_ms, "dense_litert_ms": dense.median_ms,
            "device_dense_ms": dense_ms, "parity": dataclasses.asdict(parity), "note": note,
            "recommended": "model_sparse.tflite" if faster else "model.tflite"}  # fmt: skip


def sparse_and_verify(
    ctx: Context, model: nn.Module, arch: Arch | None = None, source: str | None = None
) -> Manifest:
    """Sparse training, then the shared tail (``compress --method``), with the sparse
    ``.tflite`` timed beside the dense one."""
    record = sparse_stage(ctx, model)
    acc = float(record["accuracy"])

    def sparse_file(stats: dict[str, LatencyStat]) -> tuple[dict[str, Path], dict[str, Any]]:
        litert = stats.get("litert")
        export = sparse_artifact(ctx, model, litert.median_ms if litert else None)
        files = {"tflite_sparse": ctx.rd.path("model_sparse.tflite")}
        return files, {"sparsity": {**record, "export": export}}

    plan = PruningPlan(str(ctx.cfg.sparse_method), ctx.cfg.latency_ms, "none", status="skipped",
                       message="unstructured sparsity: structured pruning skipped")  # fmt: skip
    results = {
        "arch": arch, "model": source, "plan": plan, "search": None,
        "files": {"checkpoint": ctx.rd.path(CHECKPOINT), "masks": ctx.rd.path(MASKS)},
        "accuracy": {"val": acc, "val_before_pruning": acc},  # no structured pruning ran
    }  # fmt: skip
    return finish(ctx, model, results, sparse_file)
