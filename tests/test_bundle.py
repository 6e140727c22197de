"""The deployable bundle of a run: int8 beside float32, and infer.py in a clean venv and on
JPEG/PNG files and folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import edgeauto
from edgeauto.export.runtimes import get_runtime

LOCK = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, micro_tables: Path) -> Path:
    tables = tmp_path_factory.mktemp("bundle-tables")
    shutil.copytree(micro_tables, tables, dirs_exist_ok=True)
    out = tmp_path_factory.mktemp("bundle") / "run"
    edgeauto.run(check=False, device="host", latency_ms=1.0, dataset="digits", space="fbnet-micro", trials=1,
                 epochs=6, tables=str(tables), out=str(out))  # fmt: skip
    return out


def _pgm(path: Path, pixels: np.ndarray, top: int) -> Path:
    """A binary PGM (P5) of 2-D integer ``pixels`` with the given maxval."""
    h, w = pixels.shape
    path.write_bytes(f"P5\n{w} {h}\n{top}\n".encode() + pixels.astype(np.uint8).tobytes())
    return path


def test_bundle_files_and_manifest(run_dir: Path) -> None:
    m = json.loads((run_dir / "manifest.json").read_text())
    assert {"onnx", "tflite", "tflite_int8", "labels", "preprocess", "infer"} <= set(m["artifacts"])
    q = m["parity"]["litert_int8"]
    assert q["samples"] == m["dataset"]["val"] and 0.9 <= q["agreement"] <= 1.0, q
    assert m["latency"]["measured"]["litert_int8_ms"] > 0  # timed beside float32
    pre = json.loads((run_dir / "preprocess.json").read_text())
    # normalised with the training split's statistics, the same the manifest records
    assert pre["pixel_max"] == 16.0 and pre["mean"] == m["dataset"]["mean"]
    assert 0.0 < pre["mean"][0] < 1.0 and pre["std"] == m["dataset"]["std"]
    report = (run_dir / "report.md").read_text()
    assert "## int8" in report and "top-1 agreement with float32" in report


def test_resume_keeps_the_int8_check(run_dir: Path, micro_tables: Path) -> None:
    m = json.loads((run_dir / "manifest.json").read_text())
    tables = Path(m["table"]["path"]).parents[3]  # <tables>/<device>/<runtime>/<fp32-t1>/
    again = edgeauto.run(check=False, device="host", latency_ms=1.0, dataset="digits", space="fbnet-micro",
                         trials=1, epochs=6, tables=str(tables), out=str(run_dir), resume=True)  # fmt: skip
    assert again["parity"]["litert_int8"] == m["parity"]["litert_int8"]


def _pin(name: str) -> str:
    for line in LOCK.read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.strip()
    return name


@pytest.fixture(scope="module")
def clean_venvs(tmp_path_factory) -> dict[str, Path]:
    """Two fresh venvs: numpy + ai-edge-litert, and numpy + onnxruntime; nothing else."""
    root = tmp_path_factory.mktemp("venvs")
    pythons = {}
    for runtime in ("ai-edge-litert", "onnxruntime"):
        venv = root / runtime
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        r = subprocess.run([*pip, _pin("numpy"), _pin(runtime)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot install {runtime} into a clean venv: {r.stderr[-300:]}")
        pythons[runtime] = venv / "bin" / "python"
    return pythons


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runtime", "model"),
    [("ai-edge-litert", "model.tflite"), ("ai-edge-litert", "model_int8.tflite"),
     ("onnxruntime", "model.onnx")],
)  # fmt: skip
def test_infer_py_in_a_clean_venv(
    run_dir: Path, clean_venvs: dict[str, Path], digits, tmp_path: Path, runtime: str, model: str
) -> None:
    python = clean_venvs[runtime]
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0, "the clean venv must not have torch"
    x, pixels = digits.x_val[:5], digits.x_val.raw[:5]  # the model's input; the image file's
    session = get_runtime("onnxruntime").load(run_dir / "model.onnx", 1)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for i, xi in enumerate(x):
        image = _pgm(tmp_path / f"{i}.pgm", np.round(pixels[i][0].numpy()), top=16)
        r = subprocess.run(
            [str(python), str(run_dir / "infer.py"), str(image), "--model", str(run_dir / model)],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        out = json.loads(r.stdout)
        want = int(np.argmax(session.run(xi[None].numpy())))
        assert out["model"] == model and len(out["top"]) == 3
        assert out["top"][0]["label"] == str(want), (out, want)
        assert 0 < sum(t["p"] for t in out["top"]) <= 1.001  # probabilities, not logits


def test_infer_py_rejects_a_non_image(run_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "x.pgm"
    bad.write_bytes(b"hello")
    r = subprocess.run([sys.executable, str(run_dir / "infer.py"), str(bad)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0 and "not a binary PGM/PPM" in r.stderr


def _infer(run_dir: Path, *args: str, python: tuple[str, ...] = (sys.executable,)):
    return subprocess.run([*python, str(run_dir / "infer.py"), *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_infer_py_reads_jpeg_and_png_files_and_folders(
    run_dir: Path, digits, tmp_path: Path
) -> None:
    """Real 8-bit image files (the digits are 0..16): a PNG at the input size and a larger RGB
    JPEG, which infer.py converts to grayscale and resizes; one JSON line per image."""
    folder = tmp_path / "images"
    folder.mkdir()
    gray = [np.round(p[0].numpy() * 255 / 16).astype(np.uint8) for p in digits.x_val.raw[:2]]
    Image.fromarray(gray[0]).save(folder / "a.png")
    rgb = Image.fromarray(np.repeat(gray[1][..., None], 3, 2)).resize((32, 32), Image.NEAREST)
    rgb.save(folder / "b.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")  # a folder's other files are skipped
    r = _infer(run_dir, str(folder), "--model", str(run_dir / "model.onnx"))
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [Path(line["image"]).name for line in lines] == ["a.png", "b.jpg"]
    session = get_runtime("onnxruntime").load(run_dir / "model.onnx", 1)
    want = int(np.argmax(session.run(digits.x_val[:1].numpy())))  # the normalised input
    assert lines[0]["top"][0]["label"] == str(want), (lines[0], want)
    for line in lines:
        assert line["model"] == "model.onnx" and len(line["top"]) == 3
        assert 0 < sum(t["p"] for t in line["top"]) <= 1.001
    one = _infer(run_dir, str(folder / "b.jpg"), "--model", str(run_dir / "model.onnx"))
    assert one.returncode == 0 and json.loads(one.stdout)["top"] == lines[1]["top"]


def test_infer_py_without_pillow_names_the_install(run_dir: Path, tmp_path: Path) -> None:
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    _pgm(tmp_path / "a.pgm", np.zeros((8, 8)), top=16)
    # Python with Pillow unimportable (None in sys.modules), then infer.py as __main__
    hide = ("import runpy, sys; sys.modules['PIL'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")  # fmt: skip
    python = (sys.executable, "-c", hide)
    r = _infer(run_dir, str(tmp_path / "a.png"), python=python)
    assert r.returncode != 0 and r.stdout == "" and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]  # the runtime may log a line of its own first
    assert last.startswith(f"{tmp_path / 'a.png'}: ") and "(pip install pillow)" in last
    ok = _infer(run_dir, str(tmp_path / "a.pgm"), python=python)  # PGM needs no Pillow
    assert ok.returncode == 0 and len(json.loads(ok.stdout)["top"]) == 3, ok.stderr[-2000:]


def test_report_html_is_self_contained_with_pareto_and_breakdown(run_dir: Path) -> None:
    m = json.loads((run_dir / "manifest.json").read_text())
    points = m["analysis"]["pareto"]
    trials = [json.loads(x) for x in (run_dir / "trials.jsonl").read_text().splitlines()]
    assert len(points) == len({json.dumps(t["arch"]) for t in trials if t["status"] == "ok"})
    assert all(p["measured_ms"] and p["measured_ms"] > 0 for p in points)  # host: all timed
    rows = m["analysis"]["breakdown"]
    assert rows and all(r["measured_alone_ms"] > 0 for r in rows)
    assert (run_dir / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    page = (run_dir / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("plotly.js v") == 1  # inlined once
    assert not re.search(r"<(script|img|link)[^>]+(src|href)=", page)  # nothing fetched
    sections = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S))
    assert 'id="pareto-chart"' in sections["pareto"] and 'id="search-chart"' in sections["search"]
    assert sections["blocks"].count("<tr>") == 1 + len(rows) + 2  # head, blocks, two sums
    assert "top-1 agreement with float32" in sections["int8"]
