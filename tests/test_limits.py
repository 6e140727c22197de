"""Budgets besides latency: parameters, model size and peak activations."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

import edgeauto
from edgeauto.errors import BudgetInfeasible, ConfigError
from edgeauto.limits import Footprint, Limits, estimate, key_activation_values
from edgeauto.search import STRATEGIES, SearchProblem
from edgeauto.spaces import get_space
from edgeauto.spaces.key import OpKey
from edgeauto.testing.conformance import MacsLatency


def _folded_params(model: nn.Module) -> int:
    """Weights and biases as the runtime holds them: every BN folded into a conv bias."""
    n = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            n += m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        elif isinstance(m, nn.BatchNorm2d):
            n += m.num_features
    return n


@pytest.mark.parametrize(
    ("space", "shape"), [("fbnet-lite", (1, 28, 28)), ("fbnet-micro", (1, 8, 8))]
)
def test_params_estimated_from_keys_match_the_built_model(space: str, shape) -> None:
    s = get_space(space, shape, 10)
    rng = random.Random(0)
    for _ in range(6):
        arch = s.sample(rng)
        assert estimate(s.blocks(arch)).params == _folded_params(s.build(arch))


def test_peak_activation_of_an_inverted_residual() -> None:
    k = OpKey("mbconv", cin=8, hidden=48, cout=8, h=10, w=10, kernel=3, stride=1, residual=True)
    # the depthwise step holds the kept input, the expanded map and the depthwise output
    assert key_activation_values(k) == 8 * 100 + 48 * 100 + 48 * 100
    assert estimate([k]).activation_bytes == 4 * (800 + 9600)


def test_limits_validate_and_report_violations() -> None:
    with pytest.raises(ConfigError, match=r"max_params must be > 0.*--max-params"):
        Limits(max_params=0)
    fp = Footprint(params=5000, size_bytes=40_000, activation_bytes=9_000)
    assert Limits().violations(fp) == [] and not Limits().any
    got = Limits(max_params=4000, max_size_kb=50, max_activation_kb=8).violations(fp)
    assert got == ["parameters 5,000 > 4,000", "peak activations kB 9.0 > 8.0"]


def test_unknown_activation_never_passes_a_limit() -> None:
    fp = Footprint(params=10, size_bytes=10, activation_bytes=None)
    assert Limits(max_activation_kb=1).violations(fp) == [
        "peak activations kB unknown (no estimate and no measurement)"
    ]
    measured = Footprint(10, 10, activation_bytes=None, measured_activation_bytes=500)
    assert Limits(max_activation_kb=1).violations(measured) == []
    over = Footprint(10, 10, activation_bytes=100, measured_activation_bytes=2_000)
    assert Limits(max_activation_kb=1).violations(over) == ["peak activations kB 2.0 > 1.0"]


class _Residual(nn.Module):
    """stem, then an inverted residual whose add ONNX Runtime folds into the last conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.expand = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 32, 1)
        self.dw, self.project = nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.Conv2d(32, 8, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.project(torch.relu(self.dw(torch.relu(self.expand(x)))))
        return self.fc(x.mean((2, 3)))


def test_measured_peak_activations_of_a_residual_block(tmp_path: Path) -> None:
    from edgeauto.export.memory import _executed_nodes, measure_peak_activations, peak_alive_bytes
    from edgeauto.export.onnx import export_onnx

    path = export_onnx(_Residual().train(False), (1, 28, 28), tmp_path / "r.onnx")
    measured = measure_peak_activations(path)
    # the figure is the liveness walk over what ONNX Runtime executed on this CPU
    nodes, inputs, outputs = _executed_nodes(path)
    assert measured == peak_alive_bytes(nodes, inputs, outputs)
    # at the depthwise conv, in plain NCHW: the kept block input, the expanded map and the
    # depthwise output. A CPU with wide vectors runs a blocked layout (NCHWc: the 8-channel
    # maps padded to 16, plus reorders), which only adds; fusing the add keeps it under 2x.
    hand = 4 * (8 + 32 + 32) * 28 * 28
    assert hand <= measured <= 2 * hand
    busiest = max(sum(n.output_bytes) for n in nodes)  # a node's outputs are alive together
    assert busiest <= measured


def test_liveness_walk_keeps_a_tensor_until_its_last_reader() -> None:
    from edgeauto.export.memory import ExecutedNode, peak_alive_bytes

    nodes = [
        ExecutedNode("a", ("x",), ("t1",), (10,)),
        ExecutedNode("b", ("t1",), ("t2",), (20,)),
        ExecutedNode("c", ("t2", "x"), ("y",), (1,)),  # x is read again: alive throughout
    ]
    assert peak_alive_bytes(nodes, {"x": 5}, {"y"}) == 5 + 10 + 20
    assert peak_alive_bytes([], {"x": 5}, set()) == 5


def _problem(limits: Limits | None) -> SearchProblem:
    space = get_space("fbnet-lite", (1, 28, 28), 10)
    return SearchProblem(space, MacsLatency(), 1e9, lambda a: 0.5, trials=8, seed=0, limits=limits)


def test_search_keeps_to_a_parameter_limit() -> None:
    free = STRATEGIES.get("random")(_problem(None)).search()
    sizes = sorted(estimate(_problem(None).space.blocks(t.arch)).params for t in free.trials)
    cap = sizes[len(sizes) // 2]  # half of what an unconstrained search tries is over it
    problem = _problem(Limits(max_params=cap))
    result = STRATEGIES.get("random")(problem).search()
    assert len(result.trials) == 8
    assert all(estimate(problem.space.blocks(t.arch)).params <= cap for t in result.trials)


def test_a_limit_below_the_smallest_arch_is_infeasible() -> None:
    with pytest.raises(BudgetInfeasible, match=r"smallest architecture .* parameters"):
        _problem(Limits(max_params=100)).check_feasible()


def test_run_records_the_footprint_against_its_limits(tmp_path: Path, micro_tables: Path) -> None:
    tables = tmp_path / "tables"
    shutil.copytree(micro_tables, tables)
    m = edgeauto.run(check=False, device="host", latency_ms=1.0, dataset="digits", space="fbnet-micro",
                     trials=2, epochs=2, tables=str(tables), out=str(tmp_path / "run"),
                     max_params=4000, max_activation_kb=64, int8=False)  # fmt: skip
    b = m["budget"]
    assert b["limits"] == {"max_params": 4000, "max_size_kb": None, "max_activation_kb": 64}
    assert 0 < b["footprint"]["params"] <= 4000 and b["violations"] == []
    assert b["footprint"]["size_bytes"] == (tmp_path / "run" / "model.tflite").stat().st_size
    # the runtime's peak is at least the largest tensor pair and near the block estimate
    fp = b["footprint"]
    assert fp["measured_activation_bytes"] <= 64_000
    assert 0.5 <= fp["measured_activation_bytes"] / fp["activation_bytes"] <= 2.0
    trials = [json.loads(x) for x in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    space = get_space("fbnet-micro", (1, 8, 8), 10)
    for t in trials:
        assert estimate(space.blocks(edgeauto.Arch.from_json(t["arch"]))).params <= 4000
    assert "footprint:" in (tmp_path / "run" / "report.md").read_text()


def test_cli_rejects_a_bad_limit(cli, tmp_path: Path) -> None:
    from helpers import assert_one_line_error

    r = cli("run", "--max-params", "-5", "--out", str(tmp_path / "x"))
    assert_one_line_error(r, "ConfigError", "--max-params")


@pytest.mark.slow
def test_modes(tmp_path: Path, micro_tables: Path, micro_table) -> None:
    from edgeauto.config import RunConfig

    assert RunConfig().headroom == 1.0 and RunConfig(search_headroom=1.25).headroom == 1.25
    assert RunConfig(mode="joint", search_headroom=1.25).headroom == 1.0
    with pytest.raises(ConfigError, match="mode must be one of search-then-compress, joint"):
        RunConfig(mode="both")
    space = get_space("fbnet-micro", (1, 8, 8), 10)
    rng = random.Random(0)
    costs = sorted(micro_table.predict(space.blocks(space.sample(rng))) for _ in range(40))
    budget = costs[len(costs) // 2]  # half the space is over it
    tables = tmp_path / "tables"
    shutil.copytree(micro_tables, tables)
    edgeauto.run(check=False, device="host", latency_ms=budget, dataset="digits", space="fbnet-micro",
                 trials=4, epochs=1, tables=str(tables), out=str(tmp_path / "run"), mode="joint",
                 int8=False, tolerance=5.0)  # fmt: skip
    trials = [json.loads(x) for x in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == 4 and all(t["predicted_ms"] <= budget for t in trials)
