"""What every conformance module shares: how a check says it cannot run here."""

from __future__ import annotations


class CheckSkipped(Exception):
    """A check cannot run on this machine (no sshd, no phone); the message says why.

    Test suites turn it into a skip (``pytest.skip(str(exc))``); it is never a pass.
    """
