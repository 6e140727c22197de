"""The ``edgeauto`` command: thin. Each command parses, builds its job's config, calls the job
(:mod:`edgeauto.jobs`) and renders; errors map to exit codes here.

Exit codes: 0 ok, 2 bad input (any :class:`EdgeAutoError`: also an unreachable device or a
runtime missing there), 3 verification failed: measured latency over budget, or (``deploy``)
the device's answers disagree with this machine's.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from edgeauto.cli.analyze import analyze_app
from edgeauto.cli.common import OPTIONS, OneLineErrors, err
from edgeauto.cli.compress import compress
from edgeauto.cli.deploy import deploy
from edgeauto.cli.devices import devices_app
from edgeauto.cli.linearize import linearize_command
from edgeauto.cli.lut import lut_app
from edgeauto.cli.profile import profile
from edgeauto.cli.run import run
from edgeauto.cli.search import search_command
from edgeauto.quiet import set_verbose

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0], cls=OneLineErrors
)
app.command("run")(run)
app.command("compress")(compress)
app.command("profile")(profile)
app.command("search")(search_command)
app.command("linearize")(linearize_command)
app.command("deploy")(deploy)
app.add_typer(devices_app, name="devices")
app.add_typer(lut_app, name="lut")
app.add_typer(analyze_app, name="analyze")


@app.callback()
def _global_options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="On an error, also print its traceback; show TensorFlow's and LiteRT's logs.",
        ),
    ] = False,
) -> None:
    OPTIONS["debug"] = debug
    set_verbose(debug)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; continue with --resume RUN_DIR (the run's --out)")
        sys.exit(130)


__all__ = ["app", "main"]
