"""Trials on a real local Ray cluster (2 CPUs): results stream back as they finish, a trial
that raises, dies or hangs is a failed trial, and a study on Ray gives the in-process answer."""

from __future__ import annotations

import random
import time

import pytest
from helpers import DIGITS_CLASSES, DIGITS_SHAPE, MICRO

from edgeauto.rundir import RunDir
from edgeauto.search import SearchProblem
from edgeauto.search.executors import InProcessExecutor, RayExecutor, TrialJob
from edgeauto.search.objective import TrainObjective
from edgeauto.search.smbo import ProgressiveSMBO, SMBOConfig
from edgeauto.search.study import TrialJournal, run_study
from edgeauto.spaces import Arch, get_space
from edgeauto.testing.faults import FaultyObjective

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A local cluster with 2 CPUs, shared by the module (executors join it, never stop it)."""
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
        logging_level="ERROR",
    )  # fmt: skip
    yield
    ray.shutdown()


def _objective() -> TrainObjective:
    return TrainObjective("digits", MICRO, data_seed=0, epochs=2, max_batches=None)


def _archs(n: int) -> list[Arch]:
    space = get_space(MICRO, DIGITS_SHAPE, DIGITS_CLASSES)
    rng = random.Random(0)
    return [space.sample(rng) for _ in range(n)]


def test_results_stream_back_as_they_finish(cluster) -> None:
    archs = _archs(6)
    slow = next(a for a in archs if "24:[" in a.describe())
    fast = next(a for a in archs if "24:[" not in a.describe())
    objective = FaultyObjective(_objective(), marker="24:[", fault="hang", hang_s=8.0)
    with RayExecutor(objective, workers=2) as ex:
        assert ex.slots == 2 and ex.describe()["kind"] == "ray"
        ex.submit(TrialJob(0, slow, 0))
        ex.submit(TrialJob(1, fast, 0))
        first = ex.wait()
        assert [o.number for o in first] == [1], "the trial submitted second finished first"
        second = ex.wait()
        assert [o.number for o in second] == [0]
    assert first[0].status == second[0].status == "ok", "a slow trial is not a failed one"
    assert first[0].worker != second[0].worker, "two trials in flight run in two workers"


def test_failed_raised_crashed_and_timed_out_trials(cluster) -> None:
    archs = _archs(8)
    bad = next(a for a in archs if "8:[" in a.describe())
    good = next(a for a in archs if "8:[" not in a.describe())
    for fault, error in (("raise", "RuntimeError: injected"), ("exit", "Error")):
        with RayExecutor(FaultyObjective(_objective(), "8:[", fault), workers=2) as ex:
            ex.submit(TrialJob(0, bad, 0))
            ex.submit(TrialJob(1, good, 0))
            outs = {o.number: o for o in ex.wait() + ex.wait()}
        assert outs[0].status == "failed" and error in outs[0].error, (fault, outs[0])
        assert outs[1].status == "ok" and outs[1].metrics["accuracy"] > 0
    hang = FaultyObjective(_objective(), "8:[", "hang", hang_s=300)
    start = time.monotonic()
    with RayExecutor(hang, workers=2, timeout_s=10) as ex:
        ex.submit(TrialJob(0, bad, 0))
        (out,) = ex.wait()
    assert out.status == "failed" and out.error.startswith("TrialTimeout")
    assert time.monotonic() - start < 60


def test_study_on_ray_gives_the_in_process_answer(cluster, micro_table, tmp_path) -> None:
    space = get_space(MICRO, DIGITS_SHAPE, DIGITS_CLASSES)
    budget = 10 * micro_table.predict(space.blocks(space.cheapest(micro_table.block_ms)))

    def smbo() -> ProgressiveSMBO:
        problem = SearchProblem(space, micro_table, budget, lambda a: 0.0, trials=6, seed=0)
        return ProgressiveSMBO(problem, SMBOConfig(beam=3))

    objective = FaultyObjective(_objective(), marker="8:[k3_e1]")
    rd_ray, rd_local = RunDir(tmp_path / "ray"), RunDir(tmp_path / "local")
    with RayExecutor(objective, workers=2) as ex:
        on_ray = run_study(smbo(), ex, TrialJournal(rd_ray))
    local = run_study(smbo(), InProcessExecutor(objective, 1), TrialJournal(rd_local))
    key = [(t.number, t.arch, t.accuracy, t.status, t.error) for t in on_ray.trials]
    assert key == [(t.number, t.arch, t.accuracy, t.status, t.error) for t in local.trials]
    assert on_ray.best.arch == local.best.arch
    workers = {t.worker for t in on_ray.trials}
    assert len(workers) >= 2, f"2 slots must use 2 workers, got {workers}"
