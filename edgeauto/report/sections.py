"""The sections of ``report.html``, each built from the manifest and the run directory.

The prose and tables reuse ``report.md``'s Markdown (:mod:`edgeauto.report.markdown`),
rendered by markdown-it; the charts come from :mod:`edgeauto.report.charts`. A manifest of
another edgeauto version may lack a field a section reads: that section then says so, and
the rest of the page still renders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from edgeauto.bundle import DEPLOY_FILE, load_deploy
from edgeauto.manifest import Manifest
from edgeauto.report import charts, markdown
from edgeauto.search.study import TRIALS_FILE

# Raw HTML in a fragment is escaped (a manifest may quote a user's strings); tables on.
_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def md(lines: list[str]) -> Markup:
    """Markdown lines as HTML (tables and nested lists included)."""
    return Markup(_MD.render("\n".join(lines)))


def note(text: str) -> Markup:
    """A one-paragraph note that a section has nothing to show, and why."""
    return Markup('<div class="note">') + md([text]) + Markup("</div>")


@dataclass(frozen=True)
class RunFiles:
    """What the page reads besides the manifest: the trials and the deployment record."""

    root: Path
    trials: list[dict[str, Any]]
    deploy: dict[str, Any] | None
    deploy_error: str | None = None

    @classmethod
    def read(cls, root: Path) -> RunFiles:
        """Read ``trials.jsonl`` and ``deploy.json`` of ``root`` (both optional)."""
        trials = []
        path = root / TRIALS_FILE
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        for line in lines:
            try:  # a line cut short by a killed search is skipped, as a resume drops it
                trials.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        deploy, error = load_deploy(root)
        return cls(root, [t for t in trials if isinstance(t, dict)], deploy, error)

    def archs(self) -> dict[int, str]:
        """Each trial's arch as one short line, by trial number."""
        return {t["number"]: markdown.arch_text(t["arch"]) for t in self.trials if t.get("arch")}


@dataclass(frozen=True)
class Section:
    """One ``<section id=...>`` of the page."""

    id: str
    nav: str  # its short name in the page's navigation bar
    title: str
    body: Markup


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def _summary(m: dict[str, Any], run: RunFiles) -> Markup:
    return md([*markdown.setup_lines(m), *markdown.pruning_lines(m["pruning"], m["accuracy"])])


def _accuracy(m: dict[str, Any], run: RunFiles) -> Markup:
    acc, search = m["accuracy"], m.get("search") or {}
    rows = [
        ("final model (PyTorch), validation", acc.get("val")),
        ("before pruning, validation", acc.get("val_before_pruning")),
        ("final model, **test** (held out)", acc.get("test")),
        ("float32 `model.tflite` (LiteRT), validation", acc.get("fp32")),
        ("int8 `model_int8.tflite` (LiteRT), validation", acc.get("int8")),
        ("Scratch-E baseline, validation", acc.get("val_scratch")),
        ("Scratch-B baseline, validation", acc.get("val_scratch_b")),
        ("the search's pick (proxy training)", search.get("accuracy")),
    ]
    table = ["| model, split | accuracy |", "| --- | ---: |"]
    table += [f"| {name} | {v:.4f} |" for name, v in rows if v is not None]
    held = ("The test split was read once, after every choice." if acc.get("test") is not None
            else "No test accuracy: the dataset has no test split.")  # fmt: skip
    return md(table) + note(held)


def _latency(m: dict[str, Any], run: RunFiles) -> Markup:
    lat = m["latency"]
    notes = [f"- {line}" for line in markdown.measurement_lines(lat) if line]
    if not lat.get("cpu_affinity"):
        notes.append("- Not pinned to cores: the runtime's threads ran where the OS put them.")
    others = markdown.device_lines(m.get("devices") or [])
    return md([*markdown.latency_rows(lat), "", *notes, *others])


def _pareto(m: dict[str, Any], run: RunFiles) -> Markup:
    points = (m.get("analysis") or {}).get("pareto") or []
    if not points:
        return note("No Pareto points: this run evaluated no architectures of a search space "
                    "(a compress-only run, or one from before the chart).")  # fmt: skip
    chosen = markdown.chosen_point(m)
    if chosen:
        chosen["arch"] = markdown.arch_text(m["arch"]) if m.get("arch") else str(m.get("model"))
    chart = charts.pareto_chart(points, run.archs(), chosen, m["budget"]["latency_ms"])
    return Markup(chart) + md([f"- {markdown.pareto_note(m)}; hover a point for its arch."])


def _blocks(m: dict[str, Any], run: RunFiles) -> Markup:
    rows = markdown.breakdown_rows(m)
    if rows:
        return md(rows)
    table = m.get("table") or {}
    copy = Path(table["copy"]) if table.get("copy") else None
    if table.get("kind") == "layers" and copy and (run.root / copy.name).is_file():
        layers = json.loads((run.root / copy.name).read_text(encoding="utf-8"))
        return note(f"A user's own model: pruning measured {len(layers.get('entries', []))} "
                    f"layer shapes on the device, one model's overhead "
                    f"{layers.get('overhead_ms') or 0:.4f} ms (`{copy.name}`); its blocks "
                    "have no table entries to break down.")  # fmt: skip
    return note("No per-block latencies in this manifest.")


