"""``report.md``: the run in one page, written from the manifest alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeauto.budget import Budget
from edgeauto.bundle import read_deploy
from edgeauto.fileio import write_text
from edgeauto.report.pareto import PARETO_PLOT, plot_pareto

CURVE_PLOT = "plots/search_curve.png"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def _headed(title: str, body: list[str], level: int = 2) -> list[str]:
    """``body`` under a heading, or nothing when there is no body."""
    return ["", f"{'#' * level} {title}", "", *body] if body else []


def latency_rows(lat: dict[str, Any]) -> list[str]:
    """Predicted vs measured, one row per runtime (and PyTorch eager); emulated rows say so."""
    head = "| runtime | median ms | p90 ms | repeatability |"
    rows = [head, "| --- | ---: | ---: | ---: |"]
    how = (lat.get("predictor") or {}).get("name", "table")
    rows.append(f"| predicted ({lat['runtime']}, {how}) | {_fmt(lat['predicted_ms'])} | | |")
    measured, spreads = lat["measured"], lat.get("repeatability") or {}
    emulated = lat.get("measured_on") == "emulated"
    for key in sorted(k for k in measured if k.endswith("_ms") and not k.endswith("_p90_ms")):
        name = key[: -len("_ms")]
        label = f"{name} (**emulated**)" if emulated else name
        rsd = spreads.get(name)  # relative stdev of the fresh sessions' medians
        spread = f"±{rsd:.1%}" if rsd is not None else "n/a"
        rows.append(
            f"| {label} | {_fmt(measured[key])} | {_fmt(measured[f'{name}_p90_ms'])} | {spread} |"
        )
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
            f"{e['rmspe']:.1%} (RMSPE of those blocks); expected error on a whole network "
            f"{e['expected_error']:.1%}, measured on {e.get('expected_error_networks', '?')} "
            "whole networks timed on this machine against the device's table."
        )
    for name, why in (lat.get("skipped") or {}).items():
        lines.append(f"Not timed on the device: {name} ({why}).")
    if lat.get("cpu_affinity"):
        lines.append(f"Timed on cores {', '.join(map(str, lat['cpu_affinity']))} only (pinned).")
    if ref := lat.get("reference"):
        lines.append(
            f"Timed beside the run's reference model ({Path(ref['path']).name}, "
            f"{_fmt(ref['ms'])} ms when the run first timed it), in interleaved rounds: the "
            f"model is {ref['ratio']:.3f}x it, so {_fmt(lat['measured_ms'])} ms on the machine "
            f"pruning measured; as timed now {_fmt(ref['raw_ms'])} ms, the reference running "
            f"at {ref['drift']:.3f}x its first time (the machine's drift, cancelled)."
        )
    for name, rsd in (lat.get("unrepeatable") or {}).items():
        lines.append(
            f"**Unsteady**: {name}'s fresh sessions still disagreed by {rsd:.1%} after "
            "re-measuring; another load shared the device, so do not bet on this figure."
        )
    cal = lat.get("calibration")
    if cal:
        how = (
            f"timed on {len(cal.get('fresh_networks', []))} whole networks when the run started"
            if cal.get("source") == "fresh"
            else "from the table's history"
        )
        lines.append(
            f"Calibration: x{cal['used']:.3f} applied to predictions ({how}); "
            f"{cal['history']} verified artifacts in the table's history, whose factor is now "
            f"x{cal['next']:.3f}."
        )
    return ["", *lines] if lines else []


def pruning_lines(plan: dict[str, Any], acc: dict[str, Any]) -> list[str]:
    """The pruning summary, its step-by-step trace, and the scratch baseline when run."""
    lines = [
        f"- pruning: {len(plan['ops'])} ops in {len(plan['steps']) - 1} steps "
        f"({plan.get('allocation', 'uniform')} allocation, {plan['criterion']} criterion): "
        f"{plan.get('status', 'met')}; {plan.get('message', '')}",
    ]
    if plan.get("scale", 1.0) != 1.0:
        lines.append(
            f"  - costs below are predictions x{plan['scale']:.3f}, the unpruned model's "
            "measured / predicted latency"
        )
    for step in plan["steps"][1:]:
        lines.append(f"  - step {step['step']}: {step.get('action', '')} -> {step['cost']:.4g}")
    return lines + _scratch_lines(acc)


def _scratch_lines(acc: dict[str, Any]) -> list[str]:
    """Liu et al.'s baselines beside the pruned model: Scratch-E, and Scratch-B when run (a
    manifest from before Scratch-B has only ``val_scratch``)."""
    if acc.get("val_scratch") is None:
        return []
    lines = [
        f"- scratch baseline (same architecture, trained from scratch) vs pruned + fine-tuned "
        f"{acc['val']:.4f}:",
        f"  - Scratch-E (the unpruned model's epochs): {acc['val_scratch']:.4f}",
    ]
    if acc.get("val_scratch_b") is not None:
        lines.append(
            f"  - Scratch-B (the unpruned model's training FLOPs): {acc['val_scratch_b']:.4f}"
        )
    return lines


def _model_line(m: dict[str, Any]) -> str:
    if m.get("arch") is None:
        return f"- model: `{m.get('model')}` (the user's own module)"
    return f"- space: {m['space']}; arch: `{arch_text(m['arch'])}`"


def _table_line(t: dict[str, Any]) -> str:
    if t.get("kind") == "layers":
        return f"Latency: the model's layers, each measured on the device (`{t['copy']}`)."
    line = (
        f"Table: `{t['path']}` ({t['entries']} entries, "
        f"{t['measured_on_demand']} measured during this run)."
    )
    if c := t.get("conversion"):
        line += (
            f" **Converted** from {c['from_runtime']} to {c['to_runtime']} with an overhead "
            f"model measured on {c['measured_on']} (eager/LiteRT kernel ratio "
            f"{c['scale']:.2f}; see edgeauto/latency/conversion.py)."
        )
    return line


def search_curve_lines(search: dict[str, Any] | None) -> list[str]:
    """The supernet search's curve (``dnas``): a plot link and one table row per epoch."""
    rows = search_curve_rows(search)
    if not rows:
        return []
    return _headed("Search curve (supernet)", [f"![search curve]({CURVE_PLOT})", "", *rows])


