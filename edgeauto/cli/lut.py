"""``edgeauto lut``: import published per-layer latency tables (OFA YAML, FBNet JSON).

Registered on the main app in :mod:`edgeauto.cli`. Errors are one line, exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeauto.cli.common import fail, out, parse_shape
from edgeauto.errors import ConfigError, EdgeAutoError

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
    from edgeauto.devices.profile import load_profile
    from edgeauto.latency.conversion import load_or_measure
    from edgeauto.latency.importers import FORMATS, IMPORTERS, ImportTarget, import_table
    from edgeauto.latency.store import table_path, tables_dir
    from edgeauto.spaces import get_space

    try:
        for flag, value in (("--format", fmt), ("--device", device), ("--space", space)):
            if not value:
                raise ConfigError(
                    f"{flag} is required (formats: {', '.join(FORMATS)}); e.g. edgeauto lut "
                    "import --format ofa-yaml DIR --device samsung-note10 --space ofa-mbv3"
                )
        profile = load_profile(device)  # type: ignore[arg-type]
        shape, n = parse_shape(input_shape, classes, dataset)
        target_file = Path(out_file) if out_file else table_path(profile, space)  # type: ignore[arg-type]
        model = None
        if convert_to:
            src_rt = IMPORTERS.get(fmt).runtime if fmt in IMPORTERS else ""  # type: ignore[arg-type]
            sp = get_space(space, shape, n)  # type: ignore[arg-type]
            model = load_or_measure(sp, src_rt, convert_to, tables_dir())
        target = ImportTarget(profile, space, shape, n, target_file, estimate, origin, model)  # type: ignore[arg-type]
        report = import_table(fmt, path, target)  # type: ignore[arg-type]
    except EdgeAutoError as exc:
        fail(exc)
    for line in report.lines():
        out.print(line, markup=False, highlight=False)
    out.print(f"wrote {target_file}", markup=False, highlight=False)
