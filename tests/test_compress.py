"""Structured pruning against the real, measured latency table; plans replay exactly."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch_pruning as tp
from helpers import DIGITS_SHAPE, build_trained, micro_table_path, sample_archs
from torch import nn

from edgeauto.budget import ACCEPT
from edgeauto.compress import (
    PRUNERS,
    PruneConfig,
    PruneOp,
    PruneProblem,
    PruneStep,
    PruningPlan,
    count_macs,
    count_params,
    get_criterion,
    list_criteria,
)
from edgeauto.compress.graph import build_graph, depth_candidates, prunable_groups
from edgeauto.compress.ispasp import contributions, merge_prune, pursuit_rank
from edgeauto.compress.landing import prune_measured
from edgeauto.compress.scratch import recalibrate_bn, reinitialize, scratch_b_epochs
from edgeauto.errors import ConfigError
from edgeauto.latency.builder import TimingSettings, local_timer
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.latency.table import LatencyStat, LatencyTable
from edgeauto.spaces import get_space
from edgeauto.train import TrainConfig, accuracy, fit


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, micro_tables: Path, micro_space, trained_micro, host_profile, digits):
    """NetAdapt + L1 on the trained largest micro model to 80% of its predicted latency,
    measuring pruned blocks on demand with LiteRT into a private copy of the session table."""
    root = tmp_path_factory.mktemp("prune-tables")
    shutil.copytree(micro_tables, root, dirs_exist_ok=True)
    path = micro_table_path(root)
    table = LatencyTable.load(path)
    n_before = len(table.entries)
    predictor = MeasuringPredictor(table, local_timer(host_profile, TimingSettings()))
    model = build_trained(micro_space, trained_micro)
    start_keys = model.op_keys(DIGITS_SHAPE[1:])
    start_ms = predictor.predict(start_keys)
    acc_before = accuracy(model, digits.x_val, digits.y_val)
    params_before = count_params(model)

    def latency_of(m: torch.nn.Module) -> float:
        return predictor.predict(m.op_keys(DIGITS_SHAPE[1:]))

    budget = 0.8 * start_ms
    problem = PruneProblem(DIGITS_SHAPE, latency_of, budget, digits)
    plan = PRUNERS.get("netadapt")("l1").prune(model, problem)
    return {
        "plan": plan, "model": model, "budget": budget, "start_ms": start_ms,
        "start_keys": start_keys, "predictor": predictor, "table_path": path,
        "n_before": n_before, "acc_before": acc_before, "params_before": params_before,
        "latency_of": latency_of,
    }  # fmt: skip


def test_netadapt_prunes_below_budget(pruned, digits) -> None:
    plan: PruningPlan = pruned["plan"]
    model = pruned["model"]
    final_ms = pruned["latency_of"](model)
    assert plan.ops, "nothing was pruned"
    assert plan.status == "met", plan.message
    assert final_ms <= pruned["budget"] < pruned["start_ms"]
    assert (plan.criterion, plan.allocation) == ("l1", "netadapt")
    assert plan.budget == pytest.approx(pruned["budget"])
    # the trace: step 0 is the unpruned model, the last step is where pruning stopped
    assert plan.steps[0] == PruneStep(0, pruned["start_ms"], pruned["params_before"], "start")
    assert [s.step for s in plan.steps] == list(range(len(plan.steps)))
    assert plan.steps[-1].cost == pytest.approx(final_ms)
    assert plan.steps[-1].params == count_params(model) < pruned["params_before"]
    assert all(a.cost > b.cost for a, b in zip(plan.steps, plan.steps[1:]))
    assert all(s.action.startswith(("cut ", "remove ")) for s in plan.steps[1:])
    assert pruned["acc_before"] > 0.5
    with torch.no_grad():
        assert model(digits.x_val[:4]).shape == (4, 10)


def test_pruned_keys_were_measured_into_the_table(pruned) -> None:
    model, predictor = pruned["model"], pruned["predictor"]
    keys = model.op_keys(DIGITS_SHAPE[1:])
    assert keys != pruned["start_keys"]
    for key in keys:
        if key.kind == "mbconv":
            assert key.hidden % 4 == 0  # pruned widths are multiples of round_to
    assert predictor.measured_on_demand >= 1
    table = LatencyTable.load(pruned["table_path"])
    assert len(table.entries) == pruned["n_before"] + predictor.measured_on_demand
    assert all(k in table.entries for k in keys)  # saved: later runs predict from measurement


def test_plan_json_round_trip_and_replay(pruned, micro_space, trained_micro, digits) -> None:
    plan: PruningPlan = pruned["plan"]
    again = PruningPlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan
    fresh = build_trained(micro_space, trained_micro)
    again.apply(fresh, DIGITS_SHAPE)
    model = pruned["model"].train(False)
    assert fresh.op_keys(DIGITS_SHAPE[1:]) == model.op_keys(DIGITS_SHAPE[1:])
    assert count_params(fresh) == count_params(model)
    # pruning ends by re-estimating BN statistics on the first proxy_samples training inputs
    recalibrate_bn(fresh, digits.x_train[: PruneConfig().proxy_samples])
    with torch.no_grad():
        x = digits.x_val[:64]
        assert torch.allclose(fresh(x), model(x), atol=1e-5)


def test_plan_from_json_malformed() -> None:
    with pytest.raises(ConfigError, match="malformed"):
        PruningPlan.from_json({"criterion": "l1"})
    with pytest.raises(ConfigError, match="malformed"):
        PruningPlan.from_json({"criterion": "l1", "budget": 1.0, "ops": [{"module": "x"}]})
    bad_kind = {"kind": "melt", "module": "x", "out_channels": True, "idxs": []}
    with pytest.raises(ConfigError, match=r"PruneOp\.kind"):
        PruningPlan.from_json({"criterion": "l1", "budget": 1.0, "ops": [bad_kind]})


def test_plan_json_layout() -> None:
    plan = PruningPlan(
        "taylor", 0.5, "netadapt", "ms",
        [PruneOp("blocks.0.body.0", True, (1, 3)), PruneOp("blocks.1", False, (), "remove")],
        [PruneStep(0, 0.7, 100, "start")],
    )  # fmt: skip
    data = plan.to_json()
    assert data["ops"] == [
        {"kind": "channels", "module": "blocks.0.body.0", "out_channels": True, "idxs": [1, 3]},
        {"kind": "remove", "module": "blocks.1", "out_channels": False, "idxs": []},
    ]
    assert data["steps"] == [{"step": 0, "cost": 0.7, "params": 100, "action": "start"}]
    assert (data["allocation"], data["unit"], data["status"]) == ("netadapt", "ms", "met")
    assert PruningPlan.from_json(data) == plan


def _macs(shape: tuple[int, ...]):
    return lambda m: float(count_macs(m, shape))


@pytest.mark.parametrize("allocation", ["uniform", "netadapt"])
def test_budget_already_met_is_a_no_op(allocation, micro_space, trained_micro, digits) -> None:
    model = build_trained(micro_space, trained_micro)
    state = copy.deepcopy(model.state_dict())
    cost = _macs(DIGITS_SHAPE)
    problem = PruneProblem(DIGITS_SHAPE, cost, cost(model) * 1.01, digits, "MACs")
    plan = PRUNERS.get(allocation)("l1").prune(model, problem)
    assert plan.ops == [] and plan.status == "already"
    assert "already meets" in plan.message
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize("allocation", ["uniform", "netadapt"])
def test_unreachable_budget_stops_at_the_floor(
    allocation, micro_space, trained_micro, digits
) -> None:
    model = build_trained(micro_space, trained_micro)
    cost = _macs(DIGITS_SHAPE)
    start = cost(model)
    problem = PruneProblem(DIGITS_SHAPE, cost, 1.0, digits, "MACs")  # 1 MAC: impossible
    plan = PRUNERS.get(allocation)("l1").prune(model, problem)
    assert plan.status == "floor", plan.message
    assert "above the budget" in plan.message and "no layer can lose more" in plan.message
    assert plan.ops and cost(model) < start  # it pruned as far as it could, and says so


def test_netadapt_max_steps_bounds_pruning(micro_space, trained_micro, digits) -> None:
    model = build_trained(micro_space, trained_micro)
    cost = _macs(DIGITS_SHAPE)
    pruner = PRUNERS.get("netadapt")("l1", PruneConfig(max_steps=2, iterations=50))
    plan = pruner.prune(model, PruneProblem(DIGITS_SHAPE, cost, cost(model) * 0.3, digits))
    assert plan.status == "max_steps" and "step limit" in plan.message
    assert len(plan.steps) == 3  # start plus two steps
    assert plan.steps[2].cost < plan.steps[1].cost < plan.steps[0].cost


class ResidualNet(nn.Module):
    """Two residual conv blocks in a stage, then a classifier: depth pruning's test bed."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.stage = nn.Sequential(Res(16), Res(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stage(self.stem(x)).mean(dim=(2, 3)))


class Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def test_depth_candidates_are_blocks_not_their_bodies() -> None:
    names = [c.name for c in depth_candidates(ResidualNet(), DIGITS_SHAPE)]
    # the stage (a container), each residual block and each same-shape conv layer; never a
    # block's body, which would turn x + body(x) into x + x
    assert names == ["stage", "stage.0", "stage.0.body.0", "stage.1", "stage.1.body.0"]


def test_netadapt_removes_a_block_when_it_is_cheapest(digits) -> None:
    model = fit(ResidualNet(), digits, TrainConfig(epochs=3), seed=0)
    with torch.no_grad():
        model.stage[1].body[1].weight.zero_()  # block 1 adds nothing: removing it is free
        model.stage[1].body[1].bias.zero_()

    def cost(m: nn.Module) -> float:  # a cost where a block is worth removing
        return float(count_macs(m, DIGITS_SHAPE))

    problem = PruneProblem(DIGITS_SHAPE, cost, cost(model) * 0.7, digits, "MACs")
    pruner = PRUNERS.get("netadapt")("l1")
    plan = pruner.plan(model, problem)
    assert PruneOp("stage.1", False, (), "remove") in plan.ops, plan.steps
    fresh = copy.deepcopy(model)
    pruner.apply(fresh, plan, DIGITS_SHAPE)
    assert isinstance(fresh.stage[1], nn.Identity)
    x = digits.x_val[:8]
    with torch.no_grad():
        assert fresh(x).shape == (8, 10)


