"""The run's reference model: one fixed network every whole-model timing of a run is taken
beside (:class:`~edgeauto.timing.RelativeStat`), so that the fresh calibration at the start,
pruning's measurements and the verdict at the end read one machine, not three moments of a
drifting one. Measured here: two takes of one model a minute apart differed by 8% (pruning
stopped at 0.975x the budget and the verdict read 0.898x); over twenty takes the raw median
spread 20.5% and the ratio to a reference 1.7% (``benchmarks/results/reference_timing.json``).

The reference is the network the fresh calibration times nearest the budget, or, without a
fresh calibration, the model about to be pruned. It is kept in the run directory and its
first time recorded, so a resumed run reads in the same frame.
"""

from __future__ import annotations

import shutil

import numpy as np
from torch import nn

from edgeauto.fileio import atomic_path
from edgeauto.latency.builder import RELATIVE_ROUNDS, BlockTimer
from edgeauto.rundir import RunDir
from edgeauto.timing import Reference

STAGE = "reference"


def open_reference(
    rd: RunDir,
    timer: BlockTimer,
    model: nn.Module,
    input_shape: tuple[int, int, int],
    resume: bool,
    calibration: np.ndarray | None = None,
) -> Reference:
    """The run's reference, made from ``model`` unless a resumed run recorded one: converted
    as ``timer`` converts (runtime, precision), copied into the run directory and timed with
    twice the rounds of a relative timing."""
    path = rd.path(f"reference{timer.runtime.suffix}")
    done = rd.stages().get(STAGE) if resume else None
    if done is not None and path.exists():
        return Reference(path, float(done["ms"]), done.get("repeatability"))
    art = timer.export(model, input_shape, STAGE, calibration)
    with atomic_path(path) as tmp:
        shutil.copyfile(art, tmp)
    s = timer.settings
    stat = timer.runner.measure(path, timer.threads, s.runs, s.warmup, 2 * RELATIVE_ROUNDS)
    ref = Reference(path, stat.median_ms, stat.repeatability)
    rd.record(STAGE, {"ms": ref.ms, "repeatability": ref.repeatability})
    return ref
