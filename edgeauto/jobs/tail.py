"""The tail every job shares: export -> parity -> measure or emulate -> verdict -> manifest ->
report (:func:`finish`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from edgeauto.bundle import write_bundle
from edgeauto.bundle.sample import write_sample
from edgeauto.counting import count_params
from edgeauto.errors import OverBudget
from edgeauto.export.memory import measure_peak_activations
from edgeauto.fileio import sha256_file
from edgeauto.jobs.context import Context
from edgeauto.jobs.measure import devices_stage, export_stage, measure_stage
from edgeauto.jobs.stages import analysis_stage
from edgeauto.killpoints import kill_point
from edgeauto.limits import Footprint, estimate
from edgeauto.manifest import Manifest
from edgeauto.report import write_report
from edgeauto.timing import LatencyStat
from edgeauto.train import accuracy_on_test
from edgeauto.version import __version__


def footprint(ctx: Context, model: nn.Module, artifacts: dict[str, Path]) -> Footprint:
    """Parameters (BN folded, as exported), the float32 .tflite file's size, the peak
    activation estimate from the block keys (unknown for a user's model, which has no keys)
    and the peak measured through ONNX Runtime."""
    keys = list(model.op_keys(ctx.data.input_shape[1:])) if hasattr(model, "op_keys") else []
    est = estimate(keys)
    params = est.params if keys else count_params(model)
    measured = measure_peak_activations(artifacts["onnxruntime"])
    return Footprint(
        params, artifacts["litert"].stat().st_size, est.activation_bytes if keys else None, measured
    )


def _limits_json(ctx: Context, results: dict[str, Any]) -> dict[str, Any]:
    fp: Footprint = results["footprint"]
    return {"limits": ctx.cfg.limits.to_json(), "footprint": fp.to_json(),
            "violations": ctx.cfg.limits.violations(fp)}  # fmt: skip


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
    """Predicted vs measured; ``measured_ms`` (the verdict's) is the deployed artifact's:
    ``precision`` says which, ``artifact`` names it in ``measured``."""
    measured = stats[ctx.deployed].median_ms
    per_runtime: dict[str, float] = {}
    for name, st in stats.items():
        per_runtime[f"{name}_ms"] = st.median_ms
        per_runtime[f"{name}_p90_ms"] = st.p90_ms
    m = ctx.measurement
    return {
        "predicted_ms": predicted, "measured_ms": measured, "measured": per_runtime,
        "runtime": ctx.profile.runtime, "threads": ctx.profile.threads, "runs": ctx.cfg.measure_runs,
        "precision": ctx.cfg.precision, "artifact": ctx.deployed,
        "prediction_error": (predicted - measured) / measured, "within_budget": ctx.budget.within(measured),
        # measured_ms is an estimate when the device could not be reached: say how it was made
        "measured_on": m.get("measured_on", "device"), "emulation": m.get("emulation"),
        "skipped": m.get("skipped", {}), "calibration": m.get("calibration"),
        # how far the fresh sessions' medians spread: a figure is only as good as this
        "repeatability": {n: st.repeatability for n, st in stats.items()},
        "unrepeatable": m.get("unrepeatable", {}), "cpu_affinity": m.get("cores"),
        # the deployed artifact timed beside the run's reference: measured_ms is in its frame
        "reference": m.get("reference"),
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
        # an imported table converted from its source's runtime (edgeauto.latency.conversion)
        "conversion": ctx.table.provenance.conversion or None,
    }  # fmt: skip


def build_manifest(
    ctx: Context, results: dict[str, Any], sections: dict[str, Any] | None = None
) -> Manifest:
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
        "budget": {**ctx.budget.to_json(), **_limits_json(ctx, results)},
        "dataset": {"name": data.name, "input_shape": list(data.input_shape), "classes": data.classes,
                    "train": len(data.x_train), "val": len(data.x_val),
                    "test": len(data.x_test) if data.x_test is not None else 0, "seed": cfg.seed,
                    "test_dataset": cfg.test_dataset, "mean": list(data.mean), "std": list(data.std)},
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
        **(sections or {}),
    }  # fmt: skip
    path = rd.write_json("manifest.json", doc)
    return Manifest(doc, path)


def accuracies(accuracy: dict[str, Any], parity: dict[str, Any]) -> dict[str, Any]:
    """The job's accuracies plus, when int8 was exported, both LiteRT models' on the whole
    validation split: ``fp32`` (``model.tflite``) and ``int8`` (``model_int8.tflite``)."""
    q = parity.get("litert_int8")
    return {**accuracy, "fp32": q["fp32_acc"], "int8": q["int8_acc"]} if q else accuracy


def bundle_files(ctx: Context, artifacts: dict[str, Path]) -> dict[str, Path]:
    """The files a user deploys: ONNX, TFLite (and int8), plus labels.txt, preprocess.json,
    infer.py, so that the artifacts work without this package, and sample.npz (a few
    validation images with the host's answers, which ``edgeauto deploy`` checks a board by)."""
    files = {"onnx": artifacts["onnxruntime"], "tflite": artifacts["litert"]}
    files |= write_bundle(ctx.rd.root, ctx.data)
    if "litert_int8" in artifacts:
        files["tflite_int8"] = artifacts["litert_int8"]
    models = [files[k] for k in ("tflite", "tflite_int8", "onnx") if k in files]
    files["sample"] = write_sample(ctx.rd.root, ctx.data, models)
    return files


#: Adds to a job's tail, once the artifacts are measured: given the runtime stats, more files
#: for the manifest's ``artifacts`` and more manifest sections (``compress --method``'s sparse
#: file and its ``sparsity`` section).
Extras = Callable[[dict[str, LatencyStat]], tuple[dict[str, Path], dict[str, Any]]]


def finish(
    ctx: Context, model: nn.Module, results: dict[str, Any], extras: Extras | None = None
) -> Manifest:
    """The tail every job shares: export -> parity -> measure or emulate (and the other
    devices of ``--one-model``) -> manifest -> report -> verdict.

    ``results`` holds what the job's own stages found (``arch``, ``model``, ``plan``,
    ``accuracy``, ``search``, ``files``). Raises :class:`OverBudget`, carrying the written
    manifest, when the model fails its budget.
    """
    artifacts, parity = export_stage(ctx, model)
    stats = measure_stage(ctx, model, artifacts)
    devices = devices_stage(ctx, model, artifacts)
    files, sections = extras(stats) if extras else ({}, {})
    results = {
        **results, "parity": parity, "stats": stats, "devices": devices,
        "accuracy": {**accuracies(results["accuracy"], parity), "test": accuracy_on_test(model, ctx.data)},
        "files": {**bundle_files(ctx, artifacts), **results.get("files", {}), **files},
        "predicted_ms": ctx.own_latency(model), "analysis": analysis_stage(ctx, model),
        "footprint": footprint(ctx, model, artifacts),
    }  # fmt: skip
    manifest = build_manifest(ctx, results, sections)
    kill_point("manifest")
    write_report(ctx.rd.path("report.md"), manifest)
    lat, budget = manifest.data["latency"], manifest.data["budget"]
    reasons = ctx.budget.reasons(lat["measured_ms"], budget["violations"], devices)
    if reasons:
        raise OverBudget(reasons, manifest)
    return manifest
