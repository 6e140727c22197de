"""A study: a strategy driven over an executor, every trial journalled as it finishes.

:func:`run_study` asks the strategy for what it can propose now (``ask_batch``), keeps the
executor's slots busy, appends each finished trial to ``trials.jsonl`` at once (fsynced), and
tells the strategy in trial-number order, so what it proposes next does not depend on which
parallel trial finished first.

Resume: a trial already in the journal is not run again: when the strategy proposes trial
``n`` and the journal has it (with the same arch, else the run belongs to another config), the
recorded result is told instead. Replaying the seeded strategy this way restores its state
exactly, so after ``kill -9`` a resumed study loses no finished trial, repeats none, and ends
with the answer an uninterrupted one gives. A line cut short by the kill is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeauto.errors import ConfigError, RunDirError
from edgeauto.fileio import write_text
from edgeauto.killpoints import kill_point
from edgeauto.rundir import RunDir
from edgeauto.search.base import SearchResult, Strategy, Trial
from edgeauto.search.executors import Executor, TrialJob, TrialOutcome
from edgeauto.spaces.base import Arch

STUDY_FILE = "study.json"
TRIALS_FILE = "trials.jsonl"


@dataclass(frozen=True)
class StudySpec:
    """What defines a study's answer; a resume must match it field for field.

    Where it runs (executor, address, workers) is not part of it: a study started on a laptop
    may be resumed on a cluster.
    """

    strategy: str
    space: str
    dataset: str
    device: str
    budget_ms: float
    trials: int
    seed: int
    objective: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    tables: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudySpec:
        try:
            return cls(**data)
        except TypeError as exc:
            raise RunDirError(
                f"study record has unexpected fields ({exc}); start a new --out"
            ) from None

    def differences(self, other: StudySpec) -> list[str]:
        """``field: <self> in the run, <other> now`` for every field that differs."""
        mine, theirs = self.to_json(), other.to_json()
        return [
            f"{k}: {mine[k]!r} in the run, {theirs[k]!r} now" for k in mine if mine[k] != theirs[k]
        ]


def load_spec(rd: RunDir) -> StudySpec:
    """The study recorded in ``rd``; :class:`RunDirError` when ``rd`` holds none."""
    path = rd.path(STUDY_FILE)
    if not path.is_file():
        raise RunDirError(
            f"{rd.root} is not a search run (no {STUDY_FILE}); pass the --out of an earlier "
            "`edgeauto search`, or start one there without --resume"
        )
    try:
        return StudySpec.from_json(json.loads(path.read_text())["spec"])
    except (json.JSONDecodeError, KeyError, TypeError):
        raise RunDirError(f"{path} is corrupt; start a new --out") from None


def check_resume(recorded: StudySpec, now: StudySpec, where: Path) -> None:
    """:class:`RunDirError` naming every field in which ``now`` differs from the run."""
    if diffs := recorded.differences(now):
        raise RunDirError(
            f"--resume {where} belongs to another config ({'; '.join(diffs)}); resume with the "
            "run's settings (omit the flags) or start a new --out"
        )


class TrialJournal:
    """``trials.jsonl``: one JSON object per finished trial, appended and fsynced."""

    def __init__(self, rd: RunDir, name: str = TRIALS_FILE) -> None:
        self.rd, self.name = rd, name
        self.path = rd.path(name)

    def append(self, trial: Trial) -> None:
        self.rd.append_jsonl(self.name, trial.to_json())
        kill_point("trial")

    def load(self) -> dict[int, Trial]:
        """Recorded trials by number. A last line cut short (the process was killed while
        writing it) is dropped from the file; any other bad line is an error."""
        if not self.path.exists():
            return {}
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        trials: dict[int, Trial] = {}
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                trial = Trial.from_json(json.loads(line))
            except (json.JSONDecodeError, ConfigError):
                if i == len(lines) - 1:  # no newline after it: the write never finished
                    kept = lines[:-1]  # each kept line ends with its newline again
                    write_text(self.path, "".join(f"{k}\n" for k in kept if k.strip()))
                    break
                raise RunDirError(
                    f"{self.path} line {i + 1} is not a trial record; delete the line or start "
                    "a new --out"
                ) from None
            if trial.number in trials and trials[trial.number] != trial:
                raise RunDirError(f"{self.path} records trial {trial.number} twice, differently")
            trials[trial.number] = trial
        return trials


def _trial(out: TrialOutcome, arch: Arch, strategy: Strategy, seed: int) -> Trial:
    metrics = {k: v for k, v in out.metrics.items() if k != "accuracy"}
    acc = float(out.metrics.get("accuracy", 0.0)) if out.status == "ok" else 0.0
    return Trial(
        out.number, arch, strategy.problem.predict(arch), acc, out.status, seed,
        round(out.wall_s, 4), out.worker or None, out.error, metrics,
    )  # fmt: skip


def _replayed(recorded: Trial, arch: Arch, path: Path) -> Trial:
    if recorded.arch != arch:
        raise RunDirError(
            f"trial {recorded.number} in {path} is {recorded.arch.describe()} but this study "
            f"proposes {arch.describe()}: the run was made with another config or version; "
            "start a new --out"
        )
    return recorded


@dataclass
class _State:
    asked: dict[int, Arch] = field(default_factory=dict)
    ready: dict[int, Trial] = field(default_factory=dict)
    running: int = 0
    told: int = 0


def run_study(
    strategy: Strategy,
    executor: Executor,
    journal: TrialJournal,
    on_trial: Callable[[Trial], None] | None = None,
) -> SearchResult:
    """Run ``strategy.problem.trials`` trials on ``executor``; resume from ``journal``.

    Every trial trains with the problem's seed: common random numbers (same init stream,
    same batches) make the accuracy difference between two archs the archs' own.
    """
    total, seed = strategy.problem.trials, strategy.problem.seed
    if total < 1:
        raise ConfigError(f"trials must be >= 1, got {total}; fix --trials")
    done = journal.load()
    if extra := sorted(n for n in done if n >= total):
        raise RunDirError(
            f"{journal.path} records trial {extra[-1]}, beyond this study's {total} trials; "
            "resume with the run's --trials or start a new --out"
        )
    st = _State()
    while st.told < total:
        _submit(strategy, executor, journal, done, st)
        if st.told not in st.ready:
            if st.running == 0:
                raise ConfigError(
                    f"strategy {type(strategy).__name__} proposed nothing with no trial running "
                    f"(trial {st.told} of {total}); its ask_batch must return an arch then"
                )
            for out in executor.wait():
                st.running -= 1
                trial = _trial(out, st.asked[out.number], strategy, seed)
                journal.append(trial)
                st.ready[trial.number] = trial
        while st.told in st.ready:
            trial = st.ready.pop(st.told)
            strategy.tell(trial)
            st.told += 1
            if on_trial:
                on_trial(trial)
    return strategy.result


def _submit(
    strategy: Strategy,
    executor: Executor,
    journal: TrialJournal,
    done: dict[int, Trial],
    st: _State,
) -> None:
    """Fill free slots with what the strategy can propose now (recorded trials replay)."""
    total, seed = strategy.problem.trials, strategy.problem.seed
    while len(st.asked) < total:
        free = executor.slots - st.running
        n = min(free, total - len(st.asked))
        archs = strategy.ask_batch(n, len(st.asked) - st.told) if n > 0 else []
        if not archs:
            return
        for arch in archs:
            number = len(st.asked)
            st.asked[number] = arch
            if number in done:
                st.ready[number] = _replayed(done[number], arch, journal.path)
            else:
                executor.submit(TrialJob(number, arch, seed, executor.cpus_per_trial))
                st.running += 1