def test_removal_replays_on_a_searched_net() -> None:
    space = get_space("fbnet-lite", DIGITS_SHAPE, 10)
    for arch in sample_archs(space, 20):
        model = space.build(arch)
        cands = depth_candidates(model, DIGITS_SHAPE)
        names = [c.name for c in cands if c.name.count(".") == 1]  # whole blocks: blocks.N
        if names:
            break
    assert names, "20 sampled fbnet-lite archs and no residual block"
    n_keys = len(model.op_keys(DIGITS_SHAPE[1:]))
    plan = PruningPlan("l1", 1.0, ops=[PruneOp(names[-1], False, (), "remove")])
    plan.apply(model, DIGITS_SHAPE)
    assert len(model.op_keys(DIGITS_SHAPE[1:])) == n_keys - 1  # a removed block has no key
    assert model(torch.zeros(2, *DIGITS_SHAPE)).shape == (2, 10)


def test_group_l1_matches_torch_pruning_group_l1(micro_space, trained_micro) -> None:
    model = build_trained(micro_space, trained_micro)
    ours = get_criterion("group-l1")
    ours.bind(model)
    theirs = tp.importance.GroupMagnitudeImportance(p=1, normalizer=None, group_reduction="sum")
    for root, _m, group in prunable_groups(build_graph(model, DIGITS_SHAPE), model):
        assert torch.allclose(ours.group_scores(group), theirs(group), rtol=1e-5), root


