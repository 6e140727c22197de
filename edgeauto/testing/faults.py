"""A real objective that misbehaves on chosen archs, for testing how studies survive it.

Executors must record a trial that raises, whose worker process dies, or that hangs as
``failed`` and go on; :class:`FaultyObjective` produces each of those for real (an exception,
``os._exit``, a sleep) on the archs whose description contains ``marker``, and trains the
others with the wrapped objective.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from edgeauto.search.objective import Metrics, Objective
from edgeauto.spaces.base import Arch

FAULTS = ("raise", "exit", "hang")


@dataclass(frozen=True)
class FaultyObjective:
    """``inner`` on most archs; ``fault`` on those whose ``describe()`` contains ``marker``."""

    inner: Objective
    marker: str
    fault: str = "raise"
    hang_s: float = 600.0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {self.fault!r}")

    def __call__(self, arch: Arch, seed: int) -> Metrics:
        if self.marker in arch.describe():
            if self.fault == "raise":
                raise RuntimeError(f"injected failure for {arch.describe()}")
            if self.fault == "exit":
                os._exit(3)  # the worker process dies without a word, as on an OOM kill
            time.sleep(self.hang_s)
        return self.inner(arch, seed)
