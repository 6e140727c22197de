"""Structured pruning against the real, measured latency table; plans replay exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import DIGITS_SHAPE, build_trained, micro_table_path

from edgeauto.compress import PRUNERS, PruneConfig, PruneOp, PruneStep, PruningPlan, count_params
from edgeauto.errors import ConfigError
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.latency.profiler import ProfileSettings, local_timer
from edgeauto.latency.table import LatencyTable
from edgeauto.train import accuracy


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, micro_tables: Path, micro_space, trained_micro, host_profile, digits):
    """Prune the trained largest micro model to 80% of its predicted latency, measuring the
    pruned blocks on demand with LiteRT into a private copy of the session table."""
    root = tmp_path_factory.mktemp("prune-tables")
    shutil.copytree(micro_tables, root, dirs_exist_ok=True)
    path = micro_table_path(root)
    table = LatencyTable.load(path)
    n_before = len(table.entries)
    predictor = MeasuringPredictor(table, local_timer(host_profile, ProfileSettings()))
    model = build_trained(micro_space, trained_micro)
    start_keys = model.op_keys(DIGITS_SHAPE[1:])
    start_ms = predictor.predict_keys(start_keys)
    acc_before = accuracy(model, digits.x_val, digits.y_val)
    params_before = count_params(model)

    def latency_of(m: torch.nn.Module) -> float:
        return predictor.predict_keys(m.op_keys(DIGITS_SHAPE[1:]))

    budget = 0.8 * start_ms
    plan = PRUNERS.get("l1")().prune_to_budget(model, DIGITS_SHAPE, latency_of, budget)
    return {
        "plan": plan, "model": model, "budget": budget, "start_ms": start_ms,
        "start_keys": start_keys, "predictor": predictor, "table_path": path,
        "n_before": n_before, "acc_before": acc_before, "params_before": params_before,
        "latency_of": latency_of,
    }  # fmt: skip


def test_l1_prunes_below_budget(pruned, digits) -> None:
    plan: PruningPlan = pruned["plan"]
    model = pruned["model"]
    final_ms = pruned["latency_of"](model)
    assert plan.ops, "nothing was pruned"
    assert final_ms <= pruned["budget"] < pruned["start_ms"]
    assert plan.criterion == "l1" and plan.budget_ms == pytest.approx(pruned["budget"])
    # the trace: step 0 is the unpruned model, the last step is where pruning stopped
    assert plan.steps[0] == PruneStep(0, pruned["start_ms"], pruned["params_before"])
    assert [s.step for s in plan.steps] == list(range(len(plan.steps)))
    assert plan.steps[-1].predicted_ms == pytest.approx(final_ms)
    assert plan.steps[-1].params == count_params(model) < pruned["params_before"]
    assert all(a.params > b.params for a, b in zip(plan.steps, plan.steps[1:]))
    # the model was really trained before pruning, and the pruned one still runs
    assert pruned["acc_before"] > 0.5
    with torch.no_grad():
        assert model(digits.x_val[:4]).shape == (4, 10)


def test_pruned_keys_were_measured_into_the_table(pruned) -> None:
    model, predictor = pruned["model"], pruned["predictor"]
    keys = model.op_keys(DIGITS_SHAPE[1:])
    assert keys != pruned["start_keys"]
    # pruned widths are multiples of round_to (4) and smaller than before
    for new, old in zip(keys, pruned["start_keys"]):
        assert new.kind == old.kind
        assert new.cout <= old.cout
        if new.kind == "mbconv":
            assert new.hidden % 4 == 0 and new.hidden <= old.hidden
    assert predictor.measured_on_demand >= 1
    table = LatencyTable.load(pruned["table_path"])
    assert len(table.entries) == pruned["n_before"] + predictor.measured_on_demand
    assert all(k in table.entries for k in keys)  # saved: later runs predict from measurement


def test_plan_json_round_trip_and_replay(pruned, micro_space, trained_micro, digits) -> None:
    plan: PruningPlan = pruned["plan"]
    text = json.dumps(plan.to_json())
    again = PruningPlan.from_json(json.loads(text))
    assert again.ops == plan.ops
    assert again.steps == plan.steps
    assert again.criterion == plan.criterion and again.budget_ms == plan.budget_ms
    assert again.to_json() == plan.to_json()
    fresh = build_trained(micro_space, trained_micro)
    again.apply(fresh, DIGITS_SHAPE)
    model = pruned["model"].eval()
    assert fresh.op_keys(DIGITS_SHAPE[1:]) == model.op_keys(DIGITS_SHAPE[1:])
    assert count_params(fresh) == count_params(model)
    fresh.eval()
    with torch.no_grad():
        x = digits.x_val[:64]
        assert torch.equal(fresh(x), model(x))


def test_plan_replay_on_untrained_model_matches_shapes(pruned, micro_space, trained_micro) -> None:
    arch, _ = trained_micro
    fresh = micro_space.build(arch)
    pruned["plan"].apply(fresh, DIGITS_SHAPE)
    assert fresh.op_keys(DIGITS_SHAPE[1:]) == pruned["model"].op_keys(DIGITS_SHAPE[1:])


def test_plan_from_json_malformed() -> None:
    with pytest.raises(ConfigError, match="malformed"):
        PruningPlan.from_json({"criterion": "l1"})
    with pytest.raises(ConfigError, match="malformed"):
        PruningPlan.from_json({"criterion": "l1", "budget_ms": 1.0, "ops": [{"module": "x"}]})


def test_plan_json_layout() -> None:
    plan = PruningPlan(
        "l1", 0.5, [PruneOp("blocks.0.body.0", True, (1, 3))], [PruneStep(0, 0.7, 100)]
    )
    data = plan.to_json()
    assert data["ops"] == [{"module": "blocks.0.body.0", "out_channels": True, "idxs": [1, 3]}]
    assert data["steps"] == [{"step": 0, "predicted_ms": 0.7, "params": 100}]
    assert PruningPlan.from_json(data) == plan


def test_budget_already_met_prunes_nothing(micro_space, trained_micro, micro_table) -> None:
    model = build_trained(micro_space, trained_micro)
    params = count_params(model)

    def latency_of(m: torch.nn.Module) -> float:
        return micro_table.predict_keys(m.op_keys(DIGITS_SHAPE[1:]))

    ms = latency_of(model)
    plan = PRUNERS.get("l1")().prune_to_budget(model, DIGITS_SHAPE, latency_of, ms * 1.01)
    assert plan.ops == []
    assert plan.steps == [PruneStep(0, ms, params)]
    assert count_params(model) == params


def test_max_steps_bounds_pruning(micro_space, trained_micro) -> None:
    model = build_trained(micro_space, trained_micro)
    pruner = PRUNERS.get("l1")(PruneConfig(step_ratio=0.1, max_steps=2))

    def latency_of(m: torch.nn.Module) -> float:
        return float(count_params(m))  # any monotone cost: an unreachable budget of 0

    plan = pruner.prune_to_budget(model, DIGITS_SHAPE, latency_of, 0.0)
    assert len(plan.steps) == 3  # step 0 plus two pruning steps
    assert plan.steps[2].params < plan.steps[1].params < plan.steps[0].params


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step_ratio": 0.0}, "step_ratio"),
        ({"step_ratio": 1.0}, "step_ratio"),
        ({"step_ratio": -0.1}, "step_ratio"),
        ({"max_steps": 0}, "max_steps"),
        ({"round_to": 0}, "round_to"),
    ],
)
def test_prune_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PruneConfig(**kwargs)


def test_prune_config_defaults() -> None:
    cfg = PruneConfig()
    assert 0 < cfg.step_ratio < 1 and cfg.max_steps >= 1 and cfg.round_to == 4
    assert PruneConfig(round_to=None).round_to is None
