"""``edgeauto devices``: list and show device profiles."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from edgeauto.cli.common import fail, out
from edgeauto.errors import EdgeAutoError

devices_app = typer.Typer(help="List and show device profiles.", invoke_without_command=True)


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
        fail(exc)
    out.print(t)


@devices_app.command("show")
def devices_show(name: Annotated[str, typer.Argument(help="Profile name or YAML path.")]) -> None:
    """Print one device profile (with ``auto`` fields resolved)."""
    import yaml

    from edgeauto.devices.profile import load_profile

    try:
        p = load_profile(name)
    except EdgeAutoError as exc:
        fail(exc)
    typer.echo(
        yaml.safe_dump(p.model_dump(mode="json", exclude={"source"}), sort_keys=False), nl=False
    )
    typer.echo(f"# source: {p.source}")
