"""Structured compression."""

from edgeauto.compress import l1 as _l1  # noqa: F401  (registers pruners)
from edgeauto.compress.base import (
    PRUNERS,
    PruneConfig,
    PruneOp,
    Pruner,
    PruneStep,
    PruningPlan,
    count_params,
    list_pruners,
)  # fmt: skip

__all__ = [
    "PRUNERS", "PruneConfig", "PruneOp", "PruneStep", "Pruner", "PruningPlan", "count_params",
    "list_pruners",
]  # fmt: skip
