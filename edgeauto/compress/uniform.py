"""Uniform allocation: every layer loses the same share of its channels.

The share is found by bisection on copies of the model, so one prune just meets the budget;
this is the baseline the latency-driven ``netadapt`` allocation must beat.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from edgeauto.compress.base import (
    PRUNERS,
    PruneOp,
    PruneProblem,
    Pruner,
    PruneStep,
    PruningPlan,
    count_params,
)
from edgeauto.compress.criteria import Criterion
from edgeauto.compress.graph import check_prunable, classifier_layers

TOLERANCE = 0.01  # bisection stops when the ratio interval is this narrow
UPPER_STEP = 0.1  # scan step when looking for a share that meets the budget


@dataclass(frozen=True)
class Probe:
    """The result of pruning a copy at one share."""

    ratio: float
    ops: list[PruneOp]
    cost: float
    params: int


def prune_uniform(
    model: nn.Module,
    input_shape: tuple[int, ...],
    criterion: Criterion,
    ratio: float,
    round_to: int | None,
) -> list[PruneOp]:
    """Remove ``ratio`` of every prunable layer's channels, least important first."""
    criterion.bind(model)
    pruner = tp.pruner.MetaPruner(
        model, torch.zeros(1, *input_shape), importance=criterion.as_importance(),
        pruning_ratio=ratio, ignored_layers=classifier_layers(model), round_to=round_to,
    )  # fmt: skip
    model.train(False)
    with torch.no_grad():
        pruner.step()
    return [
        PruneOp(n, bool(o), tuple(int(i) for i in idx)) for n, o, idx in pruner.DG.pruning_history()
    ]


@PRUNERS.register("uniform")
class UniformPruner(Pruner):
    """The same channel share from every layer, the smallest share that meets the budget."""

    name = "uniform"

    def _run(self, model: nn.Module, problem: PruneProblem, plan: PruningPlan) -> None:
        shape = problem.input_shape
        check_prunable(model, shape)  # a clear error for untraceable models, before any work
        if self.criterion.needs_data:
            self.criterion.prepare(model, problem.data)
        best = self._upper(model, problem)
        lo, hi = 0.0, best.ratio
        while best.cost <= problem.budget and hi - lo >= TOLERANCE:
            probe = self._probe(model, problem, (lo + hi) / 2)
            if probe.cost <= problem.budget:
                best, hi = probe, probe.ratio
            else:
                lo = probe.ratio
        PruningPlan("", 0.0, ops=best.ops).apply(model, shape)
        plan.ops.extend(best.ops)
        action = f"uniform ratio {best.ratio:.3f}"
        plan.steps.append(PruneStep(len(plan.steps), best.cost, best.params, action))
        self._finish(plan, problem, best.cost, "floor")

    def _probe(self, model: nn.Module, problem: PruneProblem, ratio: float) -> Probe:
        cand = copy.deepcopy(model)
        ops = prune_uniform(cand, problem.input_shape, self.criterion, ratio, self.config.round_to)
        return Probe(ratio, ops, problem.cost(cand), count_params(cand))

    def _upper(self, model: nn.Module, problem: PruneProblem) -> Probe:
        """The largest share that meets the budget, or the cheapest one when none does.

        Not simply ``max_ratio``: Torch-Pruning skips a layer whose rounded width would reach
        zero, so a larger share can prune *less* on narrow layers.
        """
        cheapest: Probe | None = None
        ratio = self.config.max_ratio
        while ratio > TOLERANCE:
            probe = self._probe(model, problem, ratio)
            if probe.cost <= problem.budget:
                return probe
            if cheapest is None or probe.cost < cheapest.cost:
                cheapest = probe
            ratio -= UPPER_STEP
        assert cheapest is not None  # max_ratio > TOLERANCE by PruneConfig's check
        return cheapest
