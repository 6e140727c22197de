"""``edgeauto analyze``: studies of the building blocks (``zero-cost``, ``sparsity-sweep``).

Registered on the main app in :mod:`edgeauto.cli`. Errors are one line, exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from edgeauto.cli.common import fail, out
from edgeauto.errors import ConfigError, EdgeAutoError

if TYPE_CHECKING:
    from torch import nn

    from edgeauto.data import Dataset

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
        fail(exc)
    table = Table("indicator", "spearman vs accuracy", title=f"{archs} archs of {sp.name}")
    for name, rho in result["spearman"].items():
        table.add_row(name, f"{rho:+.3f}")
    out.print(table)
    if json_path:
        write_json(Path(json_path), result)


def _sweep_builder(model: str, data: Dataset) -> Callable[[], nn.Module]:
    """``mlp`` / ``cnn`` (the reference models) or the user's ``module:function``."""
    from edgeauto.jobs.compress import load_user_model
    from edgeauto.sparse.models import map_pool, mlp, small_cnn

    if model == "mlp":
        return lambda: mlp(data.input_shape, data.num_classes)
    if model == "cnn":
        return lambda: small_cnn(
            data.input_shape, data.num_classes, pool=map_pool(data.input_shape)
        )
    load_user_model(model, data)  # a bad spec fails now, in one line
    return lambda: load_user_model(model, data)


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
    from edgeauto.data import load_dataset
    from edgeauto.fileio import write_json
    from edgeauto.sparse.base import SPARSE_METHODS, SparseConfig
    from edgeauto.sparse.sweep import plot_sweep, sparsity_sweep, sweep_json, with_label_noise

    try:
        SPARSE_METHODS.get(method)
        grid, cfg = _floats(sparsities), SparseConfig(epochs=epochs, seed=seed)
        data = with_label_noise(load_dataset(dataset, seed=seed), label_noise, seed)
        build = _sweep_builder(model, data)
        table = Table("sparsity", "val acc", "train acc", "||w - w0||", "train GFLOPs",
                      title=f"{method} on {model}, {dataset}, label noise {label_noise:.0%}")  # fmt: skip

        def row(p: Any) -> None:
            out.print(f"  {p.sparsity:.1%}: val {p.accuracy:.4f}, distance {p.distance:.2f}")
            table.add_row(f"{p.sparsity:.1%}", f"{p.accuracy:.4f}", f"{p.train_accuracy:.4f}",
                          f"{p.distance:.2f}", f"{p.train_flops / 1e9:.2f}")  # fmt: skip

        points = sparsity_sweep(build, data, grid, method, cfg, row)
    except EdgeAutoError as exc:
        fail(exc)
    out.print(table)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"model": model, "dataset": dataset, "method": method, "epochs": epochs,
                "label_noise": label_noise, "seed": seed}  # fmt: skip
    write_json(root / "sweep.json", sweep_json(points, settings))
    plot_sweep(root / "sweep.png", points, table.title or "")
    out.print(f"wrote {root / 'sweep.json'} and {root / 'sweep.png'}")
