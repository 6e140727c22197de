"""``report.md``: the run in one page, written from the manifest alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeauto.fileio import write_text


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def latency_rows(lat: dict[str, Any]) -> list[str]:
    """Predicted vs measured, one row per runtime (and PyTorch eager); emulated rows say so."""
    rows = [_row("runtime", "median ms", "p90 ms"), _row("---", "---:", "---:")]
    how = (lat.get("predictor") or {}).get("name", "table")
    rows.append(_row(f"predicted ({lat['runtime']}, {how})", _fmt(lat["predicted_ms"]), ""))
    measured = lat["measured"]
    emulated = lat.get("measured_on") == "emulated"
    for key in sorted(k for k in measured if k.endswith("_ms") and not k.endswith("_p90_ms")):
        name = key[: -len("_ms")]
        label = f"{name} (**emulated**)" if emulated else name
        rows.append(_row(label, _fmt(measured[key]), _fmt(measured[f"{name}_p90_ms"])))
    return rows


def measurement_lines(lat: dict[str, Any]) -> list[str]:
    """How the latency was obtained: emulated (with the fit's error), skipped runtimes,
    the predictor's calibration."""
    lines: list[str] = []
    if lat.get("measured_on") == "emulated" and lat.get("emulation"):
        e = lat["emulation"]
        lines.append(
            f"**Emulated, not measured**: the device could not be reached ({e['reason']}). "
            f"{lat['runtime']} = {e['fixed_ms']:.4f} ms + {e['scale']:.3f} x this machine's "
            f"{_fmt(e['host_ms'])} ms ({e['host_cpu']}, {e['host_threads']} threads), a "
            f"device/host law fitted on the {e['shared']} blocks both tables share; fit error "
            f"{e['rmspe']:.1%} (RMSPE of those blocks), expected error on a whole network "
            f"{e['expected_error']:.1%}."
        )
    for name, why in (lat.get("skipped") or {}).items():
        lines.append(f"Not timed on the device: {name} ({why}).")
    cal = lat.get("calibration")
    if cal:
        lines.append(
            f"Calibration: x{cal['used']:.3f} applied to predictions; {cal['history']} verified "
            f"artifacts in the table's history, next runs use x{cal['next']:.3f}."
        )
    return ["", *lines] if lines else []


def _pruning_lines(plan: dict[str, Any], acc: dict[str, Any]) -> list[str]:
    """The pruning summary, its step-by-step trace, and the scratch baseline when run."""
    lines = [
        f"- pruning: {len(plan['ops'])} ops in {len(plan['steps']) - 1} steps "
        f"({plan.get('allocation', 'uniform')} allocation, {plan['criterion']} criterion): "
        f"{plan.get('status', 'met')}; {plan.get('message', '')}",
    ]
    for step in plan["steps"][1:]:
        lines.append(f"  - step {step['step']}: {step.get('action', '')} -> {step['cost']:.4g}")
    if acc.get("val_scratch") is not None:
        lines.append(
            f"- scratch baseline (same architecture, trained from scratch): "
            f"{acc['val_scratch']:.4f} vs pruned + fine-tuned {acc['val']:.4f}"
        )
    return lines


def _model_line(m: dict[str, Any]) -> str:
    if m.get("arch") is None:
        return f"- model: `{m.get('model')}` (the user's own module)"
    return f"- space: {m['space']}; arch: `{_arch(m['arch'])}`"


def _table_line(t: dict[str, Any]) -> str:
    if t.get("kind") == "layers":
        return f"Latency: the model's layers, each measured on the device (`{t['copy']}`)."
    return (
        f"Table: `{t['path']}` ({t['entries']} entries, "
        f"{t['measured_on_demand']} measured during this run)."
    )


def render(m: dict[str, Any]) -> str:
    """Markdown text of the report."""
    lat, acc, budget = m["latency"], m["accuracy"], m["budget"]
    verdict = "within" if lat["within_budget"] else "OVER"
    lines = [
        f"# edgeauto run on {m['device']['name']}",
        "",
        f"- dataset: {m['dataset']['name']} {m['dataset']['input_shape']} "
        f"({m['dataset']['train']} train / {m['dataset']['val']} val)",
        _model_line(m),
        f"- budget: {budget['latency_ms']} ms on {lat['runtime']} x{lat['threads']} threads "
        f"(tolerance {budget['tolerance']:.0%}): **{verdict} budget**",
        f"- validation accuracy: {acc['val']:.4f} (before pruning {acc['val_before_pruning']:.4f})",
        f"- prediction error: {lat['prediction_error']:+.1%} of measured",
        *_pruning_lines(m["pruning"], acc),
        "",
        "## Latency (batch 1)",
        "",
        *latency_rows(lat),
        *measurement_lines(lat),
        "",
        "## Artifacts",
        "",
        *[f"- {k}: `{v['path']}` (sha256 {v['sha256'][:12]}…)" for k, v in m["artifacts"].items()],
        "",
        _table_line(m["table"]),
    ]
    return "\n".join(lines) + "\n"


def _arch(arch: dict[str, Any]) -> str:
    return " ".join(
        f"{w}:[{','.join(layers)}]" for w, layers in zip(arch["widths"], arch["layers"])
    )


def write_report(path: Path, manifest: Any) -> Path:
    """Write ``report.md`` for ``manifest`` (a :class:`Manifest`) atomically."""
    write_text(path, render(manifest.data))
    return path
