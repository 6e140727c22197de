"""``edgeauto compress`` end to end: a user's module and a run directory, on the real host
runtimes; bad inputs get one line, exit 2, and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import assert_one_line_error

EXAMPLE = Path(__file__).parents[1] / "examples" / "custom_cnn.py"
MODEL = f"{EXAMPLE}:build"


def compress_args(out: Path, *extra: str) -> list[str]:
    return [
        "compress", "--dataset", "digits", "--out", str(out), "--epochs", "2",
        "--finetune-epochs", "1", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained_weights(tmp_path_factory) -> Path:
    """The example CNN trained on digits, saved as a state dict."""
    from examples_loader import build_example

    from edgeauto.data import load_dataset
    from edgeauto.train import TrainConfig, fit

    data = load_dataset("digits", seed=0)
    model = fit(build_example(data), data, TrainConfig(epochs=2), seed=0)
    path = tmp_path_factory.mktemp("weights") / "cnn.pt"
    torch.save(model.state_dict(), path)
    return path


def example_ms(weights: Path, where: Path) -> float:
    """The trained example's LiteRT latency on this machine (ms, 1 thread): a budget below it
    forces real pruning whatever this CPU's speed (the example runs 3.5-6 us on 8x8 inputs)."""
    from examples_loader import build_example

    from edgeauto.data import load_dataset
    from edgeauto.export.onnx import export_onnx
    from edgeauto.export.runtimes import get_runtime

    model = build_example(load_dataset("digits", seed=0))
    model.load_state_dict(torch.load(weights, weights_only=True))
    litert = get_runtime("litert")
    tflite = litert.from_onnx(export_onnx(model, (1, 8, 8), where / "m.onnx"), where / "m.tflite")
    return litert.measure(tflite, 1, runs=200, warmup=50, rounds=3).median_ms


@pytest.mark.slow
def test_compress_a_user_module(cli, tmp_path: Path, trained_weights: Path) -> None:
    out = tmp_path / "custom"
    budget = 0.6 * example_ms(trained_weights, tmp_path)
    result = cli(*compress_args(out, "--model", MODEL, "--weights", str(trained_weights),
                               "--latency-ms", f"{budget:.6f}", "--criterion", "taylor2",
                               "--scratch-baseline"))  # fmt: skip
    assert result.exit_code in (0, 3), result.stdout + result.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"] == MODEL and m["arch"] is None and m["space"] is None
    plan = m["pruning"]
    assert (plan["criterion"], plan["allocation"]) == ("taylor2", "netadapt")
    assert plan["ops"] and plan["status"] in ("met", "floor")
    assert m["accuracy"]["val_scratch"] is not None  # Liu et al.'s Scratch-E ran
    assert m["accuracy"]["val_scratch_b"] is not None  # and Scratch-B, beside it
    assert m["table"]["kind"] == "layers" and Path(m["table"]["copy"]).exists()
    layers = json.loads(Path(m["table"]["copy"]).read_text())
    assert layers["overhead_ms"] > 0 and len(layers["entries"]) >= 5
    for name in ("onnxruntime", "litert"):
        assert m["parity"][name]["top1_agreement"] == 1.0
        assert m["latency"]["measured"][f"{name}_ms"] > 0
    assert (out / "model.tflite").exists() and (out / "report.md").exists()
    report = (out / "report.md").read_text()
    assert "scratch baseline" in report and "Scratch-E" in report and "Scratch-B" in report


def test_budget_already_met_is_a_no_op_with_a_message(
    cli, tmp_path: Path, trained_weights: Path
) -> None:
    out = tmp_path / "met"
    result = cli(*compress_args(out, "--model", MODEL, "--weights", str(trained_weights),
                               "--latency-ms", "50"))  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "already meets 50" in result.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["pruning"]["ops"] == [] and m["pruning"]["status"] == "already"


def test_weights_that_do_not_match_name_the_key(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"0.weight": torch.zeros(3, 3)}, bad)
    result = cli(*compress_args(tmp_path / "o", "--model", MODEL, "--weights", str(bad)))
    assert_one_line_error(result, "ConfigError", "does not match the model", "'0.weight'")


def test_weights_missing_a_key_name_it(cli, tmp_path: Path, trained_weights: Path) -> None:
    state = torch.load(trained_weights, weights_only=True)
    del state["3.weight"]
    bad = tmp_path / "partial.pt"
    torch.save(state, bad)
    result = cli(*compress_args(tmp_path / "o", "--model", MODEL, "--weights", str(bad)))
    assert_one_line_error(result, "ConfigError", "missing key '3.weight'")


def test_weights_not_a_state_dict(cli, tmp_path: Path) -> None:
    bad = tmp_path / "text.pt"
    bad.write_text("not a tensor file")
    result = cli(*compress_args(tmp_path / "o", "--model", MODEL, "--weights", str(bad)))
    assert_one_line_error(result, "ConfigError", "is not a state dict")


UNTRACEABLE = """
import numpy as np
import torch
from torch import nn


class Detour(nn.Module):
    def forward(self, x):
        return torch.from_numpy(np.maximum(x.detach().numpy(), 0))


def build(num_classes):
    return nn.Sequential(nn.Conv2d(1, 8, 3), Detour(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))
"""


def test_untraceable_model_names_the_module(cli, tmp_path: Path) -> None:
    path = tmp_path / "untraceable.py"
    path.write_text(UNTRACEABLE)
    result = cli(*compress_args(tmp_path / "o", "--model", f"{path}:build", "--latency-ms",
                               "0.001"))  # fmt: skip
    assert_one_line_error(result, "ConfigError", "cannot trace module '0' (Conv2d)")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("no-colon", "must be module:function"),
        ("examples/nope.py:build", "cannot import"),
        (f"{EXAMPLE}:missing", "has no callable 'missing'"),
        ("os:getcwd", "returned str, not a torch nn.Module"),
        ("json:dumps", "calling it failed: TypeError"),
    ],
)
def test_bad_model_specs(cli, tmp_path: Path, spec: str, fragment: str) -> None:
    result = cli(*compress_args(tmp_path / "o", "--model", spec))
    assert_one_line_error(result, "ConfigError", fragment)


def test_model_and_from_are_exclusive(cli, tmp_path: Path) -> None:
    result = cli(*compress_args(tmp_path / "o", "--model", MODEL, "--from", str(tmp_path)))
    assert_one_line_error(result, "ConfigError", "exactly one model source")
    result = cli(*compress_args(tmp_path / "o"))
    assert_one_line_error(result, "ConfigError", "exactly one model source")


def test_from_a_directory_that_is_not_a_run(cli, tmp_path: Path) -> None:
    result = cli(*compress_args(tmp_path / "o", "--from", str(tmp_path)))
    assert_one_line_error(result, "ConfigError", "no readable manifest.json", "--out directory")


def test_unknown_criterion_fails_first(cli, tmp_path: Path) -> None:
    result = cli(*compress_args(tmp_path / "o", "--model", MODEL, "--criterion", "l3"))
    assert_one_line_error(result, "UnknownComponent", "unknown criterion 'l3'")
