"""The checks themselves. Each raises ``AssertionError`` with the broken invariant."""

from __future__ import annotations

import copy
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeauto.compress import PRUNERS, PruneProblem, PruningPlan, count_params, get_criterion
from edgeauto.compress.graph import build_graph, prunable_groups
from edgeauto.data import Dataset
from edgeauto.errors import BudgetInfeasible
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import get_runtime
from edgeauto.latency.macs import MacsLatency
from edgeauto.rundir import RunDir
from edgeauto.search import STRATEGIES, SearchProblem
from edgeauto.search.base import SearchResult, Trial
from edgeauto.search.executors import InProcessExecutor
from edgeauto.search.objective import CallableObjective
from edgeauto.search.study import TrialJournal, run_study
from edgeauto.spaces import Arch, get_space


def check_space(
    name: str, input_shape: tuple[int, int, int] = (1, 12, 12), classes: int = 3
) -> None:
    """Keys of the arch equal the built model's keys; JSON round trip; mutation stays valid."""
    space = get_space(name, input_shape, classes)
    rng = random.Random(0)
    all_keys = space.all_keys()
    for i in range(10):
        arch = space.sample(rng)
        model = space.build(arch).train(False)
        if i == 0:  # forwards dominate for full-size spaces (ofa-mbv3 runs at 160-224 px)
            with torch.no_grad():
                out = model(torch.zeros(2, *input_shape))
            assert out.shape == (2, classes), "wrong output shape"
        assert model.op_keys(input_shape[1:]) == space.blocks(arch), "model keys != space.blocks"
        assert set(space.blocks(arch)) <= all_keys, "all_keys misses a key of a sampled arch"
        assert Arch.from_json(arch.to_json()) == arch, "Arch JSON round trip failed"
        space.validate(space.mutate(arch, rng))
    lat = MacsLatency()
    cheapest = space.cost(space.cheapest(lat.block_ms), lat.block_ms)
    assert all(cheapest <= space.cost(space.sample(rng), lat.block_ms) + 1e-12 for _ in range(50))


def _problem(budget: float, seed: int = 0) -> SearchProblem:
    """Strategies that train on their own (``dnas``) get a tiny dataset of the space's shape."""
    space = get_space("fbnet-micro", (1, 8, 8), 3)
    lat = MacsLatency()
    return SearchProblem(
        space, lat, budget, lambda a: 1.0 / (1.0 + lat.predict(space.blocks(a))), 4, seed,
        data=_tiny_data((1, 8, 8), 3),
    )  # fmt: skip


def check_strategy(name: str) -> None:
    """Driven as production drives it (:func:`~edgeauto.search.study.run_study` over an
    executor and a :class:`~edgeauto.search.study.TrialJournal`): trials respect the budget,
    are journalled and reported in order, runs are seeded, a resumed study replays its
    journal without running a trial again, infeasible budgets raise early."""
    cls = STRATEGIES.get(name)
    probe = _problem(1.0)
    low = probe.predict(probe.space.cheapest(probe.latency.block_ms))
    budget = low * 1.5
    with tempfile.TemporaryDirectory() as tmp:
        result, ran = _study(cls, budget, Path(tmp) / "a")
        assert len(result.trials) == 4, "search must run exactly problem.trials trials"
        assert ran == 4, f"the executor ran {ran} trials for 4"
        assert all(t.predicted_ms <= budget for t in result.trials), "a trial exceeds the budget"
        again, _ = _study(cls, budget, Path(tmp) / "b")
        assert [t.arch for t in again.trials] == [t.arch for t in result.trials], (
            "not deterministic"
        )
        resumed, rerun = _study(cls, budget, Path(tmp) / "a")
        assert rerun == 0, f"a resumed study ran {rerun} journalled trials again"
        assert resumed.trials == result.trials, "a resumed study ends otherwise"
    try:
        cls(_problem(low * 0.5))
    except BudgetInfeasible:
        pass
    else:
        raise AssertionError("an infeasible budget must raise BudgetInfeasible at construction")


def _study(
    cls: Callable[[SearchProblem], Any], budget: float, root: Path
) -> tuple[SearchResult, int]:
    """One study in ``root`` (resumed when it holds a journal); the result and how many
    trials the executor ran."""
    problem = _problem(budget)
    calls: list[int] = []

    def evaluate(arch: Arch) -> float:
        calls.append(1)
        return problem.evaluate(arch)

    told: list[Trial] = []
    journal = TrialJournal(RunDir(root))
    executor = InProcessExecutor(CallableObjective(evaluate))
    result = run_study(cls(problem), executor, journal, told.append)
    assert [t.number for t in told] == list(range(len(result.trials))), "on_trial out of order"
    assert told == result.trials, "on_trial saw other trials than the result holds"
    assert journal.load() == {t.number: t for t in result.trials}, "journal != trials"
    for t in result.trials:
        assert t.ok and t.predicted_ms == problem.predict(t.arch), f"trial {t.number}: {t}"
        assert t.accuracy == problem.evaluate(t.arch), f"trial {t.number}: wrong accuracy"
    return result, len(calls)


