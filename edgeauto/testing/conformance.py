"""The checks themselves. Each raises ``AssertionError`` with the broken invariant."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgeauto.compress import PRUNERS, count_params
from edgeauto.errors import BudgetInfeasible
from edgeauto.export.onnx import export_onnx
from edgeauto.latency.key import OpKey
from edgeauto.runtimes import get_runtime
from edgeauto.search import STRATEGIES, SearchProblem
from edgeauto.spaces import Arch, get_space


class MacsLatency:
    """A deterministic stand-in predictor for conformance: latency ~ multiply-adds of a key.

    Strategies and pruners must not depend on where latency numbers come from; this one needs
    no runtime, so the suites run in milliseconds.
    """

    def block_ms(self, key: OpKey) -> float:
        oh, ow = key.out_hw
        width = key.hidden or key.cin
        macs = key.cin * key.hidden * key.h * key.w + width * key.kernel**2 * oh * ow
        return 1e-6 * (macs + width * key.cout * oh * ow) + 1e-4

    def predict_keys(self, keys: object) -> float:
        return sum(self.block_ms(k) for k in keys) + 1e-3  # type: ignore[attr-defined]


def check_space(
    name: str, input_shape: tuple[int, int, int] = (1, 12, 12), classes: int = 3
) -> None:
    """Keys of the arch equal the built model's keys; JSON round trip; mutation stays valid."""
    space = get_space(name, input_shape, classes)
    rng = random.Random(0)
    all_keys = space.all_keys()
    for _ in range(10):
        arch = space.sample(rng)
        model = space.build(arch).train(False)
        assert model(torch.zeros(2, *input_shape)).shape == (2, classes), "wrong output shape"
        assert model.op_keys(input_shape[1:]) == space.blocks(arch), "model keys != space.blocks"
        assert set(space.blocks(arch)) <= all_keys, "all_keys misses a key of a sampled arch"
        assert Arch.from_json(arch.to_json()) == arch, "Arch JSON round trip failed"
        space.validate(space.mutate(arch, rng))
    lat = MacsLatency()
    cheapest = space.cost(space.cheapest(lat.block_ms), lat.block_ms)
    assert all(cheapest <= space.cost(space.sample(rng), lat.block_ms) + 1e-12 for _ in range(50))


def _problem(budget: float, seed: int = 0) -> SearchProblem:
    space = get_space("fbnet-micro", (1, 8, 8), 3)
    lat = MacsLatency()
    return SearchProblem(
        space, lat, budget, lambda a: 1.0 / (1.0 + lat.predict_keys(space.blocks(a))), 4, seed
    )


def check_strategy(name: str) -> None:
    """Trials respect the budget, runs are seeded, infeasible budgets raise early."""
    cls = STRATEGIES.get(name)
    probe = _problem(1.0)
    low = probe.predict(probe.space.cheapest(probe.latency.block_ms))
    budget = low * 1.5
    result = cls(_problem(budget)).search()
    assert len(result.trials) == 4, "search must run exactly problem.trials trials"
    assert all(t.predicted_ms <= budget for t in result.trials), "a trial exceeds the budget"
    again = cls(_problem(budget)).search()
    assert [t.arch for t in again.trials] == [t.arch for t in result.trials], "not deterministic"
    try:
        cls(_problem(low * 0.5))
    except BudgetInfeasible:
        pass
    else:
        raise AssertionError("an infeasible budget must raise BudgetInfeasible at construction")


def check_pruner(name: str) -> None:
    """Pruning meets a reachable budget, lowers latency, and the plan replays exactly."""
    space = get_space("fbnet-micro", (1, 8, 8), 3)
    arch = space.sample(random.Random(1))
    torch.manual_seed(0)
    model = space.build(arch).train(False)
    before = space.build(arch)
    before.load_state_dict(model.state_dict())
    lat = MacsLatency()

    def latency_of(m: torch.nn.Module) -> float:
        return lat.predict_keys(m.op_keys((8, 8)))

    start = latency_of(model)
    plan = PRUNERS.get(name)().prune_to_budget(model, (1, 8, 8), latency_of, start * 0.7)
    assert latency_of(model) <= start * 0.7, "pruner stopped above a reachable budget"
    assert plan.ops and plan.steps[-1].params == count_params(model), "plan trace is wrong"
    plan.apply(before, (1, 8, 8))
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(before.train(False)(x), model(x), atol=1e-6), "replayed plan differs"


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