def _search(m: dict[str, Any], run: RunFiles) -> Markup:
    search = m.get("search") or {}
    if search.get("curve"):
        table = md(markdown.search_curve_rows(search))
        body = Markup("<details><summary>per epoch</summary>") + table + Markup("</details>")
        return Markup(charts.supernet_chart(search["curve"])) + body
    if any(t.get("status") == "ok" for t in run.trials):
        head = []
        if search.get("accuracy") is not None:
            head = [f"- picked: accuracy {search['accuracy']:.4f} (proxy training), predicted "
                    f"{search.get('predicted_ms') or 0:.4f} ms, after "
                    f"{search.get('wall_s') or 0:.0f} s of search"]  # fmt: skip
        return Markup(charts.trials_chart(run.trials, run.archs())) + md(head)
    return note("No search in this run (the model was given, not searched).")


def _verdict_lines(m: dict[str, Any]) -> list[str]:
    lat, budget = m["latency"], m["budget"]
    ok = Manifest(m).within_budget
    lines = [
        f"- verdict: **{'PASS' if ok else 'FAIL'}**",
        f"- latency: measured {lat['measured_ms']:.4f} ms on {lat['runtime']} against "
        f"{budget['latency_ms']:g} ms (tolerance {budget['tolerance']:.0%}): "
        f"**{'within' if lat['within_budget'] else 'OVER'}**"
        f"{' (emulated, not measured)' if lat.get('measured_on') == 'emulated' else ''}",
        f"- prediction error: {lat['prediction_error']:+.1%} of measured",
    ]
    lines += [f"- **over a limit**: {v}" for v in budget.get("violations") or []]
    for d in m.get("devices") or []:
        state = "within" if d["within_budget"] else "OVER"
        lines.append(f"- {d['name']}: {state} its {d['budget_ms']:g} ms budget")
    return lines


def _verification(m: dict[str, Any], run: RunFiles) -> Markup:
    parity = {k: v for k, v in (m.get("parity") or {}).items() if "max_abs_diff" in v}
    rows = ["| runtime | samples | max abs diff vs PyTorch | top-1 agreement |",
            "| --- | ---: | ---: | ---: |"]  # fmt: skip
    rows += [f"| {k} | {v['samples']} | {v['max_abs_diff']:.2e} | {_pct(v.get('top1_agreement'))} |"
             for k, v in parity.items()]  # fmt: skip
    exported = ["", "Each exported model against PyTorch on the same inputs:", "", *rows]
    return md([*_verdict_lines(m), *(exported if parity else [])])


def _int8(m: dict[str, Any], run: RunFiles) -> Markup:
    rows = markdown.int8_rows(m)
    return md(rows) if rows else note("No int8 model in this run (exported in float32 only).")


def _deploy(m: dict[str, Any], run: RunFiles) -> Markup:
    if run.deploy_error:
        return note(f"`{DEPLOY_FILE}` is unreadable ({run.deploy_error}).")
    if run.deploy is None:
        where = (m.get("config") or {}).get("out") or str(run.root)
        return note(f"Not deployed yet: `edgeauto deploy {where} --device D`")
    rows = markdown.deploy_rows(run.deploy, m.get("artifacts") or {}, markdown.run_budget(m))
    return md(rows)


def _artifacts(m: dict[str, Any], run: RunFiles) -> Markup:
    return md(markdown.artifact_lines(m))


Builder = Callable[[dict[str, Any], RunFiles], Markup]

#: The page's sections in order: stable ids (anchors, tests), titles and builders.
SECTIONS: list[tuple[str, str, str, Builder]] = [
    ("summary", "Summary", "Summary", _summary),
    ("accuracy", "Accuracy", "Accuracy", _accuracy),
    ("latency", "Latency", "Latency (batch 1)", _latency),
    ("pareto", "Pareto", "Every evaluated architecture", _pareto),
    ("blocks", "Per block", "Per-block latency (final model)", _blocks),
    ("search", "Search", "Search curve", _search),
    ("verification", "Verification", "Verification", _verification),
    ("int8", "int8", "int8 (post-training full-integer quantization)", _int8),
    ("deploy", "Deployment", "Deployment", _deploy),
    ("artifacts", "Artifacts", "Artifacts", _artifacts),
]


def build_sections(m: dict[str, Any], run: RunFiles) -> list[Section]:
    """Every section of the page; one a manifest cannot fill says what it lacks."""
    out = []
    for sid, nav, title, builder in SECTIONS:
        try:
            body = builder(m, run)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # an older (or newer) manifest without a field this section reads
            why = f"no field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            body = note(f"This manifest lacks what this section needs ({why}); it was written "
                        "by another edgeauto version.")  # fmt: skip
        out.append(Section(sid, nav, title, body))
    return out
