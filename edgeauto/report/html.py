"""``report.html``: the run as one self-contained, interactive page.

A Jinja2 template (``templates/report.html.j2``, shipped as package data) lays out the
sections of :mod:`edgeauto.report.sections`; plotly.js is inlined once, so the page works
offline (from a board's SD card, or mailed) at about 5 MB. A small script records any
script error in the page's ``data-script-errors`` attribute, which the browser test reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from edgeauto.fileio import write_text
from edgeauto.manifest import Manifest
from edgeauto.report.sections import RunFiles, build_sections

TEMPLATE = "report.html.j2"
HTML_REPORT = "report.html"


def _env() -> Environment:
    return Environment(loader=PackageLoader("edgeauto.report", "templates"), autoescape=True)


def _card(label: str, value: str, tone: str = "") -> dict[str, str]:
    return {"label": label, "value": value, "tone": tone}


def cards(m: dict[str, Any], run: RunFiles) -> list[dict[str, str]]:
    """The headline figures at the top of the page; a figure the manifest lacks is left out."""
    lat, acc, budget = m.get("latency") or {}, m.get("accuracy") or {}, m.get("budget") or {}
    out = []
    if "within_budget" in lat:
        ok = Manifest(m).within_budget
        out.append(_card("verdict", "PASS" if ok else "FAIL", "good" if ok else "bad"))
    if lat.get("measured_ms") is not None and budget.get("latency_ms") is not None:
        out.append(_card(f"measured on {lat.get('runtime', '?')}",
                         f"{lat['measured_ms']:.4f} ms / {budget['latency_ms']:g} ms budget"))  # fmt: skip
    for key, label in (("test", "test accuracy"), ("val", "validation accuracy")):
        if acc.get(key) is not None:
            out.append(_card(label, f"{acc[key]:.4f}"))
    fp = budget.get("footprint") or {}
    if fp.get("params") is not None:
        out.append(_card("model", f"{fp['params']:,} params, {fp['size_bytes'] / 1000:.1f} kB"))
    if run.deploy:
        out.append(_card("deployed", str(run.deploy.get("device", "?")), "good"))
    return out


def render_html(m: dict[str, Any], root: Path) -> str:
    """The page for manifest document ``m`` of the run directory ``root``."""
    run = RunFiles.read(root)
    sections = build_sections(m, run)
    charts = any("plotly-graph-div" in s.body for s in sections)
    plotlyjs = ""
    if charts:  # a page without a chart (a compress-only run) need not carry the library
        from plotly.offline import get_plotlyjs

        plotlyjs = get_plotlyjs()
    device = (m.get("device") or {}).get("name", "?")
    template = _env().get_template(TEMPLATE)
    return template.render(
        title=f"edgeauto run on {device}",
        created=m.get("created"),
        version=m.get("edgeauto_version"),
        cards=cards(m, run),
        sections=sections,
        plotlyjs=Markup(plotlyjs),
    )


def write_html(path: Path, m: dict[str, Any]) -> Path:
    """Write ``report.html`` for manifest document ``m`` atomically; the run directory is
    ``path``'s folder."""
    write_text(path, render_html(m, path.parent))
    return path


def render_run_dir(run_dir: str | Path) -> Path:
    """Re-render ``report.html`` of a finished run from its ``manifest.json`` (and
    ``deploy.json`` when present), e.g. after ``edgeauto deploy``; the page's path."""
    root = Path(run_dir)
    manifest = Manifest.load(root / "manifest.json")
    return write_html(root / HTML_REPORT, manifest.data)
