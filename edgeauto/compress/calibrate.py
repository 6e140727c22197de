"""Prune to a *measured* budget: predict, prune, measure the whole model, aim lower, repeat.

A table's sum of blocks misses the whole model's latency by a few percent either way; a
model pruned to exactly the predicted budget is then over it when measured. Each miss lowers
the target by the measured ratio; the measured-fastest state is kept, since pruned widths are
not always faster (a calibration step can backfire).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

from torch import nn

from edgeauto.compress.base import PruneProblem, Pruner, PruningPlan

MAX_CALIBRATIONS = 3  # whole-model measurements that may send pruning on


def _scaled(problem: PruneProblem, ratio: float) -> PruneProblem:
    """``problem`` with its cost multiplied by ``ratio`` (measured / predicted, whole model).

    A sum of per-layer times can be off by 2x for a whole network (a residual net's adds and
    its layers' shared overhead): without this, pruning to the predicted budget cut a model to
    half the measured budget, losing accuracy for nothing.
    """
    cost = problem.cost
    return dataclasses.replace(problem, cost=lambda m: cost(m) * ratio)


def prune_measured(
    pruner: Pruner,
    model: nn.Module,
    problem: PruneProblem,
    measure: Callable[[nn.Module], float] | None,
    on_attempt: Callable[[int], None] | None = None,
    scale: bool = True,
) -> tuple[nn.Module, PruningPlan]:
    """Prune ``model`` (in place) until ``measure(model) <= problem.budget``.

    With ``scale`` the cost is first multiplied by the unpruned model's measured / predicted
    ratio, so pruning aims at the real latency from the start (pass False for a cost that is
    already calibrated, such as a block table with a verification history). Returns the kept model (``model`` itself, or a
    copy of an earlier, measured-faster state) and its plan. Without ``measure`` (a device that cannot be reached) this is one
    :meth:`Pruner.prune` to the predicted budget.
    """
    plan = PruningPlan(pruner.criterion.name, problem.budget, pruner.name, problem.unit)
    if measure is not None and scale:
        problem = _scaled(problem, measure(model) / problem.cost(model))
    best: tuple[float, nn.Module, dict] | None = None
    target, measured = problem.budget, None
    for attempt in range(1, MAX_CALIBRATIONS + 1):
        n_ops = len(plan.ops)
        pruner.prune(model, dataclasses.replace(problem, budget=target), plan)
        if on_attempt:
            on_attempt(attempt)
        measured = measure(model) if measure is not None and plan.ops else None
        if measured is not None and (best is None or measured < best[0]):
            best = (measured, copy.deepcopy(model), plan.to_json())
        if measured is None or measured <= problem.budget or len(plan.ops) == n_ops:
            break
        plan.calibrations.append((target, measured))
        target *= problem.budget / measured  # aim lower by the measured miss
    if best is not None and measured is not None and best[0] < measured:
        model, plan = best[1], PruningPlan.from_json(best[2])
    plan.budget = problem.budget
    return model, plan