def test_l1_is_li_et_al_filter_norm() -> None:
    """``l1`` is Li et al.'s criterion: each filter's own kernel L1 norm, exactly; the BN
    weights and the next layer's input slices that ``group-l1`` adds play no part."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()  # fmt: skip
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(0.1, 5.0, 8))  # BN weights differ per channel
    l1, group = get_criterion("l1"), get_criterion("group-l1")
    l1.bind(model)
    group.bind(model)
    groups = prunable_groups(build_graph(model, DIGITS_SHAPE), model)
    assert {root for root, _m, _g in groups} == {"0", "3"}
    for root, module, g in groups:
        own = module.weight.detach().abs().flatten(1).sum(1)
        assert torch.equal(l1.group_scores(g), own), root
        assert not torch.allclose(group.group_scores(g), own), root
    first = next(g for root, _m, g in groups if root == "0")
    bn_and_next = model[1].weight.abs() + model[3].weight.abs().transpose(0, 1).flatten(1).sum(1)
    assert torch.allclose(group.group_scores(first), l1.group_scores(first) + bn_and_next.detach())


def test_l1_scores_an_inverted_residual_by_its_expansion_filters() -> None:
    """Torch-Pruning roots expand -> depthwise -> project at the depthwise conv; the filters
    that compute those channels are the expansion conv's, so ``l1`` scores those."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 1), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10),
    ).eval()  # fmt: skip
    crit = get_criterion("l1")
    crit.bind(model)
    groups = prunable_groups(build_graph(model, DIGITS_SHAPE), model)
    hidden = next(g for root, _m, g in groups if root == "3")  # rooted at the depthwise conv
    expected = model[0].weight.detach().abs().flatten(1).sum(1)
    assert torch.equal(crit.group_scores(hidden), expected)


@pytest.mark.parametrize("name", [c for c in list_criteria() if c != "random"])
def test_a_dead_channel_scores_lowest(name: str, digits) -> None:
    """A channel whose output is always zero can be removed for free: every criterion that
    looks at weights, gradients or outputs must rank it last in its group."""
    plain = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    model = fit(plain, digits, TrainConfig(epochs=1), seed=0)
    dead = 5
    with torch.no_grad():
        conv, bn = model[0], model[1]
        conv.weight[dead] = 0
        conv.bias[dead] = 0
        bn.weight[dead] = 0
        bn.bias[dead] = 0
    crit = get_criterion(name)
    crit.prepare(model, digits)
    for root, _m, group in prunable_groups(build_graph(model, DIGITS_SHAPE), model):
        if root == "0":
            scores = crit.group_scores(group)
            assert int(scores.argmin()) == dead, (name, scores)
            return
    raise AssertionError("no group rooted at the first conv")


def test_data_criteria_need_data(micro_space, trained_micro) -> None:
    model = build_trained(micro_space, trained_micro)
    problem = PruneProblem(DIGITS_SHAPE, _macs(DIGITS_SHAPE), 1.0)
    with pytest.raises(ConfigError, match="needs data"):
        PRUNERS.get("uniform")("taylor2").prune(model, problem)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.gate = Branchy()
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gate(self.conv(x)).mean(dim=(2, 3)))


class Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np

        return torch.from_numpy(np.tanh(x.detach().numpy()))  # leaves the autograd graph


def test_untraceable_model_names_the_module() -> None:
    with pytest.raises(ConfigError, match="cannot trace module 'conv' \\(Conv2d\\)"):
        PRUNERS.get("uniform")("l1").prune(
            Untraceable(), PruneProblem(DIGITS_SHAPE, lambda m: 1.0, 0.5)
        )


def test_reinitialize_keeps_shapes_changes_weights(micro_space, trained_micro) -> None:
    model = build_trained(micro_space, trained_micro)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reinitialize(model, seed=0)
    after = model.state_dict()
    assert all(before[k].shape == after[k].shape for k in before)
    conv = next(k for k in before if k.endswith("weight") and before[k].dim() == 4)
    assert not torch.equal(before[conv], after[conv])


def test_scratch_b_epochs_match_the_unpruned_training_flops() -> None:
    assert scratch_b_epochs(10, 3_000, 2_000) == 15  # 1.5x fewer MACs: 1.5x the epochs
    assert scratch_b_epochs(3, 1_000, 700) == 4  # 4.29 epochs, rounded
    assert scratch_b_epochs(5, 100_000, 1_000) == 20  # 100x fewer MACs: capped at 4x
    assert scratch_b_epochs(5, 1_000, 1_000) == 5 == scratch_b_epochs(5, 900, 1_000)


