"""Every evaluated architecture on one chart: search accuracy against latency on the device.

Each successful trial of the search is built (seeded initial weights: latency does not
depend on them) and timed end to end on the device where it can be reached, in one runner
call; elsewhere its predicted latency stands in and the chart says so. The chosen arch and
the final (pruned, fine-tuned) model are marked, with the budget line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from edgeauto.latency.builder import BlockTimer
from edgeauto.search.base import Trial
from edgeauto.spaces.base import Arch, SearchSpace

MAX_TIMED = 40  # beyond this many archs, the most accurate are timed; the rest keep predictions
PARETO_PLOT = "pareto.png"


@dataclass(frozen=True)
class Point:
    """One evaluated arch: its search accuracy, predicted and (where timed) measured ms."""

    number: int
    accuracy: float
    predicted_ms: float
    measured_ms: float | None

    @property
    def ms(self) -> float:
        return self.predicted_ms if self.measured_ms is None else self.measured_ms


def pareto_points(
    trials: list[Trial], space: SearchSpace, shape: tuple[int, int, int], timer: BlockTimer | None
) -> list[Point]:
    """A point per successful trial (first of each distinct arch), timed when ``timer``."""
    seen: set[Arch] = set()
    ok: list[Trial] = []
    for t in trials:  # an arch trained twice (resumed or re-asked) is one point
        if t.ok and t.arch not in seen:
            seen.add(t.arch)
            ok.append(t)
    timed = sorted(ok, key=lambda t: -t.accuracy)[:MAX_TIMED] if timer else []
    measured: dict[int, float] = {}
    if timed:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            models = [space.build(t.arch) for t in timed]
        stats = timer.time_networks(models, shape)  # type: ignore[union-attr]
        measured = {t.number: s.median_ms for t, s in zip(timed, stats)}
    return [Point(t.number, t.accuracy, t.predicted_ms, measured.get(t.number)) for t in ok]


def frontier(points: list[Point]) -> list[Point]:
    """The Pareto-optimal points: no other point is both faster and more accurate."""
    best, out = -1.0, []
    for p in sorted(points, key=lambda p: (p.ms, -p.accuracy)):
        if p.accuracy > best:
            out.append(p)
            best = p.accuracy
    return out


def points_json(points: list[Point]) -> list[dict[str, Any]]:
    return [asdict(p) for p in points]


def plot_pareto(
    path: Path, points: list[dict[str, Any]], chosen: dict[str, float] | None, budget_ms: float
) -> Path | None:
    """Draw the chart as a PNG; None when there is nothing to draw."""
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on boards and CI
    import matplotlib.pyplot as plt

    pts = [Point(**p) for p in points]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    timed = [p for p in pts if p.measured_ms is not None]
    guessed = [p for p in pts if p.measured_ms is None]
    ax.scatter([p.ms for p in timed], [p.accuracy for p in timed], s=18, label="trial (measured)")
    if guessed:
        ax.scatter([p.ms for p in guessed], [p.accuracy for p in guessed], s=18, marker="x",
                   label="trial (predicted latency)")  # fmt: skip
    front = frontier(pts)
    ax.plot([p.ms for p in front], [p.accuracy for p in front], "--", lw=1, label="Pareto front")
    if chosen:
        ax.scatter([chosen["ms"]], [chosen["accuracy"]], s=120, marker="*", c="red",
                   label="final model", zorder=3)  # fmt: skip
    ax.axvline(budget_ms, color="grey", lw=1, label=f"budget {budget_ms:g} ms")
    ax.set_xlabel("latency on the device (ms, batch 1)")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def breakdown(keys: list[Any], table: Any, calibration: float) -> list[dict[str, Any]]:
    """Per block of the final model: its table entry (measured alone on the device, overhead
    included) and its predicted contribution inside the model (overhead removed, calibrated).
    """
    rows = []
    for i, key in enumerate(keys):
        stat = table.lookup(key)
        rows.append({
            "index": i, "block": key.describe(), "measured_alone_ms": stat.median_ms,
            "measured_alone_p90_ms": stat.p90_ms,
            "predicted_in_model_ms": table.block_ms(key) * calibration,
        })  # fmt: skip
    return rows
