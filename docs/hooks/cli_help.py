"""MkDocs hook: the CLI reference's ``--help`` text comes from the CLI itself at build time.

A page line ``<!-- edgeauto-help -->`` is replaced by one section per command of
:data:`edgeauto.cli.app` (subcommands included), each holding that command's ``--help``
output, so the reference can never drift from the options the code accepts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- edgeauto-help -->"
WIDTH = 100


def on_config(config: Any) -> Any:
    """Import the package of this checkout (the repository root), not an installed copy."""
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, "\n".join(_sections()))


def _sections() -> list[str]:
    import typer

    from edgeauto.cli import app

    root = typer.main.get_command(app)
    parts = []
    for path in _command_paths(root, []):
        text = _help(path)
        parts += [f"### edgeauto {' '.join(path)}", "", "```text", text, "```", ""]
    return parts


def _command_paths(group: Any, prefix: list[str]) -> list[list[str]]:
    """Every command's argv path, in the order the CLI lists them (a group before its
    subcommands: ``edgeauto devices`` lists profiles by itself)."""
    paths = []
    for name, cmd in group.commands.items():
        if getattr(cmd, "hidden", False):
            continue
        paths.append([*prefix, name])
        if hasattr(cmd, "commands"):  # a group (typer vendors click: no isinstance check)
            paths += _command_paths(cmd, [*prefix, name])
    return paths


def _help(path: list[str]) -> str:
    from typer.testing import CliRunner

    from edgeauto.cli import app

    env = {"COLUMNS": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb"}
    result = CliRunner().invoke(
        app, [*path, "--help"], env=env, terminal_width=WIDTH, prog_name="edgeauto"
    )
    if result.exit_code != 0:
        raise RuntimeError(f"edgeauto {' '.join(path)} --help exited {result.exit_code}")
    lines = [line.rstrip() for line in result.output.splitlines()]
    return "\n".join(lines).strip("\n")
