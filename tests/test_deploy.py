"""``edgeauto deploy``: a real run's bundle checked and timed on this machine, on the loopback
OpenSSH "board" (conftest's sshd; its Python is this interpreter) and on the fake adb phone.

The run directory is built once (a small CNN on digits, 1 epoch, float32 + int8 exported) and
copied for each test, since deploy writes deploy.json and the report into it.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import adb_profile, assert_one_line_error, board_profile, python_without_litert

import edgeauto
from edgeauto.errors import AgreementFailed, ConfigError, RunnerError
from edgeauto.export.runtimes import get_runtime
from edgeauto.fileio import sha256_file
from edgeauto.testing.sshd import free_port

EXAMPLE = Path(__file__).parents[1] / "examples" / "custom_cnn.py"
FAST = {"runs": 30, "warmup": 1, "rounds": 1}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished compress run (read-only: tests deploy a copy, :func:`run_dir`)."""
    out = tmp_path_factory.mktemp("deploy") / "run"
    edgeauto.compress(model=f"{EXAMPLE}:build", device="host", latency_ms=50.0, dataset="digits",
                      epochs=1, finetune_epochs=0, int8=True, measure_runs=20, out=str(out),
                      check=False)  # fmt: skip
    return out


@pytest.fixture
def run_dir(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "run"))


def _check_doc(run_dir: Path, doc: dict, connection: str, artifact: str = "model.tflite") -> None:
    """deploy.json on disk is ``doc``, in the schema, agreeing and timed; the report has it."""
    assert json.loads((run_dir / "deploy.json").read_text()) == doc
    assert list(doc) == ["schema_version", "device", "connection", "host", "runtime",
                         "runtime_version", "python", "artifact", "agreement", "latency_ms",
                         "cpu_affinity", "date"]  # fmt: skip
    assert doc["schema_version"] == 1 and doc["connection"] == connection
    assert doc["artifact"] == {"file": artifact, "sha256": sha256_file(run_dir / artifact)}
    a, lat = doc["agreement"], doc["latency_ms"]
    assert a["samples"] == 128 and a["threshold"] == 0.99 and a["ok"] is True
    assert a["top1"] >= 0.99
    assert 0 < lat["median"] <= lat["p90"]
    report = (run_dir / "report.md").read_text()
    assert (
        "## Deploy" in report and f"`{artifact}` (sha256 {doc['artifact']['sha256'][:12]}" in report
    )
    page = (run_dir / "report.html").read_text()
    section = page[page.index('<section id="deploy">') :]
    section = section[: section.index("</section>")]
    assert doc["artifact"]["sha256"][:12] in section and "Not deployed yet" not in section