def test_scratch_stage_trains_scratch_e_and_scratch_b(digits) -> None:
    """Scratch-E gets the unpruned model's epochs, Scratch-B its training FLOPs: a model with
    half the MACs trains twice the epochs; with no MACs saved Scratch-B is Scratch-E."""
    from types import SimpleNamespace

    from edgeauto.config import RunConfig
    from edgeauto.jobs.stages import scratch_stage
    from edgeauto.progress import NullReporter

    records: dict[str, dict] = {}
    rd = SimpleNamespace(record=records.__setitem__)
    cfg = RunConfig(epochs=1, finetune_epochs=0)
    ctx = SimpleNamespace(cfg=cfg, data=digits, reporter=NullReporter(), rd=rd, resumed=lambda s: None)  # fmt: skip
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    macs = count_macs(model, DIGITS_SHAPE)
    acc = scratch_stage(ctx, model, unpruned_macs=2 * macs)
    assert {k: v["epochs"] for k, v in records.items()} == {"scratch": 1, "scratch_b": 2}
    assert acc == {k: v["accuracy"] for k, v in records.items()}
    records.clear()
    same = scratch_stage(ctx, model, unpruned_macs=macs)
    assert list(records) == ["scratch"] and same["scratch_b"] == same["scratch"]


def test_report_shows_scratch_e_and_scratch_b() -> None:
    from edgeauto.report.markdown import _scratch_lines

    acc = {"val": 0.9, "val_scratch": 0.8, "val_scratch_b": 0.85}
    text = "\n".join(_scratch_lines(acc))
    assert "scratch baseline" in text and "0.9000" in text
    assert "Scratch-E (the unpruned model's epochs): 0.8000" in text
    assert "Scratch-B (the unpruned model's training FLOPs): 0.8500" in text
    old = "\n".join(_scratch_lines({"val": 0.9, "val_scratch": 0.8}))  # before Scratch-B
    assert "Scratch-E" in old and "Scratch-B" not in old
    assert _scratch_lines({"val": 0.9, "val_scratch": None, "val_scratch_b": None}) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_steps": 0}, "max_steps"),
        ({"iterations": 0}, "iterations"),
        ({"round_to": 0}, "round_to"),
        ({"max_ratio": 1.0}, "max_ratio"),
        ({"max_ratio": 0.0}, "max_ratio"),
        ({"proxy_samples": 0}, "proxy_samples"),
        ({"finetune_batches": -1}, "finetune_batches"),
    ],
)
def test_prune_config_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"PruneConfig\.{field}"):
        PruneConfig(**kwargs)


def test_layer_latency_measures_each_shape_once(host_profile) -> None:
    from edgeauto.compress.layer_lut import LayerKey, LayerLatency, layer_keys
    from edgeauto.latency.builder import local_timer

    def cnn(w: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, 10),
        )  # fmt: skip

    shape = (1, 28, 28)
    keys = layer_keys(cnn(32), shape)
    assert keys == [
        LayerKey("conv", 1, 32, 28, 28, 3, 1, 1),
        LayerKey("conv", 32, 64, 28, 28, 3, 2, 1),
        LayerKey("linear", 64, 10),
    ]
    cost = LayerLatency(local_timer(host_profile, TimingSettings(runs=50, warmup=10)), shape)
    wide = cost(cnn(64))
    assert len(cost.entries) == 3 and cost.overhead_ms > 0
    assert cost(cnn(64)) == wide and len(cost.entries) == 3  # cached: nothing re-measured
    narrow = cost(cnn(8))
    assert len(cost.entries) == 6
    assert narrow < wide  # 8x fewer MACs in the big conv: clearly faster on any CPU
    doc = cost.to_json()
    assert doc["overhead_ms"] == cost.overhead_ms and len(doc["entries"]) == 6


def test_pruning_multiple_follows_the_isa() -> None:
    from edgeauto.devices.profile import load_profile

    host = load_profile("host")
    assert host.pruning_multiple == (16 if host.spec.isa.startswith("x86") else 8)
    assert load_profile("raspberry-pi-4").pruning_multiple == 8
    pi = load_profile("raspberry-pi-4")
    assert pi.model_copy(update={"channel_multiple": 4}).pruning_multiple == 4


