"""``edgeauto compress``: prune your model (or a run's) to a budget on a device."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeauto.cli.common import (
    Allocation,
    Augment,
    Cache,
    Criterion,
    FinetuneEpochs,
    Int8,
    LabelSmoothing,
    MaxActivationKb,
    MaxParams,
    MaxSizeKb,
    Optimizer,
    OutDir,
    Precision,
    Resume,
    ScratchBaseline,
    Tables,
    TestDataset,
    TestFraction,
    Tolerance,
    TrainDevice,
    ValFraction,
    err,
    fail,
    parse_latency,
    run_config,
)
from edgeauto.cli.render import over_budget, summary
from edgeauto.errors import EdgeAutoError, OverBudget
from edgeauto.manifest import Manifest

_Model = Annotated[
    str | None, typer.Option(help="Your model: module:function or file.py:function.")
]
_FromRun = Annotated[
    str | None, typer.Option("--from", help="Or the --out directory of an edgeauto run.")
]
_Weights = Annotated[
    str | None, typer.Option(help="state_dict file (torch.save) for --model or --from.")
]
_Device = Annotated[str, typer.Option(help="Device profile name or YAML path.")]
_LatencyMs = Annotated[str, typer.Option("--latency-ms", help="Budget in ms (batch 1).")]
_Dataset = Annotated[
    str, typer.Option(help="Data for fine-tuning and criteria (--from: the run's).")
]
_Method = Annotated[
    str | None,
    typer.Option(
        help="Unstructured sparse training instead of pruning: imp, lottery, snip, rigl, static, "
        "ctre, colt, gibbs, gibbs-filter, hessian, hessian-spectral, activation."
    ),
]
_Sparsity = Annotated[float, typer.Option(help="Fraction of weights at zero (with --method).")]
_Epochs = Annotated[int, typer.Option(help="Training epochs when no --weights.")]
_Seed = Annotated[int, typer.Option(help="Seed.")]


#: Options a config field comes from, where not the field's own name (see given_fields).
_OPTIONS = {"out": ("out_dir",), "sparse_method": ("method",)}


def compress(
    ctx: typer.Context,
    model: _Model = None,
    from_run: _FromRun = None,
    weights: _Weights = None,
    device: _Device = "host",
    latency_ms: _LatencyMs = "0.5",
    dataset: _Dataset = "mnist5k",
    out_dir: OutDir = "runs/compress",
    criterion: Criterion = "l1",
    allocation: Allocation = "netadapt",
    method: _Method = None,
    sparsity: _Sparsity = 0.9,
    int8: Int8 = True,
    precision: Precision = "fp32",
    scratch_baseline: ScratchBaseline = False,
    epochs: _Epochs = 5,
    finetune_epochs: FinetuneEpochs = 2,
    seed: _Seed = 0,
    tolerance: Tolerance = 0.10,
    max_params: MaxParams = None,
    max_size_kb: MaxSizeKb = None,
    max_activation_kb: MaxActivationKb = None,
    tables: Tables = None,
    resume: Resume = None,
    val_fraction: ValFraction = 0.1,
    test_fraction: TestFraction = 0.1,
    test_dataset: TestDataset = None,
    cache: Cache = True,
    augment: Augment = None,
    optimizer: Optimizer = "adamw",
    label_smoothing: LabelSmoothing = 0.0,
    train_device: TrainDevice = "cpu",
) -> None:
    """Prune an existing model to a latency budget on DEVICE, then export and verify it."""
    from edgeauto.jobs.compress import compress as compress_model
    from edgeauto.progress import RichReporter

    try:
        fields = dict(
            device=device, latency_ms=parse_latency(latency_ms), dataset=dataset, out=out_dir,
            seed=seed, epochs=epochs, finetune_epochs=finetune_epochs, criterion=criterion,
            allocation=allocation, scratch_baseline=scratch_baseline, int8=int8, tolerance=tolerance,
            precision=precision,
            tables=tables, model=model, from_run=from_run, weights=weights,
            sparse_method=method, sparsity=sparsity, max_params=max_params,
            max_size_kb=max_size_kb, max_activation_kb=max_activation_kb,
            val_fraction=val_fraction, test_fraction=test_fraction, test_dataset=test_dataset,
            cache=cache, augment=augment, optimizer=optimizer, label_smoothing=label_smoothing,
            train_device=train_device,
        )  # fmt: skip
        cfg = run_config(ctx, fields, resume, _OPTIONS)
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