def search_curve_rows(search: dict[str, Any] | None) -> list[str]:
    """One table row per epoch of the supernet search (``dnas``); none for other searches."""
    curve = (search or {}).get("curve")
    if not curve:
        return []
    rows = [
        _row("epoch", "phase", "accuracy", "expected ms", "derived ms", "params", "step ms", "memory MB"),
        _row("---:", "---", "---:", "---:", "---:", "---:", "---:", "---:"),
    ]  # fmt: skip
    for p in curve:
        rows.append(
            _row(p["epoch"], p["phase"], _fmt(p["accuracy"]), _fmt(p["expected_ms"]),
                 _fmt(p["derived_ms"]), p["params"], f"{p['step_ms']:.1f}", f"{p['memory_mb']:.1f}")
        )  # fmt: skip
    return rows


def plot_search_curve(path: Path, curve: list[dict[str, Any]]) -> Path | None:
    """Accuracy, expected latency and supernet size per epoch as a PNG (None without
    matplotlib, which the package does not require)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [p["epoch"] for p in curve]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    series = (("accuracy", "accuracy (derived arch)"), ("expected_ms", "expected latency (ms)"),
              ("params", "supernet parameters"))  # fmt: skip
    for ax, (key, title) in zip(axes, series):
        ax.plot(epochs, [p[key] for p in curve], marker="o")
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[1].plot(epochs, [p["derived_ms"] for p in curve], marker="x", label="derived arch")
    axes[1].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _activation_cell(fp: dict[str, Any]) -> str:
    """Peak activations: measured by ONNX Runtime and/or estimated from the blocks."""
    est, measured = fp.get("activation_bytes"), fp.get("measured_activation_bytes")
    est_txt = "unknown" if est is None else f"{est / 1000:.1f} kB"
    if measured is None:
        return f"{est_txt} peak activations (estimated)"
    return (
        f"{measured / 1000:.1f} kB peak activations (measured by ONNX Runtime; estimate {est_txt})"
    )


def _test_lines(acc: dict[str, Any]) -> list[str]:
    if acc.get("test") is None:
        return ["- test accuracy: none (the dataset has no test split)"]
    return [f"- test accuracy: {acc['test']:.4f} (held out; read once, after every choice)"]


def limits_lines(m: dict[str, Any]) -> list[str]:
    """Parameters, file size and peak activations of the final model, against any limits."""
    b = m["budget"]
    fp, lim = b.get("footprint"), b.get("limits") or {}
    if not fp:
        return []
    cells = [
        (f"{fp['params']:,} parameters", lim.get("max_params"), "{:,}"),
        (f"{fp['size_bytes'] / 1000:.1f} kB model.tflite", lim.get("max_size_kb"), "{:g} kB"),
        (_activation_cell(fp), lim.get("max_activation_kb"), "{:g} kB"),
    ]  # fmt: skip
    parts = [c if limit is None else f"{c} (limit {fmt.format(limit)})" for c, limit, fmt in cells]
    lines = [f"- footprint: {'; '.join(parts)}"]
    lines += [f"- **over a limit**: {v}" for v in b.get("violations") or []]
    return lines


def pareto_lines(m: dict[str, Any]) -> list[str]:
    """The chart of every evaluated arch, and how its latencies were obtained."""
    how = pareto_note(m)
    if not how:
        return []
    return _headed("Every evaluated architecture", [f"![pareto]({PARETO_PLOT})", "", f"- {how}"])


def pareto_note(m: dict[str, Any]) -> str:
    """How the Pareto chart's latencies and accuracies were obtained ("" without points)."""
    points = (m.get("analysis") or {}).get("pareto") or []
    if not points:
        return ""
    timed = sum(p["measured_ms"] is not None for p in points)
    how = (f"{timed} of {len(points)} archs timed end to end on the device; the rest at their "
           "predicted latency") if timed else "latencies predicted by the table (device not timed)"  # fmt: skip
    return f"{how}; accuracy is the search's proxy training, the star the final model"


