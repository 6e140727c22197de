"""Several devices in one run: one searched and compressed model per device."""

from __future__ import annotations

import json
import random
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


def _ort_host(tmp_path: Path) -> Path:
    """This machine on ONNX Runtime, as a second local device with its own table."""
    text = (profiles_dir() / "host.yaml").read_text()
    path = tmp_path / "host-ort.yaml"
    path.write_text(
        text.replace("name: host", "name: host-ort").replace(
            "runtime: litert", "runtime: onnxruntime"
        )
    )
    return path


@pytest.mark.slow
def test_one_model_meets_every_devices_budget(cli, tmp_path: Path, micro_tables: Path) -> None:
    from edgeauto.devices.profile import load_profile
    from edgeauto.latency.device import open_table
    from edgeauto.progress import NullReporter
    from edgeauto.spaces import Arch, get_space

    tables = tmp_path / "tables"
    shutil.copytree(micro_tables, tables)
    other = _ort_host(tmp_path)
    space = get_space(MICRO, (1, 8, 8), 10)
    _, ort = open_table(load_profile(str(other)), space, NullReporter(), tables)
    rng = random.Random(0)
    costs = sorted(ort.predict(space.blocks(space.sample(rng))) for _ in range(40))
    tight = costs[len(costs) // 3]  # ONNX Runtime binds: most of the space is over it
    r = cli(
        "run", "--device", "host", "--device", str(other), "--one-model", "--latency-ms", "50",
        "--latency-ms", str(tight), "--dataset", "digits", "--space", MICRO, "--trials", "3",
        "--epochs", "1", "--tables", str(tables), "--out", str(tmp_path / "out"), "--no-int8",
        "--tolerance", "5", "--mode", "joint",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())  # one model, one folder
    assert m["config"]["also"] == [[str(other), tight]]
    (d,) = m["devices"]
    assert d["name"] == "host-ort" and d["runtime"] == "onnxruntime" and d["budget_ms"] == tight
    assert d["measured_on"] == "device" and d["measured_ms"] > 0
    # the searched archs and the pruned model keep to the tight device's budget, by its table
    for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines():
        arch = Arch.from_json(json.loads(line)["arch"])
        assert ort.predict(space.blocks(arch)) <= tight * (1 + 1e-9)
    assert d["predicted_ms"] <= tight * (1 + 1e-9)
    # the manifest's own latency is the first device's, not the worst case in its units
    assert m["latency"]["predicted_ms"] < 1.0 and m["latency"]["runtime"] == "litert"
    assert "The same model on the other devices" in (tmp_path / "out" / "report.md").read_text()


def test_worst_case_is_the_tightest_budget_in_the_first_devices_ms(micro_table) -> None:
    from edgeauto.devices.profile import load_profile
    from edgeauto.latency.predictor import MeasuringPredictor
    from edgeauto.latency.worst_case import Member, WorstCasePredictor
    from edgeauto.spaces import get_space
    from edgeauto.testing.conformance import MacsLatency

    space = get_space(MICRO, (1, 8, 8), 10)
    table = MeasuringPredictor(micro_table)
    host, phone = load_profile("host"), load_profile("pixel-7")
    keys = list(space.blocks(space.sample(random.Random(1))))
    host_ms, macs_ms = table.predict(keys), MacsLatency().predict(keys)
    for phone_budget in (macs_ms * 10, macs_ms / 10):  # the phone loose, then binding
        worst = WorstCasePredictor(
            [Member(host, 2 * host_ms, table), Member(phone, phone_budget, MacsLatency())]
        )
        want = 2 * host_ms * max(0.5, macs_ms / phone_budget)
        assert worst.predict(keys) == pytest.approx(want)
        assert worst.binding(keys) == ("host" if phone_budget > macs_ms else "pixel-7")
        for k in keys:  # per block: the worse of the two, in the host's budget units
            host_part = table.block_ms(k) / (2 * host_ms)
            phone_part = MacsLatency().block_ms(k) / phone_budget
            assert worst.block_ms(k) == pytest.approx(2 * host_ms * max(host_part, phone_part))
    with pytest.raises(ValueError, match="at least two devices"):
        WorstCasePredictor([Member(host, 1.0, table)])


def test_manifest_is_over_budget_when_another_device_is() -> None:
    from edgeauto.manifest import Manifest

    doc = {"latency": {"within_budget": True}, "budget": {}, "devices": [
        {"name": "b", "within_budget": True}]}  # fmt: skip
    assert Manifest(doc).within_budget
    doc["devices"].append({"name": "c", "within_budget": False})
    assert not Manifest(doc).within_budget
