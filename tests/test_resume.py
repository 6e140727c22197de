"""Kill -9 at every stage, then resume by the run directory alone (``resume=RUN_DIR``, what
``edgeauto run --resume RUN_DIR`` calls): the run finishes with the manifest an
uninterrupted run with the same seed writes (same arch, plan, accuracy and stages), loses no
finished work and leaves no half-written file.

Each kill is deterministic: ``EDGEAUTO_KILL_AT=<point>:<n>`` (:mod:`edgeauto.killpoints`)
makes the run SIGKILL itself the n-th time it passes a named point, in a real subprocess.
Runs use digits, ``fbnet-micro`` and a private copy of the session's measured table.

Pruning is compared against the killed run's own record, not an independent run: pruned
blocks are measured on demand and whole models are timed, so two independent runs can prune
differently (``test_pipeline.test_tight_budget_forces_pruning``). The equivalence matrix
therefore uses a budget the searched arch meets, where the plan is deterministic.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import MICRO, micro_table_path

from edgeauto.killpoints import KILL_ENV, POINTS
from edgeauto.latency.table import LatencyTable

BASE = {
    "device": "host", "dataset": "digits", "space": MICRO, "latency_ms": 1.0, "trials": 2,
    "epochs": 2, "finetune_epochs": 2, "search_batches": 20, "measure_runs": 50, "seed": 0,
}  # fmt: skip
DRIVER = "import json, sys, edgeauto; edgeauto.run(**json.loads(sys.argv[1]), check=False)"
COMPRESS = "import json, sys, edgeauto; edgeauto.compress(**json.loads(sys.argv[1]), check=False)"
# a resume by the run directory alone: every setting comes from its config.json
RESUME = (
    "import json, sys, edgeauto; edgeauto.{}(resume=json.loads(sys.argv[1])['out'], check=False)"
)
EXAMPLE = f"{Path(__file__).parents[1] / 'examples' / 'custom_cnn.py'}:build"
SAME = ("arch", "accuracy", "space", "budget", "dataset")  # not timings or dates
# a plan's costs are predictions rescaled by a measurement (``scale``): timings, which differ
# between two runs; what pruning decided does not
TIMED = ("scale", "steps", "message", "misses")


def _run(out: Path, tables: Path, kill: str | None = None, driver: str = DRIVER, **kw: Any) -> int:
    """``edgeauto.run`` (or ``driver``) in a subprocess; its return code (-9 when killed)."""
    cfg = {**BASE, **kw, "out": str(out), "tables": str(tables)}
    return _subprocess(driver, cfg, kill)


def _resume(out: Path, job: str = "run") -> int:
    """``edgeauto.run(resume=out)`` (or ``compress``) in a subprocess: no other setting."""
    return _subprocess(RESUME.format(job), {"out": str(out)})


def _subprocess(driver: str, cfg: dict[str, Any], kill: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill:
        env[KILL_ENV] = kill
    proc = subprocess.run(
        [sys.executable, "-c", driver, json.dumps(cfg)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr[-3000:]
    return proc.returncode


def _tables(micro_tables: Path, where: Path) -> Path:
    shutil.copytree(micro_tables, where)
    return where


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def _decided(plan: dict[str, Any]) -> dict[str, Any]:
    """What pruning decided (ops, status, each step's action and size), not its timings."""
    out = {k: v for k, v in plan.items() if k not in TIMED}
    return {**out, "steps": [(st["action"], st["params"]) for st in plan["steps"]]}


def _no_partial_files(out: Path) -> None:
    assert not list(out.rglob(".*.tmp")), "a temp file was left behind"
    assert not list(out.rglob("*.epoch.pt")), "a partial training state was left behind"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, micro_tables: Path) -> dict[str, Any]:
    """One uninterrupted run: what every killed-and-resumed run must end with."""
    root = tmp_path_factory.mktemp("reference")
    out = root / "run"
    assert _run(out, _tables(micro_tables, root / "tables")) == 0
    state = torch.load(out / "checkpoints" / "finetune.pt", weights_only=True)
    return {"out": out, "manifest": _manifest(out), "weights": state}


