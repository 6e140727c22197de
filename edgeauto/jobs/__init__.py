"""The orchestration layer: each job drives the engines over one :class:`Context` and ends in
one shared tail (:func:`edgeauto.jobs.tail.finish`). Engines never import this package.

- :func:`run`: search, train, prune to the budget, fine-tune, export and verify.
- :func:`compress`: prune (or sparse-train) your model or a run's to a budget.
- :func:`search`: a resumable search study alone (:class:`SearchJob`).
- :func:`linearize`: SNL on your model for a ReLU budget (:class:`LinearizeJob`).
- :func:`run_private`: search then linearize for a ``relu-count`` device.
- :func:`deploy`: a run's bundle checked and timed on a device (``deploy.json``).
"""

from edgeauto.jobs.compress import compress
from edgeauto.jobs.deploy import deploy
from edgeauto.jobs.linearize import LinearizeJob
from edgeauto.jobs.linearize import run_linearize as linearize
from edgeauto.jobs.private import run_private
from edgeauto.jobs.run import run
from edgeauto.jobs.search import SearchJob
from edgeauto.jobs.search import run_search as search

__all__ = [
    "LinearizeJob", "SearchJob", "compress", "deploy", "linearize", "run", "run_private", "search",
]  # fmt: skip
