"""Studies: trials journalled as they finish, resumed after ``kill -9`` with no trial lost or
repeated and the same answer, failed trials recorded, and ``edgeauto search``'s bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import (
    DIGITS_CLASSES,
    DIGITS_SHAPE,
    MICRO,
    assert_one_line_error,
    micro_table_path,
)

from edgeauto.config import RunConfig
from edgeauto.errors import RunDirError
from edgeauto.jobs.context import setup
from edgeauto.jobs.stages import search_stage
from edgeauto.latency.table import LatencyTable
from edgeauto.progress import NullReporter
from edgeauto.rundir import RunDir
from edgeauto.search import SearchProblem
from edgeauto.search.executors import InProcessExecutor
from edgeauto.search.objective import TrainObjective
from edgeauto.search.smbo import ProgressiveSMBO, SMBOConfig
from edgeauto.search.study import TrialJournal, run_study
from edgeauto.spaces import get_space
from edgeauto.testing.faults import FaultyObjective

EDGEAUTO = str(Path(sys.executable).parent / "edgeauto")
TRIALS = 8


def _objective() -> TrainObjective:
    return TrainObjective("digits", MICRO, data_seed=0, epochs=2, max_batches=None)


def _smbo(table, trials: int = TRIALS) -> ProgressiveSMBO:
    space = get_space(MICRO, DIGITS_SHAPE, DIGITS_CLASSES)
    budget = 10 * table.predict(space.blocks(space.cheapest(table.block_ms)))
    problem = SearchProblem(space, table, budget, lambda a: 0.0, trials=trials, seed=0)
    return ProgressiveSMBO(problem, SMBOConfig(beam=3))


class CountingExecutor(InProcessExecutor):
    """The in-process executor, counting the trials it really runs."""

    def __init__(self, objective) -> None:
        super().__init__(objective, cpus_per_trial=1)
        self.ran: list[int] = []

    def submit(self, job) -> None:
        self.ran.append(job.number)
        super().submit(job)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _answer(records: list[dict]) -> list[tuple]:
    return sorted((r["number"], json.dumps(r["arch"]), r["accuracy"], r["status"]) for r in records)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, micro_tables) -> dict:
    """One uninterrupted in-process study (the answer every resume must reproduce)."""
    table = LatencyTable.load(micro_table_path(micro_tables))
    rd = RunDir(tmp_path_factory.mktemp("reference"))
    result = run_study(_smbo(table), CountingExecutor(_objective()), TrialJournal(rd))
    return {"dir": rd.root, "best": result.best, "records": _records(rd.path("trials.jsonl"))}


def test_every_trial_is_journalled_with_its_record(reference) -> None:
    records = reference["records"]
    assert [r["number"] for r in records] == list(range(TRIALS))
    for r in records:
        assert r["status"] == "ok" and r["error"] is None and r["seed"] == 0
        assert r["wall_s"] > 0 and r["worker"] == f"{socket.gethostname()}:{os.getpid()}"
        assert 0.0 < r["accuracy"] <= 1.0
    assert len({json.dumps(r["arch"]) for r in records}) == TRIALS, "an arch was trained twice"


def test_resume_replays_recorded_trials_and_runs_the_rest(reference, micro_table, tmp_path) -> None:
    lines = (reference["dir"] / "trials.jsonl").read_text().splitlines(keepends=True)
    rd = RunDir(tmp_path / "resumed")
    # four finished trials, then a fifth cut short mid-write (no newline), as kill -9 leaves
    rd.path("trials.jsonl").write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    executor = CountingExecutor(_objective())
    result = run_study(_smbo(micro_table), executor, TrialJournal(rd))
    assert executor.ran == list(range(4, TRIALS)), "recorded trials must not run again"
    records = _records(rd.path("trials.jsonl"))
    assert _answer(records) == _answer(reference["records"])
    assert result.best.arch == reference["best"].arch
    assert rd.path("trials.jsonl").read_text().startswith("".join(lines[:4]))


def test_resume_refuses_a_journal_of_another_study(reference, micro_table, tmp_path) -> None:
    rd = RunDir(tmp_path / "other")
    records = reference["records"][:2]
    records[1]["arch"] = records[0]["arch"]  # trial 1 was something this study never proposes
    rd.path("trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(RunDirError, match=r"trial 1 in .* proposes"):
        run_study(_smbo(micro_table), CountingExecutor(_objective()), TrialJournal(rd))
    rd.path("trials.jsonl").write_text("not json\n" + json.dumps(records[0]) + "\n")
    with pytest.raises(RunDirError, match="line 1 is not a trial record"):
        TrialJournal(rd).load()


def test_a_trial_that_raises_is_recorded_and_the_study_goes_on(micro_table, tmp_path) -> None:
    rd = RunDir(tmp_path / "faulty")
    objective = FaultyObjective(_objective(), marker="8:[")  # every arch with an 8-wide stage
    result = run_study(_smbo(micro_table), InProcessExecutor(objective, 1), TrialJournal(rd))
    records = _records(rd.path("trials.jsonl"))
    assert len(records) == TRIALS
    failed = [r for r in records if r["status"] == "failed"]
    assert failed, "the micro space's 8-wide stages must be proposed at least once"
    for r in failed:
        assert r["accuracy"] == 0.0 and r["error"].startswith("RuntimeError: injected failure")
    assert result.best.ok and "8:[" not in result.best.arch.describe()


def test_pipeline_run_with_smbo_resumes_its_search(tables, tmp_path) -> None:
    cfg = RunConfig(
        device="host", latency_ms=0.05, dataset="digits", space=MICRO, strategy="smbo",
        trials=4, search_batches=20, out=str(tmp_path / "run"), tables=str(tables),
    )  # fmt: skip
    arch = search_stage(setup(cfg, NullReporter()))
    journal = tmp_path / "run" / "trials.jsonl"
    full = _records(journal)
    assert [r["number"] for r in full] == [0, 1, 2, 3]
    # the search was interrupted after two trials: resume runs only the other two
    journal.write_text("".join(json.dumps(r) + "\n" for r in full[:2]))
    stages_path = tmp_path / "run" / "stages.json"  # as a kill leaves it: calibrated, no search
    stages = json.loads(stages_path.read_text())
    del stages["search"]
    stages_path.write_text(json.dumps(stages))
    ctx = setup(RunConfig(**{**cfg.to_json(), "resume": True}), NullReporter())
    assert search_stage(ctx) == arch
    assert _answer(_records(journal)) == _answer(full)


@pytest.fixture
def tables(micro_tables) -> Path:
    return micro_tables


# -- edgeauto search: kill -9 and resume ----------------------------------------------------
def _search_args(out: Path, tables: Path) -> list[str]:
    return [
        "search", "--space", MICRO, "--dataset", "digits", "--latency-ms", "1",
        "--trials", "10", "--search-epochs", "3", "--tables", str(tables), "--out", str(out),
    ]  # fmt: skip


def _kill_after(proc: subprocess.Popen, journal: Path, lines: int, limit_s: float = 240) -> int:
    """SIGKILL ``proc`` once ``journal`` has ``lines`` lines; the lines it had then."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= lines:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return journal.read_text().count("\n")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"study ended or stalled before {lines} trials: {proc.returncode}")


