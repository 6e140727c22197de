"""Search strategies, registered by name."""

from edgeauto.search import baselines as _baselines  # noqa: F401  (registers strategies)
from edgeauto.search import capacity as _capacity  # noqa: F401  (registers "capacity")
from edgeauto.search import dnas as _dnas  # noqa: F401  (registers "dnas")
from edgeauto.search import morphism as _morphism  # noqa: F401  (registers "noisy")
from edgeauto.search import smbo as _smbo  # noqa: F401  (registers "smbo")
from edgeauto.search.base import (
    STRATEGIES,
    SearchProblem,
    SearchResult,
    Strategy,
    Trial,
    list_strategies,
)  # fmt: skip

__all__ = ["STRATEGIES", "SearchProblem", "SearchResult", "Strategy", "Trial", "list_strategies"]
