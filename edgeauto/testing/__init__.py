"""Conformance suites every registered component must pass (Optuna-style).

The project's tests call these for every name in the registries, so a new space, strategy,
pruner or runtime is checked the moment it registers. Third-party components can call them too.
"""

from edgeauto.testing.conformance import (
    check_criterion,
    check_pruner,
    check_runtime,
    check_space,
    check_strategy,
)
from edgeauto.testing.sparse import check_sparse_method

__all__ = [
    "check_criterion",
    "check_pruner",
    "check_runtime",
    "check_space",
    "check_sparse_method",
    "check_strategy",
]