def test_kill_9_then_resume_loses_and_repeats_nothing(cli, micro_tables, tmp_path) -> None:
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen([EDGEAUTO, *_search_args(killed, micro_tables)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    had = _kill_after(proc, killed / "trials.jsonl", 3)
    assert proc.returncode == -signal.SIGKILL and 3 <= had < 10
    before = (killed / "trials.jsonl").read_text()
    assert not (killed / "search.json").exists()
    result = cli("search", "--resume", str(killed))
    assert result.exit_code == 0, result.output
    records = _records(killed / "trials.jsonl")
    assert sorted(r["number"] for r in records) == list(range(10)), "a trial was lost or repeated"
    assert (killed / "trials.jsonl").read_text().startswith(before.rsplit("\n", 1)[0])
    assert cli(*_search_args(whole, micro_tables)).exit_code == 0
    assert _answer(records) == _answer(_records(whole / "trials.jsonl"))
    best, ref = (json.loads((d / "search.json").read_text())["best"] for d in (killed, whole))
    for b in (best, ref):
        del b["wall_s"], b["worker"]
    assert best == ref


# -- edgeauto search: bad input -------------------------------------------------------------
def test_resume_a_directory_that_is_not_a_run(cli, tmp_path) -> None:
    (tmp_path / "junk").mkdir()
    r = cli("search", "--resume", str(tmp_path / "junk"))
    assert_one_line_error(r, "RunDirError", "is not a search run (no study.json)")
    r = cli("search", "--resume", str(tmp_path / "nowhere"))
    assert_one_line_error(r, "RunDirError", "no such directory")


def test_resume_with_another_config_names_the_mismatch(cli, micro_tables, tmp_path) -> None:
    out = tmp_path / "s"
    args = _search_args(out, micro_tables)
    args[args.index("--trials") + 1] = "3"
    assert cli(*args).exit_code == 0
    r = cli("search", "--resume", str(out), "--seed", "1", "--space", "fbnet-lite")
    line = assert_one_line_error(
        r, "RunDirError", "belongs to another config", "seed: 0 in the run, 1 now"
    )
    assert "space: 'fbnet-micro' in the run, 'fbnet-lite' now" in line


def test_unreachable_ray_address_fails_fast(cli, tmp_path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    r = cli("search", "--space", MICRO, "--dataset", "digits", "--ray-address", f"127.0.0.1:{port}", "--out", str(tmp_path / "r"))  # fmt: skip
    assert_one_line_error(r, "ConfigError", f"Ray head at 127.0.0.1:{port} cannot be reached")
    assert time.monotonic() - start < 20
    r = cli("search", "--ray-address", "nohost", "--out", str(tmp_path / "r"))
    assert_one_line_error(r, "ConfigError", "--ray-address must be 'auto' or HOST:PORT")


def test_ray_address_that_is_not_ray_times_out(micro_tables, tmp_path) -> None:
    """A port that accepts connections but never speaks Ray: bounded by --connect-timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        args = [*_search_args(tmp_path / "r", micro_tables), "--ray-address", f"127.0.0.1:{port}", "--connect-timeout", "4"]  # fmt: skip
        start = time.monotonic()
        done = subprocess.run([EDGEAUTO, *args], capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 90
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ConfigError: Ray cluster at") and "within 4 s" in last


def test_search_flags_are_validated(cli, tmp_path) -> None:
    r = cli("search", "--trial-timeout", "5", "--out", str(tmp_path / "x"))
    assert_one_line_error(r, "ConfigError", "--trial-timeout needs --executor ray")
    r = cli("search", "--strategy", "random", "--warm-start", "--out", str(tmp_path / "x"))
    assert_one_line_error(r, "ConfigError", "belong to --strategy smbo")
    r = cli("search", "--strategy", "smob", "--out", str(tmp_path / "x"))
    assert_one_line_error(r, "UnknownComponent", "did you mean 'smbo'")
    r = cli("search", "--executor", "dask", "--out", str(tmp_path / "x"))
    assert_one_line_error(r, "ConfigError", "executor must be one of inprocess, ray")


def test_a_resumed_search_keeps_its_split_and_recipe() -> None:
    """The study records the split and the training recipe its trials used; a resume reads
    them back (else it would score archs on another validation split)."""
    from edgeauto.jobs.search import _recorded_data, new_job

    job = new_job({"out": "x", "val_fraction": 0.2, "test_fraction": 0.05,
                   "optimizer": "sgd", "label_smoothing": 0.1, "augment": True}, {})  # fmt: skip
    found = _recorded_data(job.spec().objective)
    assert found == {"val_fraction": 0.2, "test_fraction": 0.05, "test_dataset": None,
                     "cache": True, "augment": True, "optimizer": "sgd",
                     "label_smoothing": 0.1, "train_device": "cpu"}  # fmt: skip
    assert _recorded_data({"dataset": "digits"}) == {}  # a study recorded before them
