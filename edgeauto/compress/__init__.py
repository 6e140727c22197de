"""Structured compression: importance criteria x allocation strategies, as replayable plans."""

from edgeauto.compress import gradient as _gradient  # noqa: F401  (registers criteria)
from edgeauto.compress import ispasp as _ispasp  # noqa: F401
from edgeauto.compress import netadapt as _netadapt  # noqa: F401  (registers pruners)
from edgeauto.compress import uniform as _uniform  # noqa: F401
from edgeauto.compress.base import (
    PRUNERS,
    PruneConfig,
    PruneOp,
    PruneProblem,
    Pruner,
    PruneStep,
    PruningPlan,
    count_macs,
    count_params,
    list_pruners,
)
from edgeauto.compress.criteria import CRITERIA, Criterion, get_criterion, list_criteria

__all__ = [
    "CRITERIA", "PRUNERS", "Criterion", "PruneConfig", "PruneOp", "PruneProblem", "PruneStep",
    "Pruner", "PruningPlan", "count_macs", "count_params", "get_criterion", "list_criteria",
    "list_pruners",
]  # fmt: skip
