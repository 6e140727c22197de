"""``edgeauto compress``: prune your model (or a run's) to a budget on a device."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeauto.cli.common import err, fail, parse_latency
from edgeauto.cli.render import over_budget, summary
from edgeauto.errors import EdgeAutoError, OverBudget
from edgeauto.manifest import Manifest


def compress(
    model: Annotated[
        str | None, typer.Option(help="Your model: module:function or file.py:function.")
    ] = None,
    from_run: Annotated[
        str | None, typer.Option("--from", help="Or the --out directory of an edgeauto run.")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="state_dict file (torch.save) for --model or --from.")
    ] = None,
    device: Annotated[str, typer.Option(help="Device profile name or YAML path.")] = "host",
    latency_ms: Annotated[
        str, typer.Option("--latency-ms", help="Budget in ms (batch 1).")
    ] = "0.5",
    dataset: Annotated[
        str, typer.Option(help="Data for fine-tuning and criteria (--from: the run's).")
    ] = "mnist5k",
    out_dir: Annotated[str, typer.Option("--out", help="Run directory.")] = "runs/compress",
    criterion: Annotated[
        str, typer.Option(help="l1, l2, taylor, taylor2, hessian, ispasp or random.")
    ] = "l1",
    allocation: Annotated[str, typer.Option(help="netadapt or uniform.")] = "netadapt",
    method: Annotated[
        str | None,
        typer.Option(
            help="Unstructured sparse training instead of pruning: imp, lottery, snip, rigl, static, "
            "ctre, colt, gibbs, gibbs-filter, hessian, activation."
        ),
    ] = None,
    sparsity: Annotated[
        float, typer.Option(help="Fraction of weights at zero (with --method).")
    ] = 0.9,
    int8: Annotated[
        bool, typer.Option(help="Also export a full-integer model_int8.tflite and check it.")
    ] = True,
    scratch_baseline: Annotated[
        bool, typer.Option(help="Also train the pruned architecture from scratch.")
    ] = False,
    epochs: Annotated[int, typer.Option(help="Training epochs when no --weights.")] = 5,
    finetune_epochs: Annotated[int, typer.Option(help="Fine-tuning epochs after pruning.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    tolerance: Annotated[float, typer.Option(help="Allowed measured overshoot.")] = 0.10,
    max_params: Annotated[
        int | None, typer.Option(help="Also cap the parameter count (checked on the result).")
    ] = None,
    max_size_kb: Annotated[
        float | None, typer.Option(help="Also cap the float32 .tflite file size (kB).")
    ] = None,
    max_activation_kb: Annotated[
        float | None, typer.Option(help="Also cap peak activation memory (kB, measured).")
    ] = None,
    tables: Annotated[str | None, typer.Option(help="Latency tables folder.")] = None,
    resume: Annotated[bool, typer.Option(help="Reuse finished stages of --out.")] = False,
) -> None:
    """Prune an existing model to a latency budget on DEVICE, then export and verify it."""
    from edgeauto.config import RunConfig
    from edgeauto.jobs.compress import compress as compress_model
    from edgeauto.progress import RichReporter

    try:
        cfg = RunConfig(
            device=device, latency_ms=parse_latency(latency_ms), dataset=dataset, out=out_dir,
            seed=seed, epochs=epochs, finetune_epochs=finetune_epochs, criterion=criterion,
            allocation=allocation, scratch_baseline=scratch_baseline, int8=int8, tolerance=tolerance,
            tables=tables, resume=resume, model=model, from_run=from_run, weights=weights,
            sparse_method=method, sparsity=sparsity, max_params=max_params,
            max_size_kb=max_size_kb, max_activation_kb=max_activation_kb,
        )  # fmt: skip
        manifest = compress_model(cfg, RichReporter())
    except OverBudget as exc:
        _pruning_note(exc.manifest)
        over_budget(exc)
    except EdgeAutoError as exc:
        fail(exc)
    _pruning_note(manifest)
    summary(manifest)


def _pruning_note(manifest: Manifest) -> None:
    """Pruning that had nothing to do, or could go no further, says so."""
    plan = manifest["pruning"]
    if plan.get("status") in ("already", "floor"):
        err.print(f"pruning: {plan['message']}", markup=False, highlight=False)