def breakdown_lines(m: dict[str, Any]) -> list[str]:
    """Per block of the final model: measured alone vs predicted inside the model."""
    return _headed("Per-block latency (final model)", breakdown_rows(m))


def breakdown_rows(m: dict[str, Any]) -> list[str]:
    """The per-block table of :func:`breakdown_lines` (none when the manifest has no rows)."""
    rows = (m.get("analysis") or {}).get("breakdown") or []
    if not rows:
        return []
    lat = m["latency"]
    out = [
        _row("#", "block", "measured alone ms", "p90 ms", "predicted in model ms"),
        _row("---:", "---", "---:", "---:", "---:"),
    ]  # fmt: skip
    for r in rows:
        out.append(_row(r["index"], f"`{r['block']}`", _fmt(r["measured_alone_ms"]),
                        _fmt(r["measured_alone_p90_ms"]), _fmt(r["predicted_in_model_ms"])))  # fmt: skip
    total = sum(r["predicted_in_model_ms"] for r in rows)
    out.append(_row("", "**sum of blocks / whole model**", "", "", _fmt(total)))
    out.append(_row("", f"**predicted ({lat['runtime']}) / measured**", "", "",
                    f"{_fmt(lat['predicted_ms'])} / {_fmt(lat['measured_ms'])}"))  # fmt: skip
    return out


def chosen_point(m: dict[str, Any]) -> dict[str, float] | None:
    ms = m["latency"].get("measured_ms")
    return {"ms": ms, "accuracy": m["accuracy"]["val"]} if ms else None


def int8_lines(m: dict[str, Any]) -> list[str]:
    """float32 vs int8 side by side: accuracy, measured latency, size; the warning if any."""
    return _headed("int8 (post-training full-integer quantization)", int8_rows(m))


