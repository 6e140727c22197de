"""``edgeauto search``: one search study on its own, resumable, in-process or on Ray.

:class:`SearchJob` is the whole configuration; :func:`run_search` validates it, opens the run
directory, the data, the space and the device's latency table, and runs the study
(:func:`edgeauto.search.study.run_study`). The run directory holds ``study.json`` (the
:class:`~edgeauto.search.study.StudySpec` a resume must match), ``trials.jsonl`` (one line per
finished trial) and, at the end, ``search.json`` (the best trial and a summary).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeauto.config import RunConfig, _positive
from edgeauto.errors import ConfigError, RunDirError
from edgeauto.progress import NullReporter, Reporter
from edgeauto.rundir import RunDir, release
from edgeauto.search.base import STRATEGIES, SearchProblem, SearchResult, Strategy, Trial
from edgeauto.search.executors import Executor, InProcessExecutor, RayExecutor
from edgeauto.search.objective import TrainObjective, cached_dataset
from edgeauto.search.study import STUDY_FILE, StudySpec, TrialJournal, check_resume, load_spec
from edgeauto.search.study import run_study as drive

EXECUTORS = ("inprocess", "ray")
RESULT_FILE = "search.json"
#: What ``edgeauto search`` defaults to where ``edgeauto run`` differs (a study of its own).
SEARCH_DEFAULTS: dict[str, Any] = {"strategy": "smbo", "trials": 20, "out": "runs/search"}


@dataclass(frozen=True)
class SearchJob:
    """One ``edgeauto search``: the study (``config``, a :class:`RunConfig` whose search fields
    are the study's identity, :meth:`spec`) and where its trials run, which may change on
    resume."""

    config: RunConfig
    executor: str = "inprocess"
    workers: int | None = None
    ray_address: str | None = None
    cpus_per_trial: int = 1
    trial_timeout_s: float | None = None
    connect_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        STRATEGIES.get(self.config.strategy)  # an unknown name fails before any cluster or data
        if self.config.precision != "fp32":  # int8 needs a litert device: say so before the run
            from edgeauto.devices.profile import load_profile
            from edgeauto.latency.builder import check_precision

            check_precision(load_profile(self.config.device), self.config.precision)
        _positive("cpus_per_trial", self.cpus_per_trial, integer=True)
        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}; fix "
                "--executor"
            )
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError("--ray-address needs --executor ray; add it or drop --ray-address")
        if self.trial_timeout_s is not None and self.executor != "ray":
            raise ConfigError(
                "--trial-timeout needs --executor ray (an in-process trial cannot be stopped)"
            )

    @property
    def out(self) -> str:
        return self.config.out

    def spec(self) -> StudySpec:
        """What the study's answer depends on (checked on resume)."""
        c = self.config
        options = {"warm_start": c.warm_start, "beam": c.beam}
        if c.precision != "fp32":  # only then: studies recorded before it resume as they were
            options["precision"] = c.precision
        if c.budget_term != "hinge":  # likewise
            options["budget_term"] = c.budget_term
        return StudySpec(
            c.strategy, c.space, c.dataset, c.device, c.latency_ms, c.trials, c.seed,
            study_objective(c).to_json(), options, c.tables,
        )  # fmt: skip


def study_objective(cfg: RunConfig) -> TrainObjective:
    """The proxy training every trial of ``cfg``'s search gets (zero-cost scores too when
    smbo warm-starts from them)."""
    return TrainObjective(
        cfg.data_spec, cfg.space, cfg.seed, cfg.search_epochs, cfg.search_batches,
        zero_cost=cfg.warm_start, recipe=cfg.train_config(cfg.search_epochs),
    )  # fmt: skip


_SPEC_FIELDS = ("device", "dataset", "space", "strategy", "trials", "seed", "tables")
_RUNNER_FIELDS = (
    "executor", "workers", "ray_address", "cpus_per_trial", "trial_timeout_s",
    "connect_timeout_s",
)  # fmt: skip


def new_job(study: dict[str, Any], runner: dict[str, Any]) -> SearchJob:
    """A new study: ``study`` fields (of :class:`RunConfig`) over :data:`SEARCH_DEFAULTS`."""
    return SearchJob(RunConfig(**{**SEARCH_DEFAULTS, **study}), **runner)


def resume_job(run_dir: str | Path, given: dict[str, Any]) -> SearchJob:
    """The job recorded in ``run_dir`` with ``given`` settings applied; :class:`RunDirError`
    when it is no search run or a given setting changes the study."""
    root = Path(run_dir).expanduser()
    if not root.is_dir():
        raise RunDirError(f"--resume {root}: no such directory; pass the --out of a search run")
    recorded = load_spec(RunDir(root))
    base = {f: getattr(recorded, f) for f in _SPEC_FIELDS}
    obj = recorded.objective
    base.update(
        latency_ms=recorded.budget_ms, search_epochs=obj.get("epochs", 1),
        search_batches=obj.get("max_batches", 60), **recorded.options,
    )  # fmt: skip
    base.update(_recorded_data(obj))
    runner = {k: v for k, v in given.items() if k in _RUNNER_FIELDS}
    study = {k: v for k, v in given.items() if k not in _RUNNER_FIELDS}
    config = RunConfig(**{**base, **study, "out": str(root), "resume": True})
    job = SearchJob(config, **runner)
    check_resume(recorded, job.spec(), root)
    return job


def _recorded_data(objective: dict[str, Any]) -> dict[str, Any]:
    """The split and training recipe a recorded objective used (none before they were)."""
    data, recipe = objective.get("dataset"), objective.get("recipe") or {}
    found = {}
    if isinstance(data, dict):
        keys = ("val_fraction", "test_fraction", "test_dataset", "cache")
        found |= {k: data[k] for k in keys if k in data}
    found |= {k: recipe[k] for k in ("augment", "optimizer", "label_smoothing") if k in recipe}
    if "device" in recipe:
        found["train_device"] = recipe["device"]
    return found


def make_executor(job: SearchJob, objective: TrainObjective) -> Executor:
    """The executor the job's trials run on: this process, or a Ray cluster."""
    if job.executor == "ray":
        return RayExecutor(
            objective, job.workers, job.ray_address, job.cpus_per_trial, job.trial_timeout_s,
            job.connect_timeout_s,
        )  # fmt: skip
    return InProcessExecutor(objective, job.cpus_per_trial)


def make_strategy(cfg: RunConfig, problem: SearchProblem) -> Strategy:
    """The named strategy; ``dnas`` gets its budget term, ``smbo`` its beam and, with
    ``warm_start``, a zero-cost scorer on the first training images. ``run`` and ``search`` both build it here."""
    cls = STRATEGIES.get(cfg.strategy)
    if cfg.strategy == "dnas":
        from edgeauto.search.dnas import DNAS, DNASConfig

        return DNAS(problem, DNASConfig(budget_term=cfg.budget_term))
    if cfg.strategy != "smbo":
        return cls(problem)
    from edgeauto.search.objective import ZERO_COST_SAMPLES
    from edgeauto.search.smbo import ProgressiveSMBO, SMBOConfig
    from edgeauto.search.zero_cost import ZeroCostScorer

    scorer = None
    if cfg.warm_start:
        data = cached_dataset(cfg.data_spec)
        scorer = ZeroCostScorer(problem.space, data.x_train[:ZERO_COST_SAMPLES], cfg.seed)
    return ProgressiveSMBO(problem, SMBOConfig(beam=cfg.beam), scorer)


def run_trials(
    strategy: Strategy, executor: Executor, rd: RunDir, reporter: Reporter, title: str
) -> SearchResult:
    """The one search driver: the strategy's trials on ``executor``, journalled in ``rd``
    (``trials.jsonl``: a resumed study replays it), with a progress bar."""
    trials = strategy.problem.trials
    with reporter.task(title, trials) as task:

        def on_trial(trial: Trial) -> None:
            task.update(trial.number + 1, trials)

        return drive(strategy, executor, TrialJournal(rd), on_trial)


def _problem(job: SearchJob, reporter: Reporter) -> SearchProblem:
    from edgeauto.devices.profile import load_profile
    from edgeauto.latency.device import open_table
    from edgeauto.spaces import get_space

    c = job.config
    profile = load_profile(c.device)
    data = cached_dataset(c.data_spec)
    space = get_space(c.space, data.input_shape, data.num_classes)
    root = Path(c.tables) if c.tables else None
    _table, predictor = open_table(profile, space, reporter, root, c.precision)
    return SearchProblem(
        space, predictor, c.latency_ms, lambda a: 0.0, trials=c.trials, seed=c.seed,
        device=profile.name, profile=profile,
    )  # fmt: skip


def search(
    *,
    resume: str | Path | None = None,
    executor: str | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    cpus_per_trial: int = 1,
    trial_timeout_s: float | None = None,
    connect_timeout_s: float = 30.0,
    reporter: Reporter | None = None,
    **study: Any,
) -> dict[str, Any]:
    """Search ``space`` for the most accurate arch within ``latency_ms`` on ``device``, as
    ``edgeauto search`` does; returns what ``search.json`` records (``best``: its arch,
    proxy accuracy and predicted latency; trial counts; the executor).

    ``study`` takes :class:`~edgeauto.RunConfig`'s search fields (``device``, ``latency_ms``,
    ``dataset``, ``space``, ``strategy`` (default ``smbo``), ``trials`` (20), ``seed``,
    ``search_epochs``, ``search_batches``, ``warm_start``, ``beam``, ``tables``,
    ``precision``, ``out`` (``runs/search``) ...); ``None`` means "not given". Trials run in
    this process, or on Ray with ``workers`` / ``ray_address`` (``executor="ray"``).
    ``resume=RUN_DIR`` continues a killed study: settings come from its ``study.json`` and a
    given one that differs is refused. Bad input raises a one-line
    :class:`~edgeauto.EdgeAutoError`.

    Example:
        >>> s = edgeauto.search(device="host", latency_ms=0.05, dataset="digits",
        ...                     space="fbnet-micro", strategy="random", trials=4, out="runs/s")
        >>> s["best"]["arch"], s["best"]["accuracy"], s["best"]["predicted_ms"]
        >>> s = edgeauto.search(resume="runs/s")  # after a crash or kill -9
    """
    runner = {
        "executor": executor or ("ray" if workers or ray_address else "inprocess"),
        "workers": workers, "ray_address": ray_address, "cpus_per_trial": cpus_per_trial,
        "trial_timeout_s": trial_timeout_s, "connect_timeout_s": connect_timeout_s,
    }  # fmt: skip
    given = {k: v for k, v in study.items() if v is not None}
    job = resume_job(resume, {**given, **runner}) if resume else new_job(given, runner)
    return run_search(job, reporter)


def run_search(job: SearchJob, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run (or resume) the study of ``job``; returns what ``search.json`` records."""
    reporter = reporter or NullReporter()
    if job.config.resume and not Path(job.out).expanduser().is_dir():
        raise RunDirError(f"--resume {job.out}: no such directory; pass the --out of a search run")
    rd = RunDir(job.out)
    rd.lock()  # one process per run directory: a second search there is refused
    try:
        return _run_locked(job, rd, reporter)
    finally:
        release(rd.root)


def _run_locked(job: SearchJob, rd: RunDir, reporter: Reporter) -> dict[str, Any]:
    if job.config.resume:
        check_resume(load_spec(rd), job.spec(), rd.root)
    else:
        rd.start(False)
        rd.path(RESULT_FILE).unlink(missing_ok=True)
    # the executor first: a cluster that cannot be reached fails before data or tables load
    with make_executor(job, study_objective(job.config)) as executor:
        problem = _problem(job, reporter)
        strategy = make_strategy(job.config, problem)
        where = executor.describe()
        rd.write_json(STUDY_FILE, {"spec": job.spec().to_json(), "executor": where})
        title = f"search ({job.config.strategy}, {problem.trials} trials, {where['kind']} x{where['slots']})"
        predictor = problem.latency
        try:
            result = run_trials(strategy, executor, rd, reporter, title)
        finally:
            if getattr(predictor, "timer", None) is not None:
                predictor.timer.close()  # the table's timer: closed where it was opened
    summary = summarize(result, strategy, where)
    rd.write_json(RESULT_FILE, summary)
    return summary


def summarize(result: SearchResult, strategy: Strategy, where: dict[str, Any]) -> dict[str, Any]:
    """The best trial, counts, wall time, and how zero-cost scores ranked the trials."""
    best = result.best
    ok = [t for t in result.trials if t.ok]
    doc: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "best": best.to_json(), "trials": len(result.trials), "failed": len(result.trials) - len(ok),
        "wall_s": round(sum(t.wall_s or 0.0 for t in result.trials), 3), "executor": where,
        "zero_cost_spearman": zero_cost_spearman(ok),
    }  # fmt: skip
    steps = getattr(strategy, "steps", None)
    if steps is not None:
        doc["steps"] = [
            {"phase": s.phase, "candidates": s.candidates, "picked": len(s.picked), "ranked_by": s.ranked_by}
            for s in steps
        ]  # fmt: skip
    return doc


def zero_cost_spearman(trials: list[Trial]) -> dict[str, float] | None:
    """Spearman of trained accuracy with each zero-cost score (None without scores)."""
    from edgeauto.latency.fusion import spearman

    scored = [t for t in trials if "zero_cost" in t.metrics]
    if len(scored) < 3:
        return None
    acc = [t.accuracy for t in scored]
    cond = [t.metrics["zero_cost"]["ntk_cond"] or math.inf for t in scored]
    regions = [t.metrics["zero_cost"]["linear_regions"] for t in scored]
    # low condition number is good: its rank is negated so that > 0 means "agrees"
    return {"ntk_cond": -spearman(cond, acc), "linear_regions": spearman(regions, acc)}
