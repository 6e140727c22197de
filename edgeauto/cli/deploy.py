"""``edgeauto deploy``: a run's bundle checked and timed on a device (``deploy.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from edgeauto.cli.common import SshHost, SshKey, SshKnownHosts, fail, out
from edgeauto.errors import AgreementFailed, EdgeAutoError


def deploy(
    run_dir: Annotated[str, typer.Argument(help="A run directory (the --out of run/compress).")],
    device: Annotated[str, typer.Option(help="Device profile name or YAML path.")],
    host: SshHost = None,
    key: SshKey = None,
    known_hosts: SshKnownHosts = None,
    artifact: Annotated[
        str, typer.Option(help="model.tflite, model_int8.tflite or model.onnx.")
    ] = "model.tflite",
    runs: Annotated[int, typer.Option(help="Timed runs per round (>= 30).")] = 100,
) -> None:
    """Copy RUN_DIR's bundle to DEVICE, check infer.py's answers there against this machine's
    (top-1 on sample.npz, >= 99%) and time the model with the device's runtime.

    Writes RUN_DIR/deploy.json and a Deploy section in the report. Exit 2: the device cannot
    be reached or lacks the runtime; exit 3: the answers disagree.
    """
    from edgeauto.jobs.deploy import deploy as deploy_job

    try:
        doc = deploy_job(
            run_dir, device, host=host, key=key, known_hosts=known_hosts, artifact=artifact,
            runs=runs,
        )  # fmt: skip
    except AgreementFailed as exc:
        _print(exc.deploy, Path(run_dir))
        fail(exc)
    except EdgeAutoError as exc:
        fail(exc)
    _print(doc, Path(run_dir))


def _print(doc: dict[str, Any], run_dir: Path) -> None:
    """The short table: where, what ran, whether it agreed, how fast."""
    a, lat = doc["agreement"], doc["latency_ms"]
    if a["top1"] is None:
        agreement = f"not checked: {a.get('reason', '')}"
    else:
        agreement = f"{a['top1']:.1%} of {a['samples']} ({'ok' if a['ok'] else 'FAILED'})"
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # a long path folds, never cut to "…"
    rows = {
        "device": f"{doc['device']} ({doc['host']})",
        "runtime": f"{doc['runtime']} {doc['runtime_version']}",
        "agreement": agreement,
        "latency": f"median {lat['median']:.4f} ms, p90 {lat['p90']:.4f} ms",
        "artifact": f"{doc['artifact']['file']} sha256 {doc['artifact']['sha256'][:12]}",
        "written": str(run_dir / "deploy.json"),
    }
    for name, value in rows.items():
        table.add_row(name, Text(value))  # Text: a host like [::1] is not markup
    out.print(table)
