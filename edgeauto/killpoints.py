"""Named points where a test may kill this process, to prove that every stage resumes.

``EDGEAUTO_KILL_AT=<point>[:<n>]`` makes the process SIGKILL itself the ``n``-th time (default
the first) it reaches ``<point>``: no cleanup, no flush, exactly like ``kill -9`` or a power
cut, but at a chosen place instead of a random moment. Unset, a point costs one dict lookup.
Used only by the tests (``tests/test_resume.py``); the points are listed in :data:`POINTS`.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "EDGEAUTO_KILL_AT"
#: Every point the package passes, by stage, in the order a run reaches them.
POINTS: dict[str, str] = {
    "table_batch": "a batch of blocks measured and the table saved",
    "trial": "a search trial journalled",
    "train_epoch": "an epoch of final training checkpointed",
    "prune_step": "a pruning attempt finished (before the plan is recorded)",
    "prune": "the pruning plan recorded",
    "finetune_epoch": "an epoch of fine-tuning checkpointed",
    "export": "one artifact exported and checked for parity",
    "measure": "the artifacts measured on the device and recorded",
    "manifest": "manifest.json written (before the report)",
}
_seen: dict[str, int] = {}


def kill_point(name: str) -> None:
    """SIGKILL this process if ``$EDGEAUTO_KILL_AT`` names this passage of ``name``."""
    want = os.environ.get(KILL_ENV)
    if not want:
        return
    point, _, nth = want.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
