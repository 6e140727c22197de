"""``report.html`` in a real browser (headless Debian Chromium) and from every kind of manifest.

The run is a real one: ``tests/data/report_run`` holds the manifest and trials of a
``make run`` (MNIST, fbnet-lite, host). Set ``EDGEAUTO_REPORT_PNG=docs/img/report.png`` to
keep the screenshot (palette-quantized) for the docs.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from edgeauto.report import render_run_dir
from edgeauto.report.html import render_html
from edgeauto.report.sections import SECTIONS
from edgeauto.search.dnas import CurvePoint

RUN = Path(__file__).parent / "data" / "report_run"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IDS = [sid for sid, *_ in SECTIONS]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run does)"
)
DEPLOY = {
    "schema_version": 1, "device": "pi5", "connection": "ssh", "host": "pi@10.0.0.7",
    "runtime": "litert", "runtime_version": "2.3.0", "python": "3.11.2",
    "artifact": {"file": "model.tflite",
                 "sha256": "36cce35bc3ed01877739741464b670558150e7b93e86d2ef2d65628c61a55880"},
    "agreement": {"top1": 0.995, "samples": 200, "threshold": 0.99, "ok": True},
    "latency_ms": {"median": 0.081, "p90": 0.09, "repeatability": 0.012},
    "cpu_affinity": [2, 3], "date": "2026-12-06T10:00:00+00:00",
}  # fmt: skip


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A copy of the real run's directory (manifest.json, trials.jsonl) to render into."""
    out = tmp_path / "run"
    shutil.copytree(RUN, out)
    return out


def _manifest() -> dict[str, Any]:
    return json.loads((RUN / "manifest.json").read_text())


def _sections(page: str) -> dict[str, str]:
    """Each ``<section id=...>``'s inner HTML, by id."""
    found = re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S)
    return dict(found)


def _chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", *args,
            page.as_uri()]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def _dom(tmp_path: Path, page: Path) -> str:
    return _chromium(tmp_path, page, "--dump-dom").stdout


def _near(pixels: list[tuple[int, ...]], rgb: tuple[int, int, int], tol: int = 40) -> int:
    return sum(all(abs(p[i] - rgb[i]) <= tol for i in range(3)) for p in pixels)


@needs_chromium
def test_screenshot_shows_the_page_and_its_chart(run_dir: Path, tmp_path: Path) -> None:
    page = render_run_dir(run_dir)
    shot = tmp_path / "report.png"
    _chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,4100")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 4100)
    pixels = list(image.getdata())
    assert len(set(pixels)) > 500  # text, tables and charts, not a blank or one-colour page
    assert sum(p != (255, 255, 255) for p in pixels) / len(pixels) > 0.2
    # the Pareto chart's markers were drawn: the trials' blue and the final model's red star
    assert _near(pixels, (0x25, 0x63, 0xEB)) > 200 and _near(pixels, (0xDC, 0x26, 0x26)) > 100
    if target := os.environ.get("EDGEAUTO_REPORT_PNG"):
        _save_for_docs(image, Path(target))


def _save_for_docs(image: Image.Image, target: Path) -> None:
    """The page down to its last drawn row, in 256 colours (about 150 kB)."""
    background = image.getpixel((0, image.height - 1))
    rows = [y for y in range(image.height) if image.crop((0, y, image.width, y + 1)).getcolors(1)
            != [(image.width, background)]]  # fmt: skip
    page = image.crop((0, 0, image.width, min(image.height, rows[-1] + 24)))
    buf = io.BytesIO()
    page.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", optimize=True)
    target.write_bytes(buf.getvalue())


@needs_chromium
def test_dom_holds_every_section_and_rendered_charts_without_script_errors(
    run_dir: Path, tmp_path: Path
) -> None:
    dom = _dom(tmp_path, render_run_dir(run_dir))
    errors = re.search(r'<html[^>]*data-script-errors="([^"]*)"', dom)
    assert errors and errors[1] == "", errors and errors[1]
    sections = _sections(dom)
    assert list(sections) == IDS
    for sid in ("pareto", "search"):  # plotly drew each chart: its SVG layers exist
        assert 'class="main-svg"' in sections[sid] and "plot-container" in sections[sid], sid
    assert "Not deployed yet" in sections["deploy"]


