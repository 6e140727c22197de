"""Structured pruning as replayable data: a :class:`PruningPlan` of :class:`PruneOp` records.

Torch-Pruning builds the dependency graph (residual adds, depthwise convs) so that pruning
one channel prunes every coupled tensor; we record its history and can replay it on a fresh
model built from the same arch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from edgeauto.errors import ConfigError
from edgeauto.registry import Registry

LatencyOf = Callable[[nn.Module], float]


@dataclass(frozen=True)
class PruneOp:
    """Remove channels ``idxs`` of ``module`` (output channels unless ``out_channels`` is False)."""

    module: str
    out_channels: bool
    idxs: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "out_channels": self.out_channels, "idxs": list(self.idxs)}


@dataclass(frozen=True)
class PruneStep:
    """What one pruning step did, for the report."""

    step: int
    predicted_ms: float
    params: int


@dataclass
class PruningPlan:
    """The ops to replay, in order, plus the step-by-step trace."""

    criterion: str
    budget_ms: float
    ops: list[PruneOp] = field(default_factory=list)
    steps: list[PruneStep] = field(default_factory=list)
    # (target_ms, measured_ms) whenever a measurement of the whole model sent pruning on
    calibrations: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "budget_ms": self.budget_ms,
            "ops": [op.to_json() for op in self.ops],
            "steps": [vars(s) for s in self.steps],
            "calibrations": [{"target_ms": t, "measured_ms": m} for t, m in self.calibrations],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PruningPlan:
        try:
            ops = [
                PruneOp(o["module"], bool(o["out_channels"]), tuple(o["idxs"])) for o in data["ops"]
            ]
            steps = [PruneStep(**s) for s in data.get("steps", [])]
            cal = [
                (float(c["target_ms"]), float(c["measured_ms"]))
                for c in data.get("calibrations", [])
            ]
            return cls(data["criterion"], float(data["budget_ms"]), ops, steps, cal)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"pruning plan JSON is malformed: missing {exc}") from None

    def apply(self, model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
        """Replay the plan on ``model`` (built from the same arch) in place."""
        dg = tp.DependencyGraph().build_dependency(
            model, example_inputs=torch.zeros(1, *input_shape)
        )
        dg.load_pruning_history([(op.module, op.out_channels, list(op.idxs)) for op in self.ops])
        return model


@dataclass(frozen=True)
class PruneConfig:
    """How hard each step prunes and when to stop."""

    step_ratio: float = 0.1
    max_steps: int = 30
    # Keep channel counts multiples of this: XNNPACK's kernels run odd widths slower, so an
    # unrounded step can make a model *slower* (measured: 0.056 -> 0.087 ms on the host).
    round_to: int | None = 4

    def __post_init__(self) -> None:
        if not 0.0 < self.step_ratio < 1.0:
            raise ConfigError(f"step_ratio must be in (0, 1), got {self.step_ratio}")
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.round_to is not None and self.round_to < 1:
            raise ConfigError(f"round_to must be >= 1 or None, got {self.round_to}")


class Pruner(abc.ABC):
    """Prunes a model step by step until its predicted latency meets a budget."""

    name: str = "abstract"

    def __init__(self, config: PruneConfig | None = None) -> None:
        self.config = config or PruneConfig()

    @abc.abstractmethod
    def importance(self) -> tp.importance.Importance:
        """The channel-importance criterion (a Torch-Pruning importance)."""

    def prune_to_budget(
        self,
        model: nn.Module,
        input_shape: tuple[int, ...],
        latency_of: LatencyOf,
        budget_ms: float,
        plan: PruningPlan | None = None,
    ) -> PruningPlan:
        """Prune ``model`` in place until ``latency_of(model) <= budget_ms`` or nothing is left.

        Pass the ``plan`` of an earlier call to continue it (its ops and steps are extended).
        """
        plan = plan or PruningPlan(self.name, budget_ms)
        ms = latency_of(model)
        if not plan.steps:
            plan.steps.append(PruneStep(0, ms, count_params(model)))
        for _ in range(self.config.max_steps):
            if ms <= budget_ms:
                break
            ops = self._step(model, input_shape)
            if not ops:
                break
            plan.ops.extend(ops)
            ms = latency_of(model)
            plan.steps.append(PruneStep(len(plan.steps), ms, count_params(model)))
        return plan

    def _step(self, model: nn.Module, input_shape: tuple[int, ...]) -> list[PruneOp]:
        """One step; the ratio doubles while rounding leaves a step with nothing to prune."""
        ratio = self.config.step_ratio
        while ratio < 1.0:
            ops = self._step_at(model, input_shape, ratio)
            if ops:
                return ops
            ratio *= 2  # narrow layers: 10% of 8 channels rounds to 0 at round_to=4
        return []

    def _step_at(
        self, model: nn.Module, input_shape: tuple[int, ...], ratio: float
    ) -> list[PruneOp]:
        example = torch.zeros(1, *input_shape)
        ignored = [m for m in model.modules() if isinstance(m, nn.Linear)]  # keep the classes
        pruner = tp.pruner.MetaPruner(
            model, example, importance=self.importance(), pruning_ratio=ratio,
            ignored_layers=ignored, round_to=self.config.round_to,
        )  # fmt: skip
        model.train(False)
        with torch.no_grad():
            pruner.step()
        return [
            PruneOp(n, bool(o), tuple(int(i) for i in idx))
            for n, o, idx in pruner.DG.pruning_history()
        ]


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


PRUNERS: Registry[type[Pruner]] = Registry("pruner")


def list_pruners() -> list[str]:
    """Names of the registered pruners."""
    return PRUNERS.names()
