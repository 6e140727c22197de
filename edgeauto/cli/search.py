"""``edgeauto search``: a resumable search study, in this process or on Ray.

Registered on the main app in :mod:`edgeauto.cli`. Errors are one line, exit code 2. Study
settings default to ``None`` so that ``--resume RUN_DIR`` can tell a flag that was given (and
must match the run) from one that was not (taken from the run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from edgeauto.cli.common import (
    BUDGET_TERM_HELP,
    OutDir,
    PrecisionOrRecorded,
    Tables,
    fail,
    out,
    parse_latency,
)
from edgeauto.errors import EdgeAutoError

_Device = Annotated[str | None, typer.Option(help="Device profile name or YAML path.")]
_LatencyMs = Annotated[
    str | None, typer.Option("--latency-ms", help="Latency budget in ms (batch 1).")
]
_Dataset = Annotated[str | None, typer.Option(help="mnist5k, digits, npz:, folder:.")]
_Space = Annotated[str | None, typer.Option(help="Search space name.")]
_Strategy = Annotated[
    str | None, typer.Option(help="smbo (default), random, evolution, noisy, dnas.")
]
_Trials = Annotated[int | None, typer.Option(help="Architectures to train (default 20).")]
_Seed = Annotated[int | None, typer.Option(help="Seed of the strategy and of training.")]
_SearchEpochs = Annotated[int | None, typer.Option(help="Proxy-training epochs.")]
_SearchBatches = Annotated[int | None, typer.Option(help="Batches per epoch (cap).")]
_WarmStart = Annotated[
    bool | None, typer.Option(help="smbo: rank the first archs by zero-cost scores (TE-NAS).")
]
_Beam = Annotated[int | None, typer.Option(help="smbo: archs trained per step (0: auto).")]
_BudgetTerm = Annotated[str | None, typer.Option(help=BUDGET_TERM_HELP)]
_Resume = Annotated[
    str | None, typer.Option(help="Continue the search run in RUN_DIR (after a crash).")
]
_Executor = Annotated[
    str | None, typer.Option(help="inprocess or ray (implied by --workers/--ray-address).")
]
_Workers = Annotated[
    int | None, typer.Option(help="Trials in flight on Ray (local cluster: its CPUs).")
]
_RayAddress = Annotated[
    str | None, typer.Option(help="Join a Ray cluster: auto or HOST:PORT (the head's).")
]
_CpusPerTrial = Annotated[int, typer.Option(help="CPUs (torch threads) per trial.")]
_TrialTimeout = Annotated[
    float | None, typer.Option(help="Ray: fail a trial after this many seconds.")
]
_ConnectTimeout = Annotated[
    float, typer.Option(help="Ray: seconds to wait for the cluster to answer.")
]


def search_command(
    device: _Device = None,
    latency_ms: _LatencyMs = None,
    dataset: _Dataset = None,
    space: _Space = None,
    strategy: _Strategy = None,
    trials: _Trials = None,
    seed: _Seed = None,
    search_epochs: _SearchEpochs = None,
    search_batches: _SearchBatches = None,
    warm_start: _WarmStart = None,
    beam: _Beam = None,
    budget_term: _BudgetTerm = None,
    tables: Tables = None,
    precision: PrecisionOrRecorded = None,
    out_dir: OutDir = "runs/search",
    resume: _Resume = None,
    executor: _Executor = None,
    workers: _Workers = None,
    ray_address: _RayAddress = None,
    cpus_per_trial: _CpusPerTrial = 1,
    trial_timeout: _TrialTimeout = None,
    connect_timeout: _ConnectTimeout = 30.0,
) -> None:
    """Search SPACE for the most accurate arch within a latency budget on DEVICE; resumable."""
    from edgeauto.jobs.search import search
    from edgeauto.progress import RichReporter

    study = {
        "device": device, "dataset": dataset, "space": space, "strategy": strategy,
        "trials": trials, "seed": seed, "search_epochs": search_epochs,
        "search_batches": search_batches, "warm_start": warm_start, "beam": beam, "tables": tables,
        "budget_term": budget_term,
        "precision": precision,
    }  # fmt: skip
    try:
        if latency_ms is not None:
            study["latency_ms"] = parse_latency(latency_ms)
        if not resume:
            study["out"] = out_dir
        summary = search(
            resume=resume, executor=executor, workers=workers, ray_address=ray_address,
            cpus_per_trial=cpus_per_trial, trial_timeout_s=trial_timeout,
            connect_timeout_s=connect_timeout, reporter=RichReporter(), **study,
        )  # fmt: skip
    except EdgeAutoError as exc:
        fail(exc)
    _print_summary(summary, str(Path(resume).expanduser()) if resume else out_dir)


def _print_summary(summary: dict[str, Any], run_dir: str) -> None:
    best = summary["best"]
    t = Table(title="edgeauto search", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("best accuracy (proxy)", f"{best['accuracy']:.4f}")
    t.add_row("predicted latency (ms)", f"{best['predicted_ms']:.4f}")
    t.add_row("trials (failed)", f"{summary['trials']} ({summary['failed']})")
    t.add_row("executor", f"{summary['executor']['kind']} x{summary['executor']['slots']}")
    if zc := summary.get("zero_cost_spearman"):
        t.add_row(
            "zero-cost vs accuracy (Spearman)",
            f"NTK {zc['ntk_cond']:+.2f}, regions {zc['linear_regions']:+.2f}",
        )
    out.print(t)
    out.print(f"best arch: {best['arch']}")
    out.print(f"run directory: {run_dir} (trials.jsonl, search.json)")
