"""What ``run`` and ``compress`` print when a job ends: the summary and the verdict."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.table import Table

from edgeauto.cli.common import err, out
from edgeauto.errors import OverBudget
from edgeauto.manifest import Manifest


def summary(manifest: Manifest) -> None:
    """The run's table: accuracy, budget, predicted and measured latency, where the files are."""
    lat = manifest["latency"]
    t = Table(title=f"edgeauto run: {manifest.device}", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("validation accuracy", f"{manifest.accuracy:.4f}")
    acc = manifest["accuracy"]
    if acc.get("test") is not None:  # read once, after every choice was made on val
        t.add_row("test accuracy (held out)", f"{acc['test']:.4f}")
    if "int8" in acc:  # both LiteRT models on the validation split
        t.add_row("accuracy fp32 / int8 .tflite", f"{acc['fp32']:.4f} / {acc['int8']:.4f}")
    t.add_row("budget (ms)", f"{manifest.budget_ms:g}")
    t.add_row(f"predicted {lat['runtime']} (ms)", f"{manifest.predicted_ms:.4f}")
    emulated = lat.get("measured_on") == "emulated"
    spreads = lat.get("repeatability") or {}
    for key, value in lat["measured"].items():
        if not key.endswith("_p90_ms"):
            rsd = spreads.get(key[:-3])  # how far its rounds spread: the figure's error bar
            shown = f"{value:.4f}" + (f" ±{rsd:.1%}" if rsd is not None else "")
            t.add_row(f"{'EMULATED' if emulated else 'measured'} {key[:-3]} (ms)", shown)
    if lat.get("cpu_affinity"):
        t.add_row("timed on cores", ",".join(map(str, lat["cpu_affinity"])))
    if ref := lat.get("reference"):  # measured_ms is in the reference's frame: show both
        t.add_row("as timed now, raw (ms)", f"{ref['raw_ms']:.4f} (drift x{ref['drift']:.3f})")
    if emulated:  # the device was out of reach: the number is this machine's x a fitted ratio
        e = lat["emulation"]
        t.add_row("emulation fit error (blocks)", f"{e['rmspe']:.1%} ({e['shared']} blocks)")
        t.add_row("emulation expected error", f"{e['expected_error']:.1%}")
    for d in manifest.data.get("devices") or []:  # --one-model: the same file elsewhere
        ms = "unreachable" if d["measured_ms"] is None else f"{d['measured_ms']:.4f}"
        t.add_row(f"{d['name']} {d['runtime']} (ms, budget {d['budget_ms']:g})", ms)
    verdict_on = f" ({lat['artifact']})" if lat.get("precision") == "int8" else ""
    t.add_row(f"within budget{verdict_on}", "yes" if manifest.within_budget else "NO")
    out.print(t)
    out.print(f"run directory: {manifest.path.parent}")
    for name in ("onnx", "tflite", "tflite_int8")[: 3 if verdict_on else 2]:
        out.print(f"  {name}: {manifest.artifact(name)}")
    out.print(f"  report: {manifest.path.parent / 'report.md'}")


def over_budget(exc: OverBudget) -> NoReturn:
    """Print the summary of the model that failed its budget and why; exit 3."""
    if exc.manifest is not None:
        summary(exc.manifest)
    for reason in exc.reasons:
        what, _, rest = reason.partition(":")
        err.print(f"[bold red]{what}:[/]{rest}", highlight=False)
    raise typer.Exit(3)
