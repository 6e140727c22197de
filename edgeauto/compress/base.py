"""Structured pruning as replayable data: a :class:`PruningPlan` of :class:`PruneOp` records.

Torch-Pruning builds the dependency graph (residual adds, depthwise convs, SE blocks, linear
heads) so that pruning one channel prunes every coupled tensor; we record its history, plus
whole-block removals, and replay both on a fresh model built the same way.

Roles: a :class:`~edgeauto.compress.criteria.Criterion` says which channels matter; a
:class:`Pruner` (an allocation strategy: ``uniform`` or ``netadapt``) says how many channels
each layer loses, and which blocks go, to meet a :class:`PruneProblem`'s budget.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from edgeauto.compress.criteria import Criterion, get_criterion
from edgeauto.compress.graph import build_graph, remove_module
from edgeauto.compress.scratch import recalibrate_bn
from edgeauto.counting import count_macs, count_params  # noqa: F401  (one convention, re-exported)
from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.registry import Registry

CostOf = Callable[[nn.Module], float]
#: Kept for the callers that prune to milliseconds.
LatencyOf = CostOf


@dataclass(frozen=True)
class PruneOp:
    """One replayable change.

    ``kind="channels"``: remove channels ``idxs`` of ``module`` (output channels unless
    ``out_channels`` is False), with every coupled tensor. ``kind="remove"``: replace the
    block ``module`` by an identity (depth pruning).
    """

    module: str
    out_channels: bool
    idxs: tuple[int, ...]
    kind: Literal["channels", "remove"] = "channels"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "module": self.module, "out_channels": self.out_channels,
            "idxs": list(self.idxs),
        }  # fmt: skip

    @classmethod
    def from_json(cls, o: dict[str, Any]) -> PruneOp:
        kind = o.get("kind", "channels")
        if kind not in ("channels", "remove"):
            raise ConfigError(f"PruneOp.kind must be 'channels' or 'remove', got {kind!r}")
        return cls(o["module"], bool(o["out_channels"]), tuple(int(i) for i in o["idxs"]), kind)


@dataclass(frozen=True)
class PruneStep:
    """What one pruning step did, for the report: the cost after it and the parameter count."""

    step: int
    cost: float
    params: int
    action: str = ""


@dataclass
class PruningPlan:
    """The ops to replay, in order, plus the step-by-step trace and how pruning ended.

    ``status`` is ``"met"`` (cost <= budget), ``"already"`` (met before any pruning),
    ``"floor"`` (nothing left to prune: the budget is unreachable) or ``"max_steps"``.
    """

    criterion: str
    budget: float
    allocation: str = "uniform"
    unit: str = "ms"
    ops: list[PruneOp] = field(default_factory=list)
    steps: list[PruneStep] = field(default_factory=list)
    # (target, measured) whenever a whole-model measurement missed the landing band and sent
    # pruning on (:func:`edgeauto.compress.landing.prune_measured`)
    misses: list[tuple[float, float]] = field(default_factory=list)
    status: str = "met"
    message: str = ""
    # the cost of every step was multiplied by this (whole model measured / predicted, before
    # pruning: :func:`edgeauto.compress.landing.prune_measured`); 1.0 when not measured
    scale: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion, "allocation": self.allocation, "budget": self.budget,
            "unit": self.unit, "status": self.status, "message": self.message,
            "ops": [op.to_json() for op in self.ops],
            "steps": [vars(s) for s in self.steps],
            "misses": [{"target": t, "measured": m} for t, m in self.misses],
            "scale": self.scale,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PruningPlan:
        try:
            return cls(
                data["criterion"], float(data["budget"]), data.get("allocation", "uniform"),
                data.get("unit", "ms"), [PruneOp.from_json(o) for o in data["ops"]],
                [PruneStep(**s) for s in data.get("steps", [])],
                [(float(c["target"]), float(c["measured"])) for c in data.get("misses", [])],
                data.get("status", "met"), data.get("message", ""), float(data.get("scale", 1.0)),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"pruning plan JSON is malformed: missing or bad {exc}; fix the plan record"
            ) from None

    def apply(self, model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
        """Replay the plan on ``model`` (built the same way as the pruned one) in place."""
        segment: list[PruneOp] = []
        for op in [*self.ops, None]:
            if op is not None and op.kind == "channels":
                segment.append(op)
                continue
            if segment:  # a graph per run of channel ops: removals change the graph
                dg = build_graph(model, input_shape)
                dg.load_pruning_history([(o.module, o.out_channels, list(o.idxs)) for o in segment])
                segment = []
            if op is not None:
                remove_module(model, op.module)
        return model


@dataclass(frozen=True)
class PruneProblem:
    """What to prune towards: ``cost(model) <= budget``, in ``unit``.

    ``cost`` is any monotone cost: predicted latency from a table, latency measured on the
    device, or FLOPs. ``data`` feeds data-driven criteria and the accuracy proxy.
    """

    input_shape: tuple[int, ...]
    cost: CostOf
    budget: float
    data: Dataset | None = None
    unit: str = "ms"
    #: The whole model measured on the device, and the measured range a pruned model should
    #: land in: a pruner may check its last step's proposals with it (netadapt does), since
    #: a predicted step can miss by more than the range is wide. None: predictions only.
    measure: CostOf | None = None
    band: tuple[float, float] | None = None


@dataclass(frozen=True)
class PruneConfig:
    """How pruning proceeds and when it stops."""

    max_steps: int = 30
    # Keep channel counts multiples of this: XNNPACK's kernels run odd widths slower, so an
    # unrounded step can make a model *slower* (measured: 0.056 -> 0.087 ms on the host).
    round_to: int | None = 4
    max_ratio: float = 0.9  # never remove more than this share of a layer's channels
    depth: bool = True  # netadapt: also propose removing residual blocks / same-shape layers
    iterations: int = 6  # netadapt: the budget gap is closed in about this many steps
    proxy_samples: int = 512  # validation samples for the accuracy proxy
    finetune_batches: int = 0  # netadapt: short fine-tune after each step (0 = none)
    # netadapt with a measurement: last-step proposals (nearest the target) measured whole
    measured_proposals: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "max_steps": self.max_steps >= 1, "iterations": self.iterations >= 1,
            "round_to": self.round_to is None or self.round_to >= 1,
            "max_ratio": 0.0 < self.max_ratio < 1.0, "proxy_samples": self.proxy_samples >= 1,
            "finetune_batches": self.finetune_batches >= 0,
            "measured_proposals": self.measured_proposals >= 0,
        }  # fmt: skip
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"PruneConfig.{name} is out of range: {getattr(self, name)}")


class Pruner(abc.ABC):
    """Decides how many channels each layer loses (and which blocks go) to meet a budget.

    Example:
        >>> pruner = PRUNERS.get("netadapt")(criterion="taylor")
        >>> plan = pruner.plan(model, PruneProblem((1, 28, 28), cost, budget=0.05, data=data))
        >>> pruner.apply(fresh_model, plan)  # the same structure, replayed
    """

    name: str = "abstract"

    def __init__(self, criterion: Criterion | str = "l1", config: PruneConfig | None = None):
        self.criterion = get_criterion(criterion) if isinstance(criterion, str) else criterion
        self.config = config or PruneConfig()

    def plan(self, model: nn.Module, problem: PruneProblem) -> PruningPlan:
        """The plan that brings a copy of ``model`` within budget; ``model`` is not changed."""
        return self.prune(copy.deepcopy(model), problem)

    def apply(self, model: nn.Module, plan: PruningPlan, input_shape: tuple[int, ...]) -> None:
        """Replay ``plan`` on ``model`` in place."""
        plan.apply(model, input_shape)

    def prune(
        self, model: nn.Module, problem: PruneProblem, plan: PruningPlan | None = None
    ) -> PruningPlan:
        """Prune ``model`` in place; pass an earlier ``plan`` to continue it."""
        if self.criterion.needs_data and problem.data is None:
            raise ConfigError(
                f"criterion {self.criterion.name!r} needs data; pass PruneProblem(data=...)"
            )
        plan = plan or PruningPlan(self.criterion.name, problem.budget, self.name, problem.unit)
        plan.budget = problem.budget
        cost = problem.cost(model)
        if not plan.steps:
            plan.steps.append(PruneStep(0, cost, count_params(model), "start"))
        if cost <= problem.budget:
            plan.status = "already" if not plan.ops else "met"
            plan.message = f"{cost:.4g} {problem.unit} already meets {problem.budget:g}"
            return plan
        model.train(False)
        self._run(model, problem, plan)
        if problem.data is not None and plan.ops:
            recalibrate_bn(model, problem.data.x_train[: self.config.proxy_samples])
        return plan

    @abc.abstractmethod
    def _run(self, model: nn.Module, problem: PruneProblem, plan: PruningPlan) -> None:
        """Prune ``model`` in place until the budget is met, recording into ``plan``."""

    def _finish(self, plan: PruningPlan, problem: PruneProblem, cost: float, why: str) -> None:
        if cost <= problem.budget:
            plan.status, plan.message = "met", f"{cost:.4g} {problem.unit} <= {problem.budget:g}"
        else:
            plan.status = why
            plan.message = (
                f"stopped at {cost:.4g} {problem.unit}, above the budget {problem.budget:g}: "
                + ("no layer can lose more channels" if why == "floor" else "step limit reached")
            )


PRUNERS: Registry[type[Pruner]] = Registry("pruner")


def list_pruners() -> list[str]:
    """Names of the registered pruners (allocation strategies)."""
    return PRUNERS.names()
