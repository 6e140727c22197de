"""SNL: ReLU budget met, binary masks, accuracy kept, exported files agree with PyTorch."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeauto.data import Dataset
from edgeauto.devices.profile import load_profile
from edgeauto.errors import ConfigError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.parity import check_parity
from edgeauto.export.runtimes import get_runtime
from edgeauto.linearize import SNLConfig, count_relus, drop_relu_layers, linearize
from edgeauto.linearize.snl import FixedMaskReLU, MaskedReLU, count_macs, relu_cost
from edgeauto.train import TrainConfig, fit

SHAPE = (1, 8, 8)
EXAMPLE = Path(__file__).with_name("data") / "tiny_relu_cnn.py"


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(digits: Dataset) -> nn.Module:
    torch.manual_seed(0)
    return fit(_cnn(), digits, TrainConfig(epochs=5), seed=0)


def test_count_relus_and_macs() -> None:
    model = _cnn()
    assert count_relus(model, SHAPE) == 8 * 8 * 8 + 16 * 4 * 4
    assert count_macs(model, SHAPE) == 9 * 8 * 64 + 72 * 16 * 16 + 256 * 10
    assert relu_cost(model, SHAPE, 0.5) == 768 + 0.5 * count_macs(model, SHAPE)


@pytest.mark.parametrize(("per_pixel", "budget"), [(False, 200), (True, 150)])
def test_snl_meets_budget(
    trained: nn.Module, digits: Dataset, per_pixel: bool, budget: int
) -> None:
    model = copy.deepcopy(trained)
    cfg = SNLConfig(per_pixel=per_pixel, finetune_epochs=2)
    result = linearize(model, digits, budget, cfg)
    assert result.relus_after <= budget == result.budget and result.relus_before == 768
    assert count_relus(model, SHAPE) == result.relus_after
    if per_pixel:  # one ReLU per mask entry: the budget is used exactly
        assert result.relus_after == budget
    fixed = [m for m in model.modules() if isinstance(m, FixedMaskReLU)]
    assert len(fixed) == 2 and not any(isinstance(m, MaskedReLU) for m in model.modules())
    assert all(set(m.mask.unique().tolist()) <= {0.0, 1.0} for m in fixed)
    assert result.accuracy > 0.8  # chance is 0.1


def test_drop_relu_layers_baseline(trained: nn.Module, digits: Dataset) -> None:
    model = copy.deepcopy(trained)
    result = drop_relu_layers(model, digits, 300, SNLConfig(finetune_epochs=1))
    assert result.relus_after == 256  # the 512-ReLU layer goes, the 256 one fits
    assert result.accuracy > 0.5


def test_linearized_model_exports_with_parity(
    trained: nn.Module, digits: Dataset, tmp_path: Path
) -> None:
    model = copy.deepcopy(trained)
    linearize(model, digits, 100, SNLConfig(finetune_epochs=0))
    path = export_onnx(model, SHAPE, tmp_path / "m.onnx")
    parity = check_parity(model, get_runtime("onnxruntime"), path, digits.x_val[:32])
    assert parity.max_abs_diff <= 1e-4 and parity.top1_agreement == 1.0


def test_bad_linearize_inputs(trained: nn.Module, digits: Dataset) -> None:
    with pytest.raises(ConfigError, match="relu-budget"):
        linearize(copy.deepcopy(trained), digits, -1)
    relu = nn.ReLU()
    shared = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), relu, nn.Linear(8, 10), relu)
    with pytest.raises(ConfigError, match=r"its own nn\.ReLU"):
        count_relus(shared, SHAPE)
    with pytest.raises(ConfigError, match=r"no nn\.ReLU"):
        linearize(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), digits, 10)
    assert load_profile("pi-relu").cost_model == "relu-count"


def test_linearize_cli_rejects_latency_device(cli) -> None:
    result = cli(
        "linearize", "--model", f"{EXAMPLE}:build", "--relu-budget", "10", "--device", "host"
    )
    assert result.exit_code == 2
    assert "cost_model: relu-count" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_linearize_cli_end_to_end(cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli(
        "linearize", "--model", f"{EXAMPLE}:build", "--relu-budget", "200", "--dataset",
        "digits", "--out", str(out), "--epochs", "3", "--finetune-epochs", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "result.json").read_text())
    assert report["relus_after"] <= 200 and report["accuracy"] > 0.8
    assert report["parity"]["litert"]["top1_agreement"] == 1.0
    assert (out / "model.tflite").is_file() and "ReLUs 768 ->" in result.stdout


def test_run_needs_the_right_budget_for_the_device(cli, tmp_path: Path) -> None:
    from helpers import assert_one_line_error

    r = cli("run", "--device", "pi-relu", "--latency-ms", "1", "--out", str(tmp_path / "r"))
    assert_one_line_error(r, "ConfigError", "give --relu-budget N instead of --latency-ms")
    r = cli("run", "--device", "host", "--relu-budget", "100", "--out", str(tmp_path / "r"))
    assert_one_line_error(r, "ConfigError", "drop --relu-budget or use --device pi-relu")
    r = cli("run", "--device", "pi-relu", "--relu-budget", "-3", "--out", str(tmp_path / "r"))
    assert_one_line_error(r, "ConfigError", "fix --relu-budget")


def test_relu_cost_of_a_key_is_the_built_blocks(micro_space) -> None:
    from edgeauto.latency.relu import ReluCost
    from edgeauto.spaces.modules import block_for_key

    cost = ReluCost(flop_weight=0.01)
    arch = micro_space.sample(random.Random(0))
    model = micro_space.build(arch)
    keys = list(micro_space.blocks(arch))
    shape = (1, 8, 8)
    # the sum over blocks is the whole model's ReLUs and MACs (blocks are sequential)
    assert cost.predict(keys) == pytest.approx(relu_cost(model, shape, 0.01))
    mb = next(k for k in keys if k.kind == "mbconv" and k.hidden)
    block = block_for_key(mb)
    assert cost.block_ms(mb) == relu_cost(block, (mb.cin, mb.h, mb.w), 0.01)
    assert count_relus(block, (mb.cin, mb.h, mb.w)) == mb.hidden * (
        mb.h * mb.w + mb.out_hw[0] * mb.out_hw[1]
    )


@pytest.mark.slow
def test_run_to_a_relu_budget_end_to_end(cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = cli(
        "run", "--device", "pi-relu", "--relu-budget", "300", "--dataset", "digits", "--space",
        "fbnet-micro", "--trials", "3", "--epochs", "3", "--out", str(out),
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = json.loads((out / "result.json").read_text())
    assert doc["relus_after"] <= 300 < doc["relus_before"] <= 4 * 300
    assert doc["relus_counted"] == doc["relus_after"] and doc["device"] == "pi-relu"
    assert doc["accuracy"] > 0.5 and doc["parity"]["litert"]["top1_agreement"] >= 0.95
    trials = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == 3 and all(t["predicted_ms"] <= 4 * 300 for t in trials)
    assert "ReLUs per inference" in (out / "report.md").read_text()
    assert f"ReLUs {doc['relus_before']:,} -> {doc['relus_after']:,}" in r.stdout


def _relu6_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU6(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 8 * 8, 10),
    )  # fmt: skip


def test_masks_keep_each_activation_relu6_included() -> None:
    """With every mask at 1 the linearized net is the original one (ReLU6 still clips at 6);
    a unit whose mask is 0 passes its input through unchanged."""
    from edgeauto.linearize.snl import add_masks, binarize

    torch.manual_seed(0)
    model = _relu6_cnn().eval()
    x = 10 * torch.randn(16, *SHAPE)  # large inputs: many pre-activations are above 6
    pre = model[0](x)
    assert (pre > 6).any()
    expected = model(x)
    linear = copy.deepcopy(model)
    masks = add_masks(linear, SHAPE, per_pixel=False)
    assert [m.kind for m in masks] == ["relu6", "relu"]
    binarize(linear, masks, budget=count_relus(model, SHAPE))  # room for all: masks at 1
    assert [m.kind for m in linear.modules() if isinstance(m, FixedMaskReLU)] == ["relu6", "relu"]
    assert torch.allclose(linear(x), expected, atol=1e-5)
    assert torch.allclose(linear[1](pre), pre.clamp(0.0, 6.0), atol=1e-5)  # clipped, not relu
    off = torch.ones(4, 1, 1)
    off[2] = 0.0
    unit = FixedMaskReLU(off, (4, 8, 8), "relu6")
    out = unit(pre)
    assert torch.equal(out[:, 2], pre[:, 2])  # mask 0: the identity, exactly
    assert torch.allclose(out[:, 0], pre[:, 0].clamp(0.0, 6.0), atol=1e-5)
    soft = MaskedReLU((4, 8, 8), init=-1e4, kind="relu6")  # sigmoid(-1e4) == 0: identity
    assert torch.equal(soft(pre), pre)