@needs_chromium
def test_the_error_probe_records_a_script_error(run_dir: Path, tmp_path: Path) -> None:
    """The probe the test above relies on does see an error thrown in the page."""
    page = render_run_dir(run_dir)
    text = page.read_text().replace("</body>", "<script>throw new Error('boom')</script></body>")
    page.write_text(text)
    errors = re.search(r'<html[^>]*data-script-errors="([^"]*)"', _dom(tmp_path, page))
    assert errors and "boom" in errors[1]


@needs_chromium
@pytest.mark.parametrize(
    ("curve", "shown"),
    [
        (0, ["trial 0", "arch 16:[k3_e3,k3_e3] 32:[k5_e6,k5_e6] 64:[k5_e6,k5_e6]",
             "0.0576 ms (measured)", "accuracy 0.8780"]),
        (2, ["final model", "arch 16:[k3_e1,k3_e3] 32:[k5_e6,k5_e6] 64:[k5_e6,k5_e6]",
             "0.0543 ms (measured)", "val accuracy 0.9640"]),
    ],
)  # fmt: skip
def test_hovering_a_pareto_point_shows_arch_latency_and_accuracy(
    run_dir: Path, tmp_path: Path, curve: int, shown: list[str]
) -> None:
    page = render_run_dir(run_dir)
    hover = ('<script>window.addEventListener("load", () => Plotly.Fx.hover("pareto-chart", '
             f"[{{curveNumber: {curve}, pointNumber: 0}}]));</script></body>")  # fmt: skip
    page.write_text(page.read_text().replace("</body>", hover))
    dom = _dom(tmp_path, page)
    label = re.search(r'id="pareto-chart".*?class="hoverlayer">(.*?)</svg>', dom, flags=re.S)
    assert label, "no hover layer in the Pareto chart"
    text = " ".join(re.sub(r"<[^>]+>", " ", label[1]).split())
    assert all(s in text for s in shown), text


def test_page_is_self_contained_and_inlines_plotly_once(run_dir: Path) -> None:
    page = render_run_dir(run_dir).read_text()
    assert page.startswith("<!doctype html>")
    assert not re.search(r"<(script|img|link)[^>]+(src|href)=", page)  # nothing fetched
    assert page.count("plotly.js v") == 1 and page.count("Plotly.newPlot(") == 2
    assert 4_000_000 < len(page) < 6_000_000
    trials = [json.loads(x) for x in (RUN / "trials.jsonl").read_text().splitlines()]
    assert "16:[k3_e3,k3_e3] 32:[k5_e6,k5_e6] 64:[k5_e6,k5_e6]" in page  # trial 0's arch, hovered
    assert len(trials) == 3


def test_sections_read_the_manifest(run_dir: Path) -> None:
    s = _sections(render_run_dir(run_dir).read_text())
    # the pruning trace nests under its bullet
    assert re.search(r"<li>pruning: .*?<ul>\s*<li>costs below", s["summary"], flags=re.S)
    assert "0.9580" in s["accuracy"] and "0.9240" in s["accuracy"]  # test; the search's pick
    assert "Timed on cores 1 only (pinned)" in s["latency"] and "±2.1%" in s["latency"]
    assert s["blocks"].count("<tr>") == 1 + 8 + 2  # head, 8 blocks, two sums
    assert "<strong>PASS</strong>" in s["verification"] and "3.81e-06" in s["verification"]
    assert "99.80% of 500" in s["int8"] and "model_int8.tflite" in s["int8"]
    assert "edgeauto deploy runs/default --device D" in s["deploy"]


