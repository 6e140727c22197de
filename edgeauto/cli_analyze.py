"""``edgeauto analyze``: studies of the search's building blocks (``zero-cost`` for now).

Registered on the main app in :mod:`edgeauto.cli`. Errors are one line, exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgeauto.errors import ConfigError, EdgeAutoError

analyze_app = typer.Typer(help="Analyses: how well zero-cost indicators predict accuracy.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


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
    from edgeauto.data import load_dataset
    from edgeauto.fileio import write_json
    from edgeauto.search.teg import analyze_zero_cost
    from edgeauto.spaces import get_space
    from edgeauto.train import TrainConfig

    try:
        if batches < 1:
            raise ConfigError(f"batches must be >= 1, got {batches}; fix --batches")
        data = load_dataset(dataset, seed=seed)
        sp = get_space(space, data.input_shape, data.num_classes)
        cfg = TrainConfig(epochs=1, max_batches=batches)
        result = analyze_zero_cost(sp, data, archs, seed, cfg)
    except EdgeAutoError as exc:
        err.print(f"error: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        raise typer.Exit(exc.exit_code) from None
    table = Table("indicator", "spearman vs accuracy", title=f"{archs} archs of {sp.name}")
    for name, rho in result["spearman"].items():
        table.add_row(name, f"{rho:+.3f}")
    out.print(table)
    if json_path:
        write_json(Path(json_path), result)
