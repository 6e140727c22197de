"""Check an exported artifact against PyTorch on real validation inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeauto.errors import ExportError
from edgeauto.export.runtimes import Runtime

MAX_ABS_DIFF = 1e-4


@dataclass(frozen=True)
class Parity:
    """Worst absolute difference and top-1 agreement over ``samples`` inputs."""

    runtime: str
    samples: int
    max_abs_diff: float
    top1_agreement: float


def check_parity(
    model: nn.Module, runtime: Runtime, artifact: Path, inputs: torch.Tensor, threads: int = 1
) -> Parity:
    """Run ``artifact`` on each input (batch 1) and compare with ``model``.

    Raises :class:`ExportError` when the max-abs difference exceeds ``1e-4`` or any top-1
    prediction differs.
    """
    session = runtime.load(artifact, threads)
    model.train(False)
    worst, agree = 0.0, 0
    with torch.no_grad():
        for x in inputs:
            ref = model(x[None]).numpy()
            out = session.run(x[None].numpy())
            worst = max(worst, float(np.abs(out - ref).max()))
            agree += int(out.argmax() == ref.argmax())
    parity = Parity(runtime.name, len(inputs), worst, agree / max(1, len(inputs)))
    if worst > MAX_ABS_DIFF or agree != len(inputs):
        raise ExportError(
            f"{artifact.name} ({runtime.name}) disagrees with PyTorch: max-abs difference "
            f"{worst:.3g} (limit {MAX_ABS_DIFF:g}), top-1 agreement {agree}/{len(inputs)}"
        )
    return parity


def export_checked(
    model: nn.Module,
    inputs: torch.Tensor,
    out_dir: Path,
    threads: int = 1,
    on_artifact: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Path], dict[str, Parity]]:
    """``model.onnx``, then every registered runtime's artifact beside it (``model.tflite``),
    each checked against ``model`` on ``inputs`` (:func:`check_parity`).

    ``on_artifact(done, total)`` is called after each runtime's artifact is checked.
    """
    from edgeauto.export.onnx import export_onnx
    from edgeauto.export.runtimes import RUNTIMES, get_runtime

    names = RUNTIMES.names()
    onnx_path = export_onnx(model, tuple(inputs.shape[1:]), out_dir / "model.onnx")
    artifacts: dict[str, Path] = {}
    parity: dict[str, Parity] = {}
    for i, name in enumerate(names, 1):
        rt = get_runtime(name)
        artifacts[name] = rt.from_onnx(onnx_path, out_dir / f"model{rt.suffix}")
        parity[name] = check_parity(model, rt, artifacts[name], inputs, threads)
        if on_artifact:
            on_artifact(i, len(names))
    return artifacts, parity