def _tiny_data(shape: tuple[int, int, int], classes: int, n: int = 64) -> Dataset:
    """Random inputs and labels: the checks below test mechanics, not accuracy."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, *shape, generator=gen), torch.randint(0, classes, (n,), generator=gen)
    return Dataset("synthetic", x, y, x[: n // 2], y[: n // 2], [str(i) for i in range(classes)])


def _micro_model(shape: tuple[int, int, int], classes: int) -> torch.nn.Module:
    space = get_space("fbnet-micro", shape, classes)
    torch.manual_seed(0)
    return space.build(space.sample(random.Random(1))).train(False)


def check_criterion(name: str) -> None:
    """Every prunable group gets one finite score per channel, the same on a copy and again."""
    shape = (1, 8, 8)
    model, data = _micro_model(shape, 3), _tiny_data(shape, 3)
    crit = get_criterion(name)
    crit.prepare(model, data if crit.needs_data else None)
    groups = prunable_groups(build_graph(model, shape), model)
    assert groups, "the micro model has prunable groups"
    scores = {}
    for root, _mod, group in groups:
        s = crit.group_scores(group)
        assert s is not None and s.shape == (len(group[0].root_idxs),), f"{root}: bad shape"
        assert torch.isfinite(s).all(), f"{root}: non-finite scores {s}"
        scores[root] = s
    twin = copy.deepcopy(model)
    crit.bind(twin)
    for root, _mod, group in prunable_groups(build_graph(twin, shape), twin):
        assert torch.allclose(crit.group_scores(group), scores[root]), f"{root}: copy differs"
    again = get_criterion(name)
    again.prepare(model, data if again.needs_data else None)
    for root, _mod, group in groups:
        assert torch.allclose(again.group_scores(group), scores[root]), f"{root}: not seeded"


def check_pruner(name: str, criterion: str = "l1") -> None:
    """Pruning meets a reachable budget, ``plan`` leaves the model alone, plans replay exactly."""
    shape = (1, 8, 8)
    model, data = _micro_model(shape, 3), _tiny_data(shape, 3)
    lat = MacsLatency()

    def latency_of(m: torch.nn.Module) -> float:
        return lat.predict(m.op_keys(shape[1:]))

    start = latency_of(model)
    pruner = PRUNERS.get(name)(criterion)
    problem = PruneProblem(shape, latency_of, start * 0.7, data)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    plan = pruner.plan(model, problem)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items()), "plan() mutated"
    assert plan.status == "met" and plan.ops, f"reachable budget not met: {plan.message}"
    assert plan.steps[-1].cost <= start * 0.7, "plan trace ends above the budget"
    replayed = copy.deepcopy(model)
    pruner.apply(replayed, PruningPlan.from_json(plan.to_json()), shape)
    assert latency_of(replayed) == plan.steps[-1].cost, "replayed plan has another cost"
    assert count_params(replayed) == plan.steps[-1].params, "replayed plan has other params"
    in_place = copy.deepcopy(model)
    pruner.prune(in_place, problem)
    shapes = {k: v.shape for k, v in in_place.state_dict().items()}
    assert shapes == {k: v.shape for k, v in replayed.state_dict().items()}, "replay differs"
    met = pruner.plan(model, PruneProblem(shape, latency_of, start * 1.01, data))
    assert met.status == "already" and not met.ops, "a met budget must be a no-op"


def check_runtime(name: str) -> None:
    """The artifact runs, matches PyTorch within 1e-4, and timing returns sane stats."""
    space = get_space("fbnet-micro", (1, 8, 8), 3)
    model = space.build(space.sample(random.Random(2))).train(False)
    runtime = get_runtime(name)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, (1, 8, 8), Path(tmp) / "m.onnx")
        artifact = runtime.from_onnx(onnx_path, Path(tmp) / f"m{runtime.suffix}")
        x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
        out = runtime.load(artifact, 1).run(x)
        ref = model(torch.from_numpy(x)).detach().numpy()
        assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4, "output differs"
        stat = runtime.measure(artifact, 1, runs=30, warmup=5)
        assert stat.runs == 30 and 0 < stat.median_ms <= stat.p90_ms, f"bad stat {stat}"
        assert runtime.version(), "runtime must report its version"
