"""The conformance suite of executors (:data:`edgeauto.search.executors.EXECUTORS`).

An executor gets a real objective that fails on purpose for some trials: every submitted
trial must come back exactly once, the failing ones as ``failed`` outcomes carrying a
one-line error (never a crash of the study), the others with the objective's metrics.
``ray`` runs on a local cluster of 2 CPUs that the executor starts (``address="local"``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from edgeauto.search.executors import EXECUTORS, Executor, TrialJob, TrialOutcome
from edgeauto.search.objective import Metrics
from edgeauto.spaces import get_space
from edgeauto.spaces.base import Arch

TRIALS = 5
FAILING = (1, 3)  # trial seeds whose objective raises


@dataclass(frozen=True)
class FailingObjective:
    """Accuracy from the arch alone (reproducible in any process); raises for ``fail_seeds``.

    Plain data, so executors can ship it to other processes.
    """

    fail_seeds: tuple[int, ...] = FAILING

    def __call__(self, arch: Arch, seed: int) -> Metrics:
        if seed in self.fail_seeds:
            raise ValueError(f"trial seed {seed} fails on purpose\n(second line)")
        return {"accuracy": len(json.dumps(arch.to_json(), sort_keys=True)) / 1000.0}


def check_executor(name: str, **options: Any) -> None:
    """Run :data:`TRIALS` trials on ``EXECUTORS.get(name)(objective, **options)``, at most
    ``slots`` at a time; check outcomes, ``describe()``, and an idempotent ``close()``."""
    objective = FailingObjective()
    space = get_space("fbnet-micro", (1, 8, 8), 3)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(TRIALS)]
    executor = EXECUTORS.get(name)(objective, **options)
    with executor as entered:
        assert entered is executor, "__enter__ must return the executor"
        assert executor.slots >= 1 and executor.cpus_per_trial >= 1, "no slot or no CPU"
        where = executor.describe()
        assert json.loads(json.dumps(where)) == where, "describe() is not plain JSON"
        assert where.get("kind") and where.get("slots") == executor.slots, f"describe(): {where}"
        assert executor.wait() == [], "wait() with nothing submitted must return []"
        outcomes = _drive(executor, archs)
        assert executor.wait() == [], "wait() after every trial came back must return []"
    executor.close()  # a second close (after __exit__'s) must be harmless
    _check_outcomes(outcomes, archs, objective)


def _drive(executor: Executor, archs: list[Arch]) -> dict[int, TrialOutcome]:
    """Keep the slots busy until every trial came back; each must come back once."""
    pending, running, outcomes = list(range(len(archs))), 0, {}
    while pending or running:
        while pending and running < executor.slots:
            n = pending.pop(0)
            executor.submit(TrialJob(n, archs[n], seed=n, cpus=executor.cpus_per_trial))
            running += 1
        finished = executor.wait()
        assert finished, f"wait() returned nothing with {running} trials running"
        for out in finished:
            assert isinstance(out, TrialOutcome), f"wait() returned {out!r}"
            assert out.number not in outcomes, f"trial {out.number} came back twice"
            outcomes[out.number] = out
            running -= 1
    return outcomes


def _check_outcomes(
    outcomes: dict[int, TrialOutcome], archs: list[Arch], objective: FailingObjective
) -> None:
    assert sorted(outcomes) == list(range(len(archs))), f"came back: {sorted(outcomes)}"
    for n, out in outcomes.items():
        assert out.wall_s >= 0, f"trial {n}: wall_s {out.wall_s}"
        if n in objective.fail_seeds:
            assert out.status == "failed", f"trial {n} raised but is {out.status!r}"
            assert out.error and out.error.startswith("ValueError"), f"trial {n}: {out.error!r}"
            assert "\n" not in out.error, f"trial {n}: the error spans lines"
            assert "accuracy" not in out.metrics, f"a failed trial has metrics {out.metrics}"
        else:
            assert out.status == "ok" and out.error is None, f"trial {n}: {out.error}"
            assert out.metrics == objective(archs[n], n), f"trial {n}: metrics {out.metrics}"
            assert out.worker, f"trial {n} names no worker"
