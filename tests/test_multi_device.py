"""Several devices in one run: one searched and compressed model per device."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import MICRO, assert_one_line_error

from edgeauto.devices.profile import profiles_dir


@pytest.mark.slow
def test_one_model_per_device(cli, tmp_path: Path, micro_tables: Path) -> None:
    tables = tmp_path / "tables"
    shutil.copytree(micro_tables, tables)
    # a second local device: this machine on ONNX Runtime, with its own table and budget
    text = (profiles_dir() / "host.yaml").read_text()
    other = tmp_path / "host-ort.yaml"
    other.write_text(
        text.replace("name: host", "name: host-ort").replace(
            "runtime: litert", "runtime: onnxruntime"
        )
    )
    r = cli(
        "run", "--device", "host", "--device", str(other), "--latency-ms", "1.0",
        "--latency-ms", "2.0", "--dataset", "digits", "--space", MICRO, "--trials", "1",
        "--epochs", "2", "--tables", str(tables), "--out", str(tmp_path / "out"), "--no-int8",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    for name, budget, runtime in (("host", 1.0, "litert"), ("host-ort", 2.0, "onnxruntime")):
        m = json.loads((tmp_path / "out" / name / "manifest.json").read_text())
        assert m["device"]["name"] == name and m["budget"]["latency_ms"] == budget
        assert m["latency"]["runtime"] == runtime
    assert "== host: 1 ms ==" in r.output and "== host-ort: 2 ms ==" in r.output


def test_device_and_budget_counts_must_match(cli, tmp_path: Path) -> None:
    r = cli("run", "--device", "host", "--device", "pixel-7", "--latency-ms", "1",
            "--latency-ms", "2", "--latency-ms", "3", "--out", str(tmp_path / "x"))  # fmt: skip
    assert_one_line_error(r, "ConfigError", "one per device")
    r = cli("run", "--device", "host", "--device", "host", "--out", str(tmp_path / "x"))
    assert_one_line_error(r, "ConfigError", "names a device twice")
