"""``edgeauto linearize``: train a user model, linearize it to a ReLU budget, export, check.

The run directory gets ``model.onnx``, ``model.tflite`` and ``result.json`` (ReLU counts,
MACs, cost on the device, accuracy, parity of both artifacts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.fileio import write_json
from edgeauto.linearize.snl import SNLConfig, count_macs, linearize, relu_cost
from edgeauto.train import TrainConfig, accuracy, fit


@dataclass(frozen=True)
class LinearizeJob:
    """What ``edgeauto linearize`` was asked: model spec, budget, device, data, output."""

    model: str
    relu_budget: int
    device: str = "pi-relu"
    dataset: str = "mnist5k"
    out: str = "runs/linearize"
    epochs: int = 3
    snl: SNLConfig = field(default_factory=SNLConfig)
    seed: int = 0


def run_linearize(job: LinearizeJob) -> dict[str, Any]:
    """Train, linearize, export ONNX + TFLite, check parity; returns what ``result.json`` holds."""
    from edgeauto.data import load_dataset
    from edgeauto.devices.profile import load_profile
    from edgeauto.jobs.compress import load_user_model

    if job.relu_budget < 0:
        raise ConfigError(
            f"relu_budget must be >= 0 ReLUs, got {job.relu_budget}; fix --relu-budget"
        )
    profile = load_profile(job.device)
    if profile.cost_model != "relu-count":
        raise ConfigError(
            f"device {profile.name} is costed by latency, not ReLUs; use --device pi-relu or a "
            "profile with cost_model: relu-count"
        )
    data = load_dataset(job.dataset, seed=job.seed)
    model = load_user_model(job.model, data)
    fit(model, data, TrainConfig(epochs=job.epochs), seed=job.seed)
    trained_acc = accuracy(model, data.x_val, data.y_val)
    result = linearize(model, data, job.relu_budget, job.snl, job.seed)
    report = asdict(result) | {"trained_accuracy": trained_acc, "device": profile.name}
    report |= {"macs": count_macs(model, data.input_shape)}
    report |= {"cost": relu_cost(model, data.input_shape, profile.flop_weight)}
    report |= export_checked(model, data, Path(job.out), profile.threads)
    write_json(Path(job.out) / "result.json", report)
    return report


def export_checked(model: nn.Module, data: Dataset, out: Path, threads: int) -> dict[str, Any]:
    """ONNX and TFLite files, each checked against PyTorch on 32 validation images."""
    from edgeauto.export.parity import export_checked as export_all

    out.mkdir(parents=True, exist_ok=True)
    artifacts, checks = export_all(model, data.x_val[:32], out, threads)
    parity = {
        rt: {"max_abs_diff": p.max_abs_diff, "top1_agreement": p.top1_agreement}
        for rt, p in checks.items()
    }
    return {"onnx": str(artifacts["onnxruntime"]), "tflite": str(artifacts["litert"]),
            "parity": parity}  # fmt: skip