def test_prune_measured_lands_on_the_measured_budget(micro_space, trained_micro, digits) -> None:
    """The table (MACs here) says 1x, the device 1.6x: pruning rescales the cost to the
    unpruned model's measurement and lands just under the measured budget, where pruning to
    the table's number would have been 1.6x over it."""
    model = build_trained(micro_space, trained_micro)
    cost = _macs(DIGITS_SHAPE)

    def device(m: nn.Module) -> float:  # a deterministic stand-in for a slower device
        return 1.6 * cost(m)

    start, budget = device(model), 0.7 * device(model)
    pruner = PRUNERS.get("netadapt")("l1", PruneConfig(round_to=1))
    problem = PruneProblem(DIGITS_SHAPE, cost, budget, digits, "MACs")
    kept, plan = prune_measured(pruner, model, problem, device)
    assert plan.scale == pytest.approx(1.6) and plan.steps[0].cost == pytest.approx(start)
    assert plan.budget == budget and plan.status == "met", plan.message
    # the last step's proposals are measured: it lands in the accept band, or, none of them
    # measuring inside it, on the predicted choice just under the landing point
    assert 0.85 * budget <= device(kept) <= ACCEPT[1] * budget * 1.0001, plan.steps
    assert PruningPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_netadapt_measures_its_last_step(micro_space, trained_micro, digits) -> None:
    """With a measurement, the last step measures the proposals nearest the target and takes
    the best-scored one *measured* inside the band, and pruning stops there (its message says
    so); without one, it ends on the predicted choice."""
    model = build_trained(micro_space, trained_micro)
    cost = _macs(DIGITS_SHAPE)
    calls: list[float] = []

    def device(m: nn.Module) -> float:  # reads 12% under the prediction
        calls.append(0.88 * cost(m))
        return calls[-1]

    budget = 0.8 * cost(model)
    band = (0.85 * budget, 0.875 * budget)
    cfg = PruneConfig(round_to=1, measured_proposals=5)
    problem = PruneProblem(DIGITS_SHAPE, cost, budget, digits, "MACs", device, band)
    plan = PRUNERS.get("netadapt")("l1", cfg).prune(model, problem)
    assert 0 < len(calls) <= 5 and band[0] <= 0.88 * cost(model) <= band[1], calls
    assert plan.status == "met" and plan.message.startswith("measured"), plan.message
    alone = PruneProblem(DIGITS_SHAPE, cost, budget, digits, "MACs")
    plan = PRUNERS.get("netadapt")("l1", cfg).prune(
        build_trained(micro_space, trained_micro), alone
    )
    assert plan.status == "met" and not plan.message.startswith("measured")


def test_from_rounds_drops_a_disturbed_round() -> None:
    quiet, slow = [0.100] * 50, [0.141] * 50  # a session slowed by other load (+41%)
    stat = LatencyStat.from_rounds([quiet, slow, quiet])
    assert (stat.median_ms, stat.runs) == (0.100, 100)
    near = LatencyStat.from_rounds([[0.100] * 10, [0.105] * 10])  # within 10%: both kept
    assert near.runs == 20 and near.p90_ms == 0.105


def test_landing_keeps_the_state_nearest_the_landing_point() -> None:
    """No state in the band (the 4 takes of a real run): the one within the budget nearest
    0.95x is kept, not the slowest (0.975x verified at 1.005x); none within: the fastest."""
    from edgeauto.compress.landing import _keep

    plan = PruningPlan("l1", 1.0).to_json()
    tried = [(x, nn.Identity(), plan) for x in (0.926, 0.921, 0.899, 0.975, 1.02)]
    assert _keep(tried, 1.0, 0.95)[0] == 0.926
    assert _keep([*tried[-1:], (1.1, nn.Identity(), plan)], 1.0, 0.95)[0] == 1.02


def test_next_target_interpolates_between_the_misses_around_the_landing_point() -> None:
    """The real run's trace: from the unpruned model (0.604 ms) and one undershoot, the next
    target lies between them where the line through both reaches the landing point; with
    misses on one side only it is rescaled from the nearest."""
    from edgeauto.compress.landing import next_target

    seen = [(0.604, 0.604), (0.384, 0.278)]
    t = next_target(seen, 0.384)
    assert t == pytest.approx(0.384 + (0.384 - 0.278) * (0.604 - 0.384) / (0.604 - 0.278))
    assert 0.384 < t < 0.604
    closer = [*seen, (0.512, 0.467), (0.406, 0.304)]  # the nearest pair each side is used
    assert next_target(closer, 0.384) == pytest.approx(0.406 + 0.080 * 0.106 / 0.163)
    assert next_target([(0.6, 0.6), (0.5, 0.45)], 0.384) == pytest.approx(0.5 * 0.384 / 0.45)
    # the real trace that repeated a target: the largest target under the aim is the end
    trace = [(0.6, 0.6), (0.415, 0.333), (0.473, 0.389), (0.489, 0.387)]
    assert next_target(trace, 0.415) == pytest.approx(0.489 + 0.028 * 0.111 / 0.213)