def test_deploy_section_reads_deploy_json(run_dir: Path) -> None:
    (run_dir / "deploy.json").write_text(json.dumps(DEPLOY))
    s = _sections(render_run_dir(run_dir).read_text())["deploy"]
    assert "pi5 over ssh" in s and "litert 2.3.0" in s and "99.50% of 200" in s
    assert "median 0.0810 ms" in s and "<strong>over</strong> the run's 0.06 ms budget" in s
    assert "this run's artifact" in s and "cores: 2, 3" in s
    other = {**DEPLOY, "artifact": {"file": "model.tflite", "sha256": "0" * 64}}
    (run_dir / "deploy.json").write_text(json.dumps(other))
    s = _sections(render_run_dir(run_dir).read_text())["deploy"]
    assert "<strong>not</strong> an artifact of this run" in s
    (run_dir / "deploy.json").write_text("{not json")
    assert "is unreadable" in _sections(render_run_dir(run_dir).read_text())["deploy"]


def _old(m: dict[str, Any]) -> dict[str, Any]:
    """A manifest from before int8, the analysis, calibration, pinning and footprints."""
    for key in ("analysis", "search", "devices"):
        m.pop(key)
    m["parity"].pop("litert_int8")
    for key in ("fp32", "int8", "test"):
        m["accuracy"].pop(key)
    for key in ("calibration", "reference", "cpu_affinity", "repeatability", "predictor"):
        m["latency"].pop(key)
    m["budget"].pop("footprint")
    return m


def _compress_only(m: dict[str, Any]) -> dict[str, Any]:
    """``edgeauto compress --model``: a user's module, per-layer table, no search."""
    m.update(arch=None, space=None, model="mymodels.py:build", search=None)
    m["analysis"] = {"pareto": [], "breakdown": []}
    m["table"] = {"kind": "layers", "copy": None}
    return m


def _supernet(m: dict[str, Any]) -> dict[str, Any]:
    """A ``dnas`` search: its per-epoch curve instead of trials."""
    curve = [CurvePoint(e, "search", 0.5 + e / 10, 0.07 - e / 100, 0.068 - e / 100, 90_000, 12.0,
                        40.0, 1.0, 0.6, 0.06, 0.0, 1.0, 0, 0, 0) for e in range(4)]  # fmt: skip
    m["search"] = {"curve": [asdict(p) for p in curve]}
    m["analysis"]["pareto"] = []
    return m


@pytest.mark.parametrize("variant", [_old, _compress_only, _supernet])
def test_every_section_tolerates_missing_data(variant, tmp_path: Path) -> None:
    m = variant(copy.deepcopy(_manifest()))
    s = _sections(render_html(m, tmp_path))  # an empty run dir: no trials, no deploy.json
    assert list(s) == IDS
    assert not any("lacks what this section needs" in body for body in s.values())
    assert "Not deployed yet" in s["deploy"]
    if variant is not _supernet:
        assert "No search in this run" in s["search"] and "No Pareto points" in s["pareto"]
    if variant is _old:
        assert "No int8 model" in s["int8"] and "No per-block latencies" in s["blocks"]
    if variant is _supernet:
        assert 'id="search-chart"' in s["search"] and "<summary>per epoch</summary>" in s["search"]


def test_a_section_without_its_field_says_so_and_the_page_renders(tmp_path: Path) -> None:
    m = _manifest()
    del m["latency"]["prediction_error"]
    s = _sections(render_html(m, tmp_path))
    assert "lacks what this section needs (no field 'prediction_error')" in s["verification"]
    assert "<table>" in s["latency"]  # the other sections are whole


def test_a_page_without_charts_does_not_carry_plotly(tmp_path: Path) -> None:
    page = render_html(_compress_only(_manifest()), tmp_path)
    assert "plotly.js v" not in page and len(page) < 100_000


def test_markdown_in_the_manifest_is_escaped(tmp_path: Path) -> None:
    m = _compress_only(_manifest())
    m["model"] = "<script>alert(1)</script>.py:build"
    page = render_html(m, tmp_path)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