def int8_rows(m: dict[str, Any]) -> list[str]:
    """The table and agreement of :func:`int8_lines` (none when no int8 model was made)."""
    q = (m.get("parity") or {}).get("litert_int8")
    if not q:
        return []
    measured = m["latency"]["measured"]
    ms = {k: measured.get(f"{k}_ms") for k in ("litert", "litert_int8")}
    cell = {k: _fmt(v) if v is not None else "n/a" for k, v in ms.items()}
    lines = [
        _row("model", "val accuracy", "measured ms", "bytes"), _row("---", "---:", "---:", "---:"),
        _row("float32 `model.tflite`", _fmt(q["fp32_acc"]), cell["litert"], q["fp32_bytes"]),
        _row("int8 `model_int8.tflite`", _fmt(q["int8_acc"]), cell["litert_int8"], q["int8_bytes"]),
        "", f"- top-1 agreement with float32: {q['agreement']:.2%} of {q['samples']} "
        f"validation inputs (bar {q['min_agreement']:.0%})",
    ]  # fmt: skip
    if q.get("warning"):
        lines.append(f"- **warning**: {q['warning']}")
    return lines


def device_lines(devices: list[dict[str, Any]]) -> list[str]:
    """``--one-model``: the same model on each further device, against that device's budget."""
    return _headed("The same model on the other devices", device_rows(devices), level=3)


def device_rows(devices: list[dict[str, Any]]) -> list[str]:
    """The table of :func:`device_lines` (none for a run on one device)."""
    if not devices:
        return []
    lines = ["| device | runtime | budget ms | predicted ms | measured ms | verdict |",
             "|---|---|---:|---:|---:|---|"]  # fmt: skip
    for d in devices:
        measured = "unreachable" if d["measured_ms"] is None else f"{d['measured_ms']:.4f}"
        verdict = "within" if d["within_budget"] else "OVER"
        if d["measured_ms"] is None:
            verdict += " (by prediction)"
        lines.append(f"| {d['name']} | {d['runtime']} x{d['threads']} | {d['budget_ms']:g} | "
                     f"{d['predicted_ms']:.4f} | {measured} | {verdict} |")  # fmt: skip
    return lines


def deploy_lines(
    d: dict[str, Any] | None, artifacts: dict[str, Any], budget: Budget | None = None
) -> list[str]:
    """The report's Deploy section for ``deploy.json``'s document ``d`` (none without it)."""
    return _headed("Deploy", deploy_rows(d, artifacts, budget)) if d else []


def deploy_rows(
    d: dict[str, Any], artifacts: dict[str, Any], budget: Budget | None = None
) -> list[str]:
    """What ``edgeauto deploy`` found on a device: flagged **stale** when the deployed file is
    not the run's (a resumed run exported again), the median against ``budget`` when given."""
    art, a, lat = d["artifact"], d["agreement"], d["latency_ms"]
    shas = {Path(v["path"]).name: v["sha256"] for v in artifacts.values()}
    same = shas.get(art["file"]) == art["sha256"]
    if a.get("top1") is None:
        agree = f"not checked ({a.get('reason') or 'no Python on the device'})"
    else:
        verdict = "ok" if a["ok"] else "**FAILED**"
        agree = f"{a['top1']:.2%} of {a['samples']} images (needs {a['threshold']:.0%}): {verdict}"
    rsd = lat.get("repeatability")
    cores = ", ".join(map(str, d["cpu_affinity"])) if d.get("cpu_affinity") else "not pinned"
    verdict_ms = "" if budget is None else (
        f": **{'within' if budget.within(lat['median']) else 'over'}** the run's "
        f"{budget.latency_ms:g} ms budget (tolerance {budget.tolerance:.0%})")  # fmt: skip
    return [
        f"- device: {d['device']} over {d['connection']} (`{d['host']}`), {d['date']}",
        f"- runtime there: {d['runtime']} {d['runtime_version']}, Python {d.get('python') or 'none'}",
        f"- artifact: `{art['file']}` (sha256 {art['sha256'][:12]}…): "
        + ("this run's artifact" if same else "**not** an artifact of this run — **stale**: the "
           "run's file has changed since; deploy again"),
        f"- top-1 agreement with this machine on the bundle's sample: {agree}",
        f"- latency there: median {_fmt(lat['median'])} ms, p90 {_fmt(lat['p90'])} ms, "
        f"repeatability {'n/a' if rsd is None else f'±{rsd:.1%}'}{verdict_ms}",
        f"- cores: {cores}",
    ]  # fmt: skip


