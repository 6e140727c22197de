"""``edgeauto linearize``: SNL on your model to a ReLU budget (private inference).

Registered on the main app in :mod:`edgeauto.cli`. Errors are one line, exit code 2.
"""

from __future__ import annotations

from typing import Annotated

import typer

from edgeauto.cli.common import fail, out
from edgeauto.errors import EdgeAutoError


def linearize_command(
    model: Annotated[str, typer.Option(help="Your model: module:function or file.py:function.")],
    relu_budget: Annotated[int, typer.Option(help="ReLUs per inference to keep at most.")],
    device: Annotated[str, typer.Option(help="A profile with cost_model: relu-count.")] = "pi-relu",
    dataset: Annotated[
        str, typer.Option(help="mnist5k, digits, npz:PATH or folder:PATH.")
    ] = "mnist5k",
    out_dir: Annotated[str, typer.Option("--out", help="Run directory.")] = "runs/linearize",
    epochs: Annotated[int, typer.Option(help="Training epochs before linearizing.")] = 3,
    finetune_epochs: Annotated[int, typer.Option(help="Fine-tuning epochs after.")] = 4,
    per_pixel: Annotated[bool, typer.Option(help="One mask per pixel, not per channel.")] = False,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Train MODEL, keep at most RELU_BUDGET ReLUs (SNL masks), fine-tune, export and check."""
    from edgeauto.jobs.linearize import LinearizeJob, run_linearize
    from edgeauto.linearize.snl import SNLConfig

    snl = SNLConfig(per_pixel=per_pixel, finetune_epochs=finetune_epochs)
    job = LinearizeJob(model, relu_budget, device, dataset, out_dir, epochs, snl, seed)
    try:
        r = run_linearize(job)
    except EdgeAutoError as exc:
        fail(exc)
    out.print(f"ReLUs {r['relus_before']} -> {r['relus_after']} (budget {r['budget']})")
    out.print(f"accuracy {r['trained_accuracy']:.4f} trained -> {r['accuracy']:.4f} linearized")
    out.print(f"cost on {r['device']}: {r['cost']:.1f} ReLU-equivalents ({r['macs']} MACs)")
    out.print(f"onnx: {r['onnx']}\ntflite: {r['tflite']}")
