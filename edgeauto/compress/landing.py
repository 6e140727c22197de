"""Prune to a *measured* budget: predict, prune, measure the whole model, re-aim, repeat.

A table's sum of blocks misses the whole model's latency, by a few percent or, for one arch
whose slow blocks the table underrates, by 40%. The cost is first rescaled to the unpruned
model measured whole; after pruning the whole model is measured again. The next target is
interpolated between the (target, measured) pairs on either side of the landing point
(:func:`next_target`). Over the budget, pruning goes on towards it; far under it (the
rescaled cost overrated the blocks pruning removed), pruning starts again from the unpruned
model. Of the states measured, the one within the budget nearest the
landing point is kept, else the fastest.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

from torch import nn

from edgeauto.budget import Budget
from edgeauto.compress.base import PruneProblem, Pruner, PruningPlan

MAX_ATTEMPTS = 4  # whole-model measurements that may send pruning on


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
    bands: Budget | None = None,
) -> tuple[nn.Module, PruningPlan]:
    """Prune ``model`` (in place) until ``measure(model)`` lands in the accept band of
    ``problem.budget`` (``bands``: :data:`edgeauto.budget.ACCEPT` by default), in at most
    :data:`MAX_ATTEMPTS` attempts.

    The cost is first multiplied by the unpruned model's measured / predicted ratio
    (``plan.scale``), so pruning aims at the real latency from the start, whatever the
    table's calibration; each attempt aims at the budget's landing point, corrected by the
    misses before it (``plan.misses``). Returns the kept model (``model`` itself or a
    copy of another measured state) and its plan. Without ``measure`` (a device that cannot
    be reached) this is one :meth:`Pruner.prune` to the predicted budget.
    """
    plan = PruningPlan(pruner.criterion.name, problem.budget, pruner.name, problem.unit)
    if measure is None:
        return model, pruner.prune(model, problem, plan)
    original = copy.deepcopy(model)
    whole = measure(model)
    plan.scale = whole / problem.cost(model)
    problem = _scaled(problem, plan.scale)
    budget = problem.budget
    bands = (bands or Budget(budget)).at(budget)
    band = (bands.accept[0] * budget, bands.accept[1] * budget)
    problem = dataclasses.replace(problem, measure=measure, band=band)
    aim = target = bands.landing_ms
    seen = [(whole, whole)]  # (target, measured): the unpruned model first
    tried: list[tuple[float, nn.Module, dict]] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        n_ops = len(plan.ops)
        pruner.prune(model, dataclasses.replace(problem, budget=target), plan)
        if on_attempt:
            on_attempt(attempt)
        if len(plan.ops) == n_ops:
            break  # nothing more was pruned: already within the target, or at the floor
        measured = measure(model)
        tried.append((measured, copy.deepcopy(model), plan.to_json()))
        if bands.accepts(measured):
            break
        plan.misses.append((target, measured))
        seen.append((target, measured))
        target = next_target(seen, aim)
        if measured < bands.accept[0] * budget:  # too deep: start again from the unpruned model
            model = copy.deepcopy(original)
            plan = dataclasses.replace(plan, ops=[], steps=[], status="met", message="")
    model, plan = _settle(tried, model, plan, budget, bands.landing_ms)
    plan.budget = budget
    return model, plan


def next_target(seen: list[tuple[float, float]], aim: float) -> float:
    """The next attempt's target from the (target, measured) pairs so far, the unpruned
    model first (its target is its own measured latency): interpolated between the pairs
    nearest ``aim`` on either side (by target: a bracket chosen by measured latency kept
    one CIFAR run at the same target twice), else rescaled from the nearest pair.

    Interpolated, not rescaled: measured here (CIFAR MobileNetV2 to 0.404 ms), targets
    0.384, 0.530, 0.406 and 0.512 ms gave 0.278, 0.501, 0.304 and 0.467 ms; rescaling by
    ``aim / measured`` jumped across the band each time, as a step of the cost model moves
    the measured latency 1.5x as far as its prediction.
    """
    below = [p for p in seen if p[1] < aim]
    above = [p for p in seen if p[1] > aim]
    if below and above:  # the bracket's ends by target, so that it shrinks every attempt
        (t0, m0), (t1, m1) = max(below), min(above)
        if t0 < t1 and m0 < m1:
            return t0 + (aim - m0) * (t1 - t0) / (m1 - m0)
        return (t0 + t1) / 2
    target, measured = min(seen[1:] or seen, key=lambda p: abs(p[1] - aim))
    return target * aim / measured


def _settle(
    tried: list[tuple[float, nn.Module, dict]],
    model: nn.Module,
    plan: PruningPlan,
    budget: float,
    landing: float,
) -> tuple[nn.Module, PruningPlan]:
    """The state pruning ends in, with a plan that says what was met (the measured budget,
    not a target) and the whole trace of misses, whichever state is kept."""
    if tried:
        misses = plan.misses
        measured, model, plan = _keep(tried, budget, landing)
        plan.misses = misses
        if measured <= budget:
            plan.status, plan.message = "met", f"measured {measured:.4g} {plan.unit} <= {budget:g}"
    elif plan.status == "already":
        plan.message = f"{plan.steps[0].cost:.4g} {plan.unit} already meets {budget:g}"
    return model, plan


def _keep(
    tried: list[tuple[float, nn.Module, dict]], budget: float, landing: float
) -> tuple[float, nn.Module, PruningPlan]:
    """The measured state within ``budget`` nearest the ``landing`` point, else the fastest.

    Nearest, not slowest: the verdict times the model again, and two takes differ by a few
    percent either way (a state kept at 0.975x verified at 1.005x), so a state just under the
    budget is as likely to fail as one far under it is to waste capacity."""
    under = [t for t in tried if t[0] <= budget]
    if under:
        ms, model, plan = min(under, key=lambda t: abs(t[0] - landing))
    else:
        ms, model, plan = min(tried, key=lambda t: t[0])
    return ms, model, PruningPlan.from_json(plan)
