"""``edgeauto run``: search, compress, export and verify a model for a device."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from edgeauto.budget import HEADROOM
from edgeauto.cli.common import (
    Allocation,
    Augment,
    BudgetTerm,
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
    out,
    parse_latency,
    run_config,
)
from edgeauto.cli.render import over_budget, summary
from edgeauto.errors import ConfigError, EdgeAutoError, OverBudget

if TYPE_CHECKING:
    from edgeauto.config import RunConfig


_Device = Annotated[
    list[str] | None,
    typer.Option(help="Device profile name or YAML path; repeat for one model per device."),
]
_LatencyMs = Annotated[
    list[str] | None,
    typer.Option("--latency-ms", help="Budget in ms (batch 1); one, or one per --device."),
]
_Dataset = Annotated[str, typer.Option(help="mnist5k, digits, npz:PATH or folder:PATH.")]
_Seed = Annotated[int, typer.Option(help="Seed for split, search and training.")]
_Epochs = Annotated[int, typer.Option(help="Epochs of final training.")]
_Space = Annotated[str, typer.Option(help="Search space name.")]
_Strategy = Annotated[
    str,
    typer.Option(
        help="Search strategy: capacity (the most parameters the budget allows), random, "
        "evolution, smbo, dnas, noisy."
    ),
]
_Mode = Annotated[
    str,
    typer.Option(
        help="search-then-compress (search up to --search-headroom x the budget, prune "
        "onto it) or joint (widths searched at the budget)."
    ),
]
_SearchHeadroom = Annotated[
    float,
    typer.Option(
        help="search-then-compress: the search may pick archs up to this factor over the "
        "budget, pruning closes the gap (1.0: at the budget; see README, real task)."
    ),
]
_Calibration = Annotated[
    str,
    typer.Option(
        help="fresh (time whole networks near the budget now, on a local device) or "
        "history (earlier runs' verified artifacts)."
    ),
]
_Trials = Annotated[int, typer.Option(help="Architectures trained during search.")]
_WarmStart = Annotated[
    bool, typer.Option(help="smbo: rank the first archs by zero-cost scores (TE-NAS).")
]
_Beam = Annotated[int, typer.Option(help="smbo: archs trained per step (0: auto).")]
_InheritWeights = Annotated[
    bool, typer.Option(help="dnas: train from the supernet's weights, not from scratch.")
]
_OneModel = Annotated[
    bool,
    typer.Option(help="With several --device: one model meeting every device's budget."),
]
_ReluBudget = Annotated[
    int | None,
    typer.Option(help="Private inference (--device pi-relu): ReLUs per inference, at most."),
]


#: Options a config field comes from, where not the field's own name (see given_fields).
_OPTIONS = {"out": ("out_dir",), "also": ("one_model", "device")}


def run(
    ctx: typer.Context,
    device: _Device = None,
    latency_ms: _LatencyMs = None,
    dataset: _Dataset = "mnist5k",
    out_dir: OutDir = "runs/default",
    seed: _Seed = 0,
    epochs: _Epochs = 5,
    finetune_epochs: FinetuneEpochs = 2,
    space: _Space = "fbnet-lite",
    strategy: _Strategy = "capacity",
    mode: _Mode = "search-then-compress",
    search_headroom: _SearchHeadroom = HEADROOM,
    calibration: _Calibration = "fresh",
    criterion: Criterion = "l1",
    allocation: Allocation = "netadapt",
    max_params: MaxParams = None,
    max_size_kb: MaxSizeKb = None,
    max_activation_kb: MaxActivationKb = None,
    int8: Int8 = True,
    precision: Precision = "fp32",
    scratch_baseline: ScratchBaseline = False,
    trials: _Trials = 3,
    warm_start: _WarmStart = False,
    beam: _Beam = 0,
    tolerance: Tolerance = 0.10,
    tables: Tables = None,
    resume: Resume = None,
    inherit_weights: _InheritWeights = False,
    budget_term: BudgetTerm = "hinge",
    one_model: _OneModel = False,
    relu_budget: _ReluBudget = None,
    val_fraction: ValFraction = 0.1,
    test_fraction: TestFraction = 0.1,
    test_dataset: TestDataset = None,
    cache: Cache = True,
    augment: Augment = None,
    optimizer: Optimizer = "adamw",
    label_smoothing: LabelSmoothing = 0.0,
    train_device: TrainDevice = "cpu",
) -> None:
    """Search, compress, export (ONNX, TFLite) and verify a model for DEVICE within a budget."""
    from edgeauto.jobs.run import run as run_job
    from edgeauto.progress import RichReporter

    try:
        pairs = _device_budgets(device or ["host"], latency_ms or ["0.5"])
        fields = dict(
            device=pairs[0][0], latency_ms=pairs[0][1], dataset=dataset, out=out_dir, seed=seed,
            epochs=epochs, finetune_epochs=finetune_epochs, space=space, strategy=strategy,
            criterion=criterion, trials=trials,
            allocation=allocation, scratch_baseline=scratch_baseline, int8=int8,
            precision=precision,
            max_params=max_params, max_size_kb=max_size_kb, max_activation_kb=max_activation_kb,
            mode=mode, search_headroom=search_headroom, calibration=calibration,
            warm_start=warm_start, beam=beam, tolerance=tolerance, tables=tables,
            inherit_weights=inherit_weights, budget_term=budget_term,
            also=tuple(pairs[1:]) if one_model else (), relu_budget=relu_budget,
            val_fraction=val_fraction, test_fraction=test_fraction, test_dataset=test_dataset,
            cache=cache, augment=augment, optimizer=optimizer, label_smoothing=label_smoothing,
            train_device=train_device,
        )  # fmt: skip
        cfg = run_config(ctx, fields, resume, _OPTIONS)
        if cfg.relu_budget is not None:  # the job checks the device counts ReLUs
            return _run_private(cfg)
        if len(pairs) > 1 and not one_model:
            return _run_per_device(cfg, pairs, resume)
        manifest = run_job(cfg, RichReporter())
    except OverBudget as exc:
        over_budget(exc)
    except EdgeAutoError as exc:
        fail(exc)
    summary(manifest)


def _run_private(cfg: RunConfig) -> None:
    """``--device pi-relu --relu-budget N``: search, train, SNL, export; the counts."""
    from edgeauto.jobs.private import run_private
    from edgeauto.progress import RichReporter

    r = run_private(cfg, RichReporter())
    out.print(f"ReLUs {r['relus_before']:,} -> {r['relus_after']:,} (budget {r['budget']:,})")
    out.print(f"accuracy {r['trained_accuracy']:.4f} trained -> {r['accuracy']:.4f} linearized")
    out.print(f"cost on {r['device']}: {r['cost']:,.1f} ReLU-equivalents ({r['macs']:,} MACs)")
    out.print(f"run directory: {cfg.out}\n  onnx: {r['onnx']}\n  tflite: {r['tflite']}")


def _device_budgets(devices: list[str], budgets: list[str]) -> list[tuple[str, float]]:
    """Pair each --device with its --latency-ms (one budget may serve every device)."""
    if len(budgets) not in (1, len(devices)):
        raise ConfigError(
            f"got {len(devices)} --device and {len(budgets)} --latency-ms; give one budget for "
            "all devices or one per device, in the same order"
        )
    if len(set(devices)) != len(devices):
        raise ConfigError(f"--device names a device twice: {', '.join(devices)}; name each once")
    values = [parse_latency(b) for b in budgets] * (len(devices) if len(budgets) == 1 else 1)
    return list(zip(devices, values))


def _run_per_device(cfg: RunConfig, pairs: list[tuple[str, float]], resume: str | None) -> None:
    """One search-and-compress per device, each in ``<out>/<device>``; exit 3 if any is over."""
    from edgeauto.jobs.run import run_each
    from edgeauto.progress import RichReporter

    if resume is not None:  # each device's directory is a run of its own, with its config
        raise ConfigError(
            f"--resume {resume} continues one run, and {len(pairs)} --device start one each; "
            "resume each device's directory (<out>/<device>) on its own, without --device"
        )
    runs = run_each(cfg, pairs, RichReporter())
    for done in runs:
        out.print(f"[bold]== {done.device}: {done.budget_ms:g} ms ==[/]")
        for reason in done.reasons:
            err.print(f"[bold red]{reason}[/]", highlight=False)
        summary(done.manifest)
    if any(done.reasons for done in runs):
        err.print("[bold red]over budget on at least one device[/] (see the summaries above)")
        raise typer.Exit(3)
