"""The ``edgeauto`` command: thin. Parses, builds a config, calls the pipeline, maps errors.

Exit codes: 0 ok, 2 bad input (any :class:`EdgeAutoError`), 3 measured latency over budget.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgeauto.errors import ConfigError, EdgeAutoError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
devices_app = typer.Typer(help="List and show device profiles.", invoke_without_command=True)
app.add_typer(devices_app, name="devices")
out = Console()
err = Console(stderr=True)


def _fail(exc: EdgeAutoError) -> None:
    err.print(f"error: {type(exc).__name__}: {exc}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _latency(value: str) -> float:
    """Parse ``--latency-ms`` here so a non-number gets our one-line error, not Click's."""
    try:
        ms = float(value)
    except ValueError:
        raise ConfigError(
            f"latency_ms must be a positive number of milliseconds, got {value!r}; fix --latency-ms"
        ) from None
    if not ms > 0 or ms == float("inf"):
        raise ConfigError(
            f"latency_ms must be a positive number of milliseconds, got {value!r}; fix --latency-ms"
        )
    return ms


@app.command()
def run(
    device: Annotated[
        str, typer.Option(help="Device profile name or path to a profile YAML.")
    ] = "host",
    latency_ms: Annotated[
        str, typer.Option("--latency-ms", help="Latency budget in ms (batch 1).")
    ] = "0.5",
    dataset: Annotated[
        str, typer.Option(help="mnist5k, digits, npz:PATH or folder:PATH.")
    ] = "mnist5k",
    out_dir: Annotated[str, typer.Option("--out", help="Run directory.")] = "runs/default",
    seed: Annotated[int, typer.Option(help="Seed for split, search and training.")] = 0,
    epochs: Annotated[int, typer.Option(help="Epochs of final training.")] = 5,
    space: Annotated[str, typer.Option(help="Search space name.")] = "fbnet-lite",
    strategy: Annotated[str, typer.Option(help="Search strategy name.")] = "random",
    pruner: Annotated[str, typer.Option(help="Pruning criterion name.")] = "l1",
    trials: Annotated[int, typer.Option(help="Architectures trained during search.")] = 6,
    tolerance: Annotated[
        float, typer.Option(help="Allowed overshoot of the measured latency.")
    ] = 0.10,
    tables: Annotated[
        str | None, typer.Option(help="Latency tables folder (default hw_latency/).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Reuse finished stages of --out.")] = False,
) -> None:
    """Search, compress, export (ONNX, TFLite) and verify a model for DEVICE within a budget."""
    from edgeauto.config import RunConfig
    from edgeauto.pipeline import run as run_pipeline
    from edgeauto.progress import RichReporter

    try:
        cfg = RunConfig(
            device=device, latency_ms=_latency(latency_ms), dataset=dataset, out=out_dir, seed=seed,
            epochs=epochs, space=space, strategy=strategy, pruner=pruner, trials=trials,
            tolerance=tolerance, tables=tables, resume=resume,
        )  # fmt: skip
        manifest = run_pipeline(cfg, RichReporter())
    except EdgeAutoError as exc:
        _fail(exc)
    _summary(manifest)
    if not manifest.within_budget:
        err.print(
            f"[bold red]over budget:[/] measured {manifest.measured_ms:.4f} ms > "
            f"{manifest.budget_ms:g} ms + {cfg.tolerance:.0%}", highlight=False,
        )  # fmt: skip
        raise typer.Exit(3)


def _summary(manifest) -> None:
    lat = manifest["latency"]
    t = Table(title=f"edgeauto run: {manifest.device}", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("validation accuracy", f"{manifest.accuracy:.4f}")
    t.add_row("budget (ms)", f"{manifest.budget_ms:g}")
    t.add_row(f"predicted {lat['runtime']} (ms)", f"{manifest.predicted_ms:.4f}")
    for key, value in lat["measured"].items():
        if not key.endswith("_p90_ms"):
            t.add_row(f"measured {key[:-3]} (ms)", f"{value:.4f}")
    t.add_row("within budget", "yes" if manifest.within_budget else "NO")
    out.print(t)
    out.print(f"run directory: {manifest.path.parent}")
    for name in ("onnx", "tflite"):
        out.print(f"  {name}: {manifest.artifact(name)}")
    out.print(f"  report: {manifest.path.parent / 'report.md'}")


@devices_app.callback()
def devices(ctx: typer.Context) -> None:
    """List device profiles: name, runtime, threads, connection, and whether a table exists."""
    if ctx.invoked_subcommand:
        return
    from edgeauto.devices.profile import list_profiles, load_profile
    from edgeauto.latency.store import has_table

    t = Table("name", "runtime", "threads", "connection", "has table")
    try:
        for name in list_profiles():
            p = load_profile(name)
            t.add_row(
                name, p.runtime, str(p.threads), p.connection.kind, "yes" if has_table(p) else "no"
            )
    except EdgeAutoError as exc:
        _fail(exc)
    out.print(t)


@devices_app.command("show")
def devices_show(name: Annotated[str, typer.Argument(help="Profile name or YAML path.")]) -> None:
    """Print one device profile (with ``auto`` fields resolved)."""
    import yaml

    from edgeauto.devices.profile import load_profile

    try:
        p = load_profile(name)
    except EdgeAutoError as exc:
        _fail(exc)
    typer.echo(
        yaml.safe_dump(p.model_dump(mode="json", exclude={"source"}), sort_keys=False), nl=False
    )
    typer.echo(f"# source: {p.source}")


@app.command()
def profile(
    device: Annotated[str, typer.Option(help="Device profile name or YAML path.")] = "host",
    space: Annotated[str, typer.Option(help="Search space to profile.")] = "fbnet-lite",
    dataset: Annotated[
        str, typer.Option(help="Dataset whose input shape to profile for.")
    ] = "mnist5k",
    input_shape: Annotated[
        str | None, typer.Option(help="C,H,W instead of a dataset's shape.")
    ] = None,
    classes: Annotated[int, typer.Option(help="Class count with --input-shape.")] = 10,
    tables: Annotated[
        str | None, typer.Option(help="Latency tables folder (default hw_latency/).")
    ] = None,
) -> None:
    """Time every block of SPACE with the device's real runtime; write or extend its table."""
    from edgeauto.devices.profile import load_profile
    from edgeauto.pipeline import open_table
    from edgeauto.progress import RichReporter
    from edgeauto.spaces import get_space

    try:
        prof = load_profile(device)
        shape, n = _shape(input_shape, classes, dataset)
        sp = get_space(space, shape, n)
        table, _ = open_table(prof, sp, RichReporter(), Path(tables) if tables else None)
    except EdgeAutoError as exc:
        _fail(exc)
    out.print(f"{len(table.entries)} entries, overhead {table.overhead_ms():.4f} ms: {table.path}")


def _shape(input_shape: str | None, classes: int, dataset: str) -> tuple[tuple[int, int, int], int]:
    from edgeauto.data import dataset_shape

    if input_shape is None:
        return dataset_shape(dataset)
    try:
        c, h, w = (int(v) for v in input_shape.split(","))
    except ValueError:
        raise ConfigError(
            f"input_shape must be C,H,W (three integers), got {input_shape!r}; fix --input-shape"
        ) from None
    return (c, h, w), classes


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; re-run with --resume to continue")
        sys.exit(130)


if __name__ == "__main__":
    main()