def test_the_bundle_ships_a_sample_with_the_hosts_answers(bundle: Path, tmp_path: Path) -> None:
    sample = bundle / "sample.npz"
    assert sample.stat().st_size < 100_000  # 128 digits; CIFAR: about 400 kB
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["artifacts"]["sample"]["sha256"] == sha256_file(sample)
    with np.load(sample) as z:
        arrays = {k: z[k] for k in z.files}
    assert set(arrays) == {"images", "labels", "top1:model.tflite", "top1:model_int8.tflite",
                           "top1:model.onnx"}  # fmt: skip
    assert arrays["images"].shape == (128, 8, 8, 1) and arrays["labels"].shape == (128,)
    # the host's answers are infer.py's own on this machine, read from the same .npz
    r = subprocess.run([sys.executable, str(bundle / "infer.py"), str(sample), "--top", "1"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    labels = (bundle / "labels.txt").read_text().split("\n")
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [ln["image"] for ln in lines[:2]] == [f"{sample}[0]", f"{sample}[1]"]
    assert [ln["top"][0]["label"] for ln in lines] == [
        labels[k] for k in arrays["top1:model.tflite"]
    ]
    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=arrays["images"])
    r = subprocess.run([sys.executable, str(bundle / "infer.py"), str(bad)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and "no 'images' array" in r.stderr


def test_deploy_on_this_machine(run_dir: Path) -> None:
    doc = edgeauto.deploy(run_dir, "host", **FAST)
    _check_doc(run_dir, doc, "local")
    assert doc["host"] == "local" and doc["python"] == platform.python_version()
    assert doc["runtime"] == "litert" and doc["runtime_version"] == get_runtime("litert").version()
    assert doc["cpu_affinity"]  # the host profile pins (auto): the cores it timed on
    onnx = edgeauto.deploy(run_dir, "host", artifact="model.onnx", **FAST)
    _check_doc(run_dir, onnx, "local", "model.onnx")
    assert onnx["runtime"] == "onnxruntime"
    with pytest.raises(ConfigError, match=r"'reference.tflite' is not a model of the bundle"):
        edgeauto.deploy(run_dir, "host", artifact="reference.tflite", **FAST)


def test_deploy_to_the_loopback_board(sshd, ssh_keys, run_dir: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "board"
    profile = board_profile(sshd, ssh_keys, workdir)
    doc = edgeauto.deploy(run_dir, profile, artifact="model_int8.tflite", **FAST)
    print(json.dumps(doc, indent=2))  # the record the integrator quotes (pytest -s)
    _check_doc(run_dir, doc, "ssh", "model_int8.tflite")
    assert doc["host"] == profile.connection.target() and doc["device"] == "test-board"
    # what the board reported: its runtime and Python (this interpreter, reached over ssh)
    assert doc["runtime_version"] == get_runtime("litert").version()
    assert doc["python"] == platform.python_version() and doc["cpu_affinity"] == [0]
    assert workdir.is_dir() and list(workdir.iterdir()) == []  # each call cleans up
    assert "over ssh" in (run_dir / "report.md").read_text()


def test_cli_deploys_over_ssh_and_an_unreachable_board_is_one_line(
    sshd, ssh_keys, run_dir: Path, tmp_path: Path, cli
) -> None:
    data = board_profile(sshd, ssh_keys, tmp_path / "board").model_dump(mode="json")
    data.pop("source")
    data["connection"]["port"] = 22  # overridden by --host below
    yml = tmp_path / "test-board.yaml"
    yml.write_text(yaml.safe_dump(data))
    ok = cli("deploy", str(run_dir), "--device", str(yml), "--host", f"127.0.0.1:{sshd.port}",
             "--runs", "30")  # fmt: skip
    assert ok.exit_code == 0, ok.stderr
    flat = "".join(ok.stdout.split())  # the table folds long cells at the terminal's width
    assert "100.0%of128(ok)" in flat and str(run_dir / "deploy.json") in flat
    (run_dir / "deploy.json").unlink()
    port = free_port()  # nobody listens there
    bad = cli("deploy", str(run_dir), "--device", str(yml), "--host", f"127.0.0.1:{port}")
    assert_one_line_error(bad, "RunnerError", "cannot reach", f"127.0.0.1:{port}")
    assert not (run_dir / "deploy.json").exists()


def test_a_board_without_the_runtime_is_one_line(sshd, ssh_keys, run_dir: Path, tmp_path) -> None:
    python = python_without_litert(tmp_path)
    profile = board_profile(sshd, ssh_keys, tmp_path / "b", python=str(python))
    with pytest.raises(RunnerError, match=r"127\.0\.0\.1:\d+ has no litert.*ai-edge-litert") as e:
        edgeauto.deploy(run_dir, profile, **FAST)
    assert "\n" not in str(e.value) and e.value.exit_code == 2
    assert not (run_dir / "deploy.json").exists()


def test_deploy_to_a_phone_times_without_checking(phone, run_dir: Path) -> None:
    """Phones run no Python: the recorded benchmark_model output is the latency, and
    deploy.json says the agreement was not checked, and why."""
    doc = edgeauto.deploy(run_dir, adb_profile(phone), **FAST)
    assert doc["connection"] == "adb" and doc["python"] is None
    assert doc["agreement"]["top1"] is None and doc["agreement"]["ok"] is None
    assert "run no Python" in doc["agreement"]["reason"] and doc["agreement"]["samples"] == 128
    assert doc["latency_ms"]["median"] == 0.098  # litert_percentiles.txt: median=98 us
    assert doc["runtime_version"].startswith("benchmark_model sha256:")
    assert doc["cpu_affinity"] == [0, 1, 2, 3]
    assert "not checked (adb devices run no Python" in (run_dir / "report.md").read_text()
    assert "not checked (adb devices run no Python" in (run_dir / "report.html").read_text()
    with pytest.raises(ConfigError, match=r"runs \.tflite files, not model\.onnx"):
        edgeauto.deploy(run_dir, adb_profile(phone), artifact="model.onnx", **FAST)


def test_disagreeing_answers_fail_with_exit_3(run_dir: Path, cli) -> None:
    """A sample whose host answers are not the model's (each shifted by one class): the
    board disagrees on every image; deploy.json and the report say so, exit 3."""
    with np.load(run_dir / "sample.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["top1:model.tflite"] = (arrays["top1:model.tflite"] + 1) % 10
    np.savez(run_dir / "sample.npz", **arrays)
    r = cli("deploy", str(run_dir), "--device", "host", "--runs", "30")
    assert r.exit_code == 3, r.stderr
    assert r.stderr.startswith("error: AgreementFailed: host agrees with this machine on 0.0%")
    assert len(r.stderr.splitlines()) == 1 and "FAILED" in r.stdout
    doc = json.loads((run_dir / "deploy.json").read_text())
    assert doc["agreement"]["top1"] == 0.0 and doc["agreement"]["ok"] is False
    assert "**FAILED**" in (run_dir / "report.md").read_text()
    with pytest.raises(AgreementFailed):
        edgeauto.deploy(run_dir, "host", **FAST)
    assert edgeauto.deploy(run_dir, "host", check=False, **FAST)["agreement"]["ok"] is False


def test_a_run_without_a_sample_or_no_run_is_one_line(run_dir: Path, cli) -> None:
    (run_dir / "sample.npz").unlink()
    r = cli("deploy", str(run_dir), "--device", "host")
    assert_one_line_error(
        r, "RunDirError", "no sample.npz", f"edgeauto compress --resume {run_dir}"
    )
    r = cli("deploy", str(run_dir / "nowhere"), "--device", "host")
    assert_one_line_error(r, "RunDirError", "holds no manifest.json")


def test_the_report_flags_a_deploy_of_an_older_artifact(run_dir: Path) -> None:
    from edgeauto.report.markdown import deploy_lines

    doc = edgeauto.deploy(run_dir, "host", **FAST)
    artifacts = json.loads((run_dir / "manifest.json").read_text())["artifacts"]
    assert not any("stale" in line for line in deploy_lines(doc, artifacts))
    artifacts["tflite"]["sha256"] = "0" * 64  # the run exported a new model.tflite since
    assert any("**stale**" in line for line in deploy_lines(doc, artifacts))
