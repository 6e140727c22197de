"""Where a benchmark's figures come from: the command, the commit and the date (UTC), the
first fields of every JSON under ``benchmarks/results/``."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checkout's HEAD (``unknown`` outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def stamp() -> dict[str, str]:
    """``{"command", "commit", "date"}`` of this benchmark run."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return {"command": " ".join(sys.argv), "commit": commit(), "date": now}
