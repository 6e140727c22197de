"""``edgeauto lut``: import published per-layer latency tables (OFA YAML, FBNet JSON).

Registered on the main app in :mod:`edgeauto.cli`. Errors are one line, exit code 2.
"""

from __future__ import annotations

from typing import Annotated

import typer

from edgeauto.cli.common import fail, out, parse_shape
from edgeauto.errors import EdgeAutoError

lut_app = typer.Typer(help="Import published latency tables.", no_args_is_help=True)


@lut_app.command("import")
def import_table_cmd(
    path: Annotated[str, typer.Argument(help="Source file, or a folder of OFA YAML files.")],
    fmt: Annotated[str | None, typer.Option("--format", help="ofa-yaml or fbnet-json.")] = None,
    device: Annotated[
        str | None, typer.Option(help="Device profile the source was measured on.")
    ] = None,
    space: Annotated[str | None, typer.Option(help="Search space the table is for.")] = None,
    out_file: Annotated[
        str | None,
        typer.Option("--out", help="Table file (default: the device's place in hw_latency/)."),
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="Dataset the space will run on (its shape and classes).")
    ] = "mnist5k",
    input_shape: Annotated[
        str | None, typer.Option(help="C,H,W instead of a dataset's shape.")
    ] = None,
    classes: Annotated[int, typer.Option(help="Class count with --input-shape.")] = 10,
    estimate: Annotated[
        bool, typer.Option(help="Estimate fixed blocks the source never measured.")
    ] = True,
    origin: Annotated[
        str, typer.Option(help="Where the source is published: owner/repo@commit/path.")
    ] = "",
    convert_to: Annotated[
        str | None,
        typer.Option(
            help="Convert a table timed with another runtime (FBNet's TensorFlow 2 eager) to "
            "this one (the device's: litert), with the overhead model measured on this machine "
            "(<tables>/conversions/; measured first when absent, a few minutes). Without it "
            "such a table is refused for prediction."
        ),
    ] = None,
) -> None:
    """Convert a published per-layer table into DEVICE's latency table for SPACE.

    The table keeps its source's runtime; a table whose runtime is not the device's
    (jh88/fbnet's TensorFlow 2 eager for the LiteRT raspberry-pi-4) is refused by runs
    unless imported with --convert-to (see edgeauto/latency/conversion.py).
    """
    from edgeauto.jobs.lut import import_table

    try:
        shape, n = parse_shape(input_shape, classes, dataset)
        result = import_table(
            path, fmt, device, space, input_shape=shape, classes=n, out=out_file,
            estimate=estimate, origin=origin, convert_to=convert_to,
        )  # fmt: skip
    except EdgeAutoError as exc:
        fail(exc)
    for line in result.report.lines():
        out.print(line, markup=False, highlight=False)
    out.print(f"wrote {result.path}", markup=False, highlight=False)