def run_budget(m: dict[str, Any]) -> Budget:
    """The run's latency budget and tolerance, from the manifest."""
    return Budget(m["budget"]["latency_ms"], m["budget"]["tolerance"])


def setup_lines(m: dict[str, Any]) -> list[str]:
    """What was asked and what came out: dataset, model, budget with its verdict, footprint."""
    lat, budget, data = m["latency"], m["budget"], m["dataset"]
    verdict = "within" if lat["within_budget"] else "OVER"
    return [
        f"- dataset: {data['name']} {data['input_shape']} "
        f"({data['train']} train / {data['val']} val / {data.get('test', 0)} test)",
        _model_line(m),
        f"- budget: {budget['latency_ms']} ms on {lat['runtime']} x{lat['threads']} threads"
        f"{' (int8: model_int8.tflite)' if lat.get('precision') == 'int8' else ''} "
        f"(tolerance {budget['tolerance']:.0%}): **{verdict} budget**",
        *limits_lines(m),
    ]


def accuracy_lines(acc: dict[str, Any]) -> list[str]:
    """Validation accuracy (before and after pruning) and the held-out test accuracy."""
    return [
        f"- validation accuracy: {acc['val']:.4f} (before pruning {acc['val_before_pruning']:.4f})",
        *_test_lines(acc),
    ]


def artifact_lines(m: dict[str, Any]) -> list[str]:
    """Each artifact with its digest, then the latency table the run predicted with."""
    arts = [f"- {k}: `{v['path']}` (sha256 {v['sha256'][:12]}…)" for k, v in m["artifacts"].items()]
    return [*arts, "", _table_line(m["table"])]


def render(m: dict[str, Any]) -> str:
    """Markdown text of the report."""
    lat = m["latency"]
    lines = [
        f"# edgeauto run on {m['device']['name']}",
        "",
        *setup_lines(m),
        *accuracy_lines(m["accuracy"]),
        f"- prediction error: {lat['prediction_error']:+.1%} of measured",
        *pruning_lines(m["pruning"], m["accuracy"]),
        *search_curve_lines(m.get("search")),
        *_headed("Latency (batch 1)", [*latency_rows(lat), *measurement_lines(lat)]),
        *device_lines(m.get("devices") or []),
        *int8_lines(m),
        *pareto_lines(m),
        *breakdown_lines(m),
        *deploy_lines(m.get("deploy"), m["artifacts"], run_budget(m)),
        *_headed("Artifacts", artifact_lines(m)),
    ]
    return "\n".join(lines) + "\n"


def arch_text(arch: dict[str, Any]) -> str:
    """An arch in one short line: ``width:[layer,...]`` per stage."""
    return " ".join(
        f"{w}:[{','.join(layers)}]" for w, layers in zip(arch["widths"], arch["layers"])
    )


def write_markdown(path: Path, m: dict[str, Any]) -> Path:
    """Write ``report.md`` for the manifest document ``m`` atomically, with the PNG charts it
    links (the search curve and the Pareto chart) beside it, and the deployment when
    ``edgeauto deploy`` has written ``deploy.json`` there."""
    curve = (m.get("search") or {}).get("curve")
    if curve:
        plot_search_curve(path.parent / CURVE_PLOT, curve)
    points = (m.get("analysis") or {}).get("pareto")
    if points:
        plot_pareto(path.parent / PARETO_PLOT, points, chosen_point(m), m["budget"]["latency_ms"])
    write_text(path, render({**m, "deploy": read_deploy(path.parent)}))
    return path
