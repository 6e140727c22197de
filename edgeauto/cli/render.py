"""What ``run`` and ``compress`` print when a job ends: the summary and the verdict."""

from __future__ import annotations

import typer
from rich.table import Table

from edgeauto.cli.common import err, out


def summary(manifest) -> None:
    lat = manifest["latency"]
    t = Table(title=f"edgeauto run: {manifest.device}", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("validation accuracy", f"{manifest.accuracy:.4f}")
    t.add_row("budget (ms)", f"{manifest.budget_ms:g}")
    t.add_row(f"predicted {lat['runtime']} (ms)", f"{manifest.predicted_ms:.4f}")
    emulated = lat.get("measured_on") == "emulated"
    for key, value in lat["measured"].items():
        if not key.endswith("_p90_ms"):
            t.add_row(f"{'EMULATED' if emulated else 'measured'} {key[:-3]} (ms)", f"{value:.4f}")
    if emulated:  # the device was out of reach: the number is this machine's x a fitted ratio
        e = lat["emulation"]
        t.add_row("emulation fit error (blocks)", f"{e['rmspe']:.1%} ({e['shared']} blocks)")
        t.add_row("emulation expected error", f"{e['expected_error']:.1%}")
    for d in manifest.data.get("devices") or []:  # --one-model: the same file elsewhere
        ms = "unreachable" if d["measured_ms"] is None else f"{d['measured_ms']:.4f}"
        t.add_row(f"{d['name']} {d['runtime']} (ms, budget {d['budget_ms']:g})", ms)
    t.add_row("within budget", "yes" if manifest.within_budget else "NO")
    out.print(t)
    out.print(f"run directory: {manifest.path.parent}")
    for name in ("onnx", "tflite"):
        out.print(f"  {name}: {manifest.artifact(name)}")
    out.print(f"  report: {manifest.path.parent / 'report.md'}")

def finish(manifest, tolerance: float) -> None:
    """Print the summary; exit 3 when the measured latency is over budget."""
    summary(manifest)
    if not manifest.within_budget:
        if manifest.measured_ms > manifest.budget_ms * (1 + tolerance):
            err.print(
                f"[bold red]over budget:[/] measured {manifest.measured_ms:.4f} ms > "
                f"{manifest.budget_ms:g} ms + {tolerance:.0%}", highlight=False,
            )  # fmt: skip
        for broken in manifest.violations:
            err.print(f"[bold red]over a limit:[/] {broken}", highlight=False)
        for d in manifest.data.get("devices") or []:
            if not d["within_budget"]:
                got = d["measured_ms"] if d["measured_ms"] is not None else d["predicted_ms"]
                err.print(f"[bold red]over budget on {d['name']}:[/] {got:.4f} ms > "
                          f"{d['budget_ms']:g} ms + {tolerance:.0%}", highlight=False)  # fmt: skip
        raise typer.Exit(3)