# Kill points per stage of the equivalence matrix; ":n" is the n-th passage. The budget is
# met without pruning, so the prune stage passes prune_step and prune once, and fine-tuning
# (which runs only after real pruning) is covered by test_kill_during_finetune below.
KILLS = {
    "search": ["trial:1", "trial:2"],
    "train": ["train_epoch:1", "train_epoch:2"],
    "prune": ["prune_step:1", "prune:1"],
    "export": ["export:1", "export:2"],
    "measure": ["measure:1"],
    "manifest": ["manifest:1"],
}
FAST = {"train_epoch:1", "export:1"}
MATRIX = [
    pytest.param(p, id=p, marks=() if p in FAST else pytest.mark.slow)
    for points in KILLS.values()
    for p in points
]


def test_every_kill_point_is_covered() -> None:
    named = {p.split(":")[0] for points in KILLS.values() for p in points}
    assert named | {"table_batch", "finetune_epoch"} == set(POINTS)


@pytest.mark.parametrize("kill", MATRIX)
def test_kill_then_resume_matches_an_uninterrupted_run(
    kill: str, reference: dict[str, Any], micro_tables: Path, tmp_path: Path
) -> None:
    out, tables = tmp_path / "run", _tables(micro_tables, tmp_path / "tables")
    assert _run(out, tables, kill=kill) == -signal.SIGKILL
    before = json.loads((out / "stages.json").read_text()) if (out / "stages.json").exists() else {}
    assert not (out / "manifest.json").exists() or kill == "manifest:1"
    assert _resume(out) == 0
    got, ref = _manifest(out), reference["manifest"]
    for field in SAME:
        assert got[field] == ref[field], (kill, field)
    assert _decided(got["pruning"]) == _decided(ref["pruning"]), kill
    stages = json.loads((out / "stages.json").read_text())
    assert list(stages) == list(json.loads((reference["out"] / "stages.json").read_text()))
    for name, info in before.items():  # what finished before the kill was reused, not redone
        if name != "measure":
            assert stages[name] == info, name
    trials = (out / "trials.jsonl").read_text().splitlines()
    assert [json.loads(t)["number"] for t in trials] == list(range(BASE["trials"]))
    weights = torch.load(out / "checkpoints" / "finetune.pt", weights_only=True)
    assert all(torch.equal(weights[k], v) for k, v in reference["weights"].items())
    _no_partial_files(out)


@pytest.mark.slow
def test_kill_during_finetune_resumes_the_recorded_plan(tmp_path: Path) -> None:
    """``compress`` of the example CNN to half its latency (it prunes for real: see
    test_compress_cli), killed after the first fine-tuning epoch. The resumed run replays the
    recorded plan, not a new pruning, and continues fine-tuning from epoch 1."""
    out = tmp_path / "run"
    # well under the example on any CPU (3.5-6 us here): pruning always runs
    kw = {"model": EXAMPLE, "latency_ms": 0.0015, "epochs": 1, "finetune_epochs": 2}
    assert _run(out, tmp_path, kill="finetune_epoch:1", driver=COMPRESS, **kw) == -signal.SIGKILL
    stages = json.loads((out / "stages.json").read_text())
    assert stages["prune"]["plan"]["ops"] and "finetune" not in stages
    epoch = torch.load(out / "checkpoints" / "finetune.epoch.pt", weights_only=True)["epoch"]
    assert epoch == 1
    assert _resume(out, "compress") == 0
    m = _manifest(out)
    assert m["pruning"] == stages["prune"]["plan"]
    assert m["accuracy"]["val_before_pruning"] == stages["train"]["accuracy"]
    done = set(json.loads((out / "stages.json").read_text()))
    assert {"train", "prune", "finetune", "export", "measure"} <= done
    _no_partial_files(out)


@pytest.mark.slow
@pytest.mark.parametrize("nth", [3, 12])
def test_kill_while_building_the_table(micro_tables: Path, tmp_path: Path, nth: int) -> None:
    """No table yet: the run measures it key by key. Killed after ``nth`` keys, the resumed
    run keeps every key measured before (same numbers) and measures only the rest."""
    out, tables = tmp_path / "run", tmp_path / "tables"
    assert _run(out, tables, kill=f"table_batch:{nth}", trials=1, epochs=1) == -signal.SIGKILL
    partial = LatencyTable.load(micro_table_path(tables))
    assert len(partial.entries) == nth
    assert _resume(out) == 0  # config.json is recorded before the table is built
    full = LatencyTable.load(micro_table_path(tables))
    complete = LatencyTable.load(micro_table_path(micro_tables))
    assert set(complete.entries) <= set(full.entries)
    assert all(full.entries[k] == v for k, v in partial.entries.items())
    assert _manifest(out)["table"]["entries"] == len(full.entries)
    _no_partial_files(out)
    assert not list(tables.rglob(".*.tmp"))
