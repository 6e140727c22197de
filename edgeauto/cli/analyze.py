"""``edgeauto analyze``: studies of the building blocks (``zero-cost``, ``sparsity-sweep``).

Registered on the main app in :mod:`edgeauto.cli`. Errors are one line, exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from edgeauto.cli.common import fail, out
from edgeauto.errors import ConfigError, EdgeAutoError

if TYPE_CHECKING:
    pass

analyze_app = typer.Typer(
    help="Analyses: zero-cost indicators vs accuracy; sparse double descent on your data."
)


@analyze_app.command("zero-cost")
def zero_cost(
    archs: Annotated[int, typer.Option(help="Archs sampled, scored and proxy-trained.")] = 50,
    dataset: Annotated[
        str, typer.Option(help="mnist5k, digits, npz:PATH or folder:PATH.")
    ] = "mnist5k",
    space: Annotated[str, typer.Option(help="Search space name.")] = "fbnet-lite",
    seed: Annotated[int, typer.Option(help="Seed of the sample, the inits and training.")] = 0,
    batches: Annotated[int, typer.Option(help="Proxy training: batches (one epoch).")] = 60,
    json_path: Annotated[
        str | None, typer.Option("--json", help="Also write results here.")
    ] = None,
) -> None:
    """Spearman of NTK condition, linear regions, GSNR and their combined rank vs accuracy."""
    from edgeauto.fileio import write_json
    from edgeauto.jobs.analyze import zero_cost as zero_cost_job

    try:
        result = zero_cost_job(dataset, space, archs, seed, batches)
    except EdgeAutoError as exc:
        fail(exc)
    table = Table("indicator", "spearman vs accuracy", title=f"{archs} archs of {result['space']}")
    for name, rho in result["spearman"].items():
        table.add_row(name, f"{rho:+.3f}")
    out.print(table)
    if json_path:
        write_json(Path(json_path), result)


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or not all(0.0 <= v < 1.0 for v in values):  # checked before any training
        raise ConfigError(
            f"sparsities must be comma-separated numbers in [0, 1), got {text!r}; fix --sparsities"
        )
    return values


@analyze_app.command("sparsity-sweep")
def sparsity_sweep_command(
    model: Annotated[
        str, typer.Option(help="mlp, cnn, or your model as module:function / file.py:function.")
    ] = "mlp",
    dataset: Annotated[
        str, typer.Option(help="mnist5k, digits, npz:PATH or folder:PATH.")
    ] = "mnist5k",
    sparsities: Annotated[
        str, typer.Option(help="Comma-separated sparsities in [0, 1).")
    ] = "0,0.5,0.8,0.9,0.95,0.98",
    method: Annotated[
        str, typer.Option(help="A sparse method (imp, snip, rigl, ctre, gibbs ...).")
    ] = "imp",
    epochs: Annotated[int, typer.Option(help="Training epochs per point.")] = 5,
    label_noise: Annotated[
        float, typer.Option(help="Fraction of training labels flipped (shows the descent).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the init, the noise and training.")] = 0,
    out_dir: Annotated[str, typer.Option("--out", help="Writes sweep.json and sweep.png.")] = (
        "runs/sparsity-sweep"
    ),
) -> None:
    """Accuracy and l2 learning distance across a sparsity grid (sparse double descent)."""
    from edgeauto.jobs.analyze import SweepJob, sparsity_sweep

    try:
        job = SweepJob(model, dataset, tuple(_floats(sparsities)), method, epochs, label_noise,
                       seed, out_dir)  # fmt: skip
        table = Table("sparsity", "val acc", "train acc", "||w - w0||", "train GFLOPs",
                      title=job.title)  # fmt: skip

        def row(p: Any) -> None:
            out.print(f"  {p.sparsity:.1%}: val {p.accuracy:.4f}, distance {p.distance:.2f}")
            table.add_row(f"{p.sparsity:.1%}", f"{p.accuracy:.4f}", f"{p.train_accuracy:.4f}",
                          f"{p.distance:.2f}", f"{p.train_flops / 1e9:.2f}")  # fmt: skip

        sparsity_sweep(job, row)
    except EdgeAutoError as exc:
        fail(exc)
    out.print(table)
    root = Path(out_dir)
    out.print(f"wrote {root / 'sweep.json'} and {root / 'sweep.png'}")
