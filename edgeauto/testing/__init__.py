"""Conformance suites every registered component must pass (Optuna-style).

The project's tests call these for every name in the registries, so a new space, strategy,
pruner, runtime, latency model, runner, importer or executor is checked the moment it
registers. Third-party components can call them too. :data:`CHECKS` maps every registry's
role (``Registry.role``) to its check; a registry without an entry fails the test suite.
"""

from collections.abc import Callable
from typing import Any

from edgeauto.latency.macs import MacsLatency
from edgeauto.testing.common import CheckSkipped
from edgeauto.testing.conformance import (
    check_criterion,
    check_pruner,
    check_runtime,
    check_space,
    check_strategy,
)
from edgeauto.testing.executors import check_executor
from edgeauto.testing.grow import check_growth_init
from edgeauto.testing.importers import check_importer
from edgeauto.testing.latency import EXAMPLES, LatencyFixture, check_latency_model
from edgeauto.testing.runners import check_runner
from edgeauto.testing.sparse import check_sparse_method

#: Registry role -> the check every component registered there must pass.
CHECKS: dict[str, Callable[..., Any]] = {
    "criterion": check_criterion,
    "executor": check_executor,
    "growth init": check_growth_init,
    "latency model": check_latency_model,
    "pruner": check_pruner,
    "runner": check_runner,
    "runtime": check_runtime,
    "search space": check_space,
    "sparse method": check_sparse_method,
    "strategy": check_strategy,
    "table importer": check_importer,
}

__all__ = [
    "CHECKS",
    "EXAMPLES",
    "CheckSkipped",
    "LatencyFixture",
    "MacsLatency",
    "check_criterion",
    "check_executor",
    "check_growth_init",
    "check_importer",
    "check_latency_model",
    "check_pruner",
    "check_runner",
    "check_runtime",
    "check_space",
    "check_sparse_method",
    "check_strategy",
]