@pytest.mark.parametrize("curve", ["linear", "convex"])
def test_smallest_meeting_finds_the_smallest_cut_in_few_proposals(curve: str) -> None:
    """Between a missing and a meeting cut, the smallest multiple of the step that meets
    the target is found; on a linear cost in 2 proposals (bisection took 7), on a convex
    one in 8 or fewer."""
    from edgeauto.compress.netadapt import Proposal, _smallest_meeting

    made: list[int] = []

    def make(k: int) -> Proposal:
        made.append(k)
        share = k / 960
        cost = 1.0 - 0.5 * (share if curve == "linear" else share**2)
        return Proposal(f"cut {k}", [], nn.Identity(), cost)

    target = 0.8
    got = _smallest_meeting(make, (8, make(8)), (864, make(864)), target, 8)
    proposals = len(made) - 2
    want = min(k for k in range(8, 865, 8) if make(k).cost <= target)
    assert int(got.action.split()[1]) == want
    assert proposals <= (2 if curve == "linear" else 8)


def _planted_contributions(seed: int) -> torch.Tensor:
    """Hidden neurons' contributions to a two-layer net's output, where neurons 0-2 alone
    reproduce it exactly: 3/4 and 5/6 are pairs of equal activations and opposite output
    weights (large, and correlated with the output, so they cancel), 7 is dead."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 6, generator=g)
    w1, w2 = torch.randn(8, 6, generator=g), torch.randn(4, 8, generator=g)
    w1[4], w1[6] = w1[3], w1[5]
    w2[:, 3], w2[:, 5] = 3 * (w2[:, 0] + w2[:, 1] + w2[:, 2]), 3 * (w2[:, 0] - w2[:, 2])
    w2[:, 4], w2[:, 6], w2[:, 7] = -w2[:, 3], -w2[:, 5], 0.0
    second = nn.Linear(8, 4, bias=False)
    with torch.no_grad():
        second.weight.copy_(w2)
    return contributions(second, torch.relu(x @ w1.T)).double()


def _greedy(c: torch.Tensor, k: int) -> list[int]:
    """Greedy pursuit alone (the criterion before merge-and-prune): one channel at a time,
    the most correlated with what the picked ones leave unexplained."""
    picked: list[int] = []
    for _ in range(k):
        corr = (c @ (c.sum(0) - c[picked].sum(0))).abs()
        corr[picked] = -1.0
        picked.append(int(corr.argmax()))
    return sorted(picked)


@pytest.mark.parametrize("seed", range(6))
def test_ispasp_merge_and_prune_recovers_the_planted_neurons(seed: int) -> None:
    c = _planted_contributions(seed)
    y = c.sum(0)

    def error(support: list[int]) -> float:
        return float((y - c[support].sum(0)).norm() / y.norm())

    assert error([0, 1, 2]) < 1e-12  # the planted subset reproduces the output exactly
    gram, corr = c @ c.T, c @ y
    found = merge_prune(gram, corr, 3).nonzero().squeeze(1).tolist()
    assert found == [0, 1, 2]
    assert sorted(pursuit_rank(c.float()).topk(3).indices.tolist()) == [0, 1, 2]
    # greedy picks alone (seed 1 aside) keep a cancelling decoy and miss the output
    greedy = _greedy(c, 3)
    assert (greedy == [0, 1, 2]) == (seed == 1)
    assert seed == 1 or error(greedy) > 0.3
    # the merge step moves the support where the residual says: one iteration is not it
    first = merge_prune(gram, corr, 3, iters=1).nonzero().squeeze(1).tolist()
    assert (first == [0, 1, 2]) == (seed in (1, 5))


def test_ispasp_rank_keeps_each_level_support() -> None:
    c = torch.randn(16, 200, generator=torch.Generator().manual_seed(0)).double()
    score = pursuit_rank(c.float())
    gram, corr = c @ c.T, c @ c.sum(0)
    top = set(score.topk(14).indices.tolist())  # 16 * 7 / 8: the first level's size
    assert top == set(merge_prune(gram, corr, 14).nonzero().squeeze(1).tolist())
