"""``--resume RUN_DIR`` (run and compress) and ``resume=RUN_DIR`` (Python): the run continues
from its recorded ``config.json``; an option given again must match the record, and a
directory with no run in it is a one-line error. The job itself is replaced by a stub that
records the config it gets (the whole-job resume is in test_cli and test_resume)."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest
from helpers import MICRO, assert_one_line_error

import edgeauto
from edgeauto.config import RunConfig, job_config
from edgeauto.errors import ConfigError, EdgeAutoError, RunDirError

EXAMPLE = f"{Path(__file__).parents[1] / 'examples' / 'custom_cnn.py'}:build"
RECORDED = RunConfig(
    device="host", latency_ms=1.0, dataset="digits", space=MICRO, trials=1, epochs=1, seed=4,
    criterion="l2", int8=False, tables="some/tables",
)  # fmt: skip


class Stopped(EdgeAutoError):
    """What the stub job raises: the command ends with exit 2 before any work."""


def _record(root: Path, cfg: RunConfig) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(cfg.to_json()))
    return root


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory whose run was interrupted: only its config.json."""
    return _record(tmp_path / "run", dataclasses.replace(RECORDED, out=str(tmp_path / "run")))


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> list[RunConfig]:
    """The configs the ``run`` and ``compress`` jobs (stubbed) are called with."""
    seen: list[RunConfig] = []

    def stub(cfg: RunConfig, *args: object, **kwargs: object) -> None:
        seen.append(cfg)
        raise Stopped("stopped before the job")

    for module, name in (("edgeauto.jobs.run", "run"), ("edgeauto.jobs.compress", "compress")):
        monkeypatch.setattr(importlib.import_module(module), name, stub)
    return seen


def _resumed(cfg: RunConfig, root: Path, **changes: object) -> RunConfig:
    return dataclasses.replace(cfg, out=str(root), resume=True, **changes)


def test_run_resume_needs_no_other_option(cli, run_dir: Path, jobs: list[RunConfig]) -> None:
    assert_one_line_error(cli("run", "--resume", str(run_dir)), "Stopped", "before the job")
    assert jobs == [_resumed(RECORDED, run_dir)]


def test_options_given_again_are_passed_on(cli, run_dir: Path, jobs: list[RunConfig]) -> None:
    """Given options reach the job (the run directory then checks them against the record);
    the defaults of options not given do not."""
    args = ["--seed", "4", "--device", "host", "--out", str(run_dir), "--epochs", "7"]
    assert_one_line_error(cli("run", "--resume", str(run_dir), *args), "Stopped")
    assert jobs == [_resumed(RECORDED, run_dir, epochs=7)]


def test_compress_resume_needs_no_other_option(cli, tmp_path: Path, jobs: list[RunConfig]) -> None:
    recorded = RunConfig(out=str(tmp_path / "c"), model=EXAMPLE, latency_ms=0.3, sparsity=0.5)
    root = _record(tmp_path / "c", recorded)
    assert_one_line_error(cli("compress", "--resume", str(root)), "Stopped")
    assert_one_line_error(cli("compress", "--resume", str(root), "--method", "imp"), "Stopped")
    assert jobs == [_resumed(recorded, root), _resumed(recorded, root, sparse_method="imp")]


def test_a_differing_option_is_refused_naming_it(cli, run_dir: Path) -> None:
    result = cli("run", "--resume", str(run_dir), "--epochs", "7", "--seed", "4")
    line = assert_one_line_error(result, "RunDirError", "belongs to another config")
    assert "epochs: 1 in the run, 7 now" in line and "seed" not in line.split("(")[1]


def test_compress_refuses_a_differing_option(cli, tmp_path: Path) -> None:
    root = _record(tmp_path / "c", RunConfig(out=str(tmp_path / "c"), model=EXAMPLE))
    result = cli("compress", "--resume", str(root), "--criterion", "taylor")
    assert_one_line_error(result, "RunDirError", "criterion: 'l1' in the run, 'taylor' now")


@pytest.mark.parametrize("command", ["run", "compress"])
def test_no_run_to_resume_is_one_line(cli, tmp_path: Path, command: str) -> None:
    missing = cli(command, "--resume", str(tmp_path / "nope"))
    assert_one_line_error(missing, "RunDirError", "no such directory", "--out of an earlier run")
    (tmp_path / "empty").mkdir()
    empty = cli(command, "--resume", str(tmp_path / "empty"))
    assert_one_line_error(empty, "RunDirError", "no config.json", "without --resume")
    assert not (tmp_path / "nope").exists()  # refused before anything is created


def test_a_run_per_device_names_the_directories(cli, tmp_path: Path) -> None:
    _record(tmp_path / "out" / "host", RECORDED)
    line = assert_one_line_error(cli("run", "--resume", str(tmp_path / "out")), "RunDirError")
    assert f"resume one of {tmp_path / 'out' / 'host'}" in line


def test_another_out_is_refused(cli, run_dir: Path, tmp_path: Path) -> None:
    result = cli("run", "--resume", str(run_dir), "--out", str(tmp_path / "other"))
    assert_one_line_error(result, "ConfigError", "name two directories", "drop --out")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("[1, 2]", "is corrupt"), ('{"seed": -1}', "holds no valid run config")],
)
def test_a_bad_record_is_one_line(cli, tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(text)
    result = cli("run", "--resume", str(tmp_path / "run"))
    assert_one_line_error(result, "RunDirError", "config.json", fragment, "drop --resume")


def test_python_api_resume_by_directory(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[RunConfig] = []
    monkeypatch.setattr(importlib.import_module("edgeauto.jobs.run"), "_run",
                        lambda cfg, reporter: seen.append(cfg))  # fmt: skip
    edgeauto.run(resume=run_dir)
    edgeauto.run(resume=str(run_dir), epochs=7)
    assert seen == [_resumed(RECORDED, run_dir), _resumed(RECORDED, run_dir, epochs=7)]
    with pytest.raises(ConfigError, match="resume=RUN_DIR takes the run's recorded config"):
        edgeauto.run(RECORDED, resume=run_dir)
    with pytest.raises(RunDirError, match=r"no config\.json"):
        edgeauto.run(resume=run_dir.parent)


def test_resume_true_still_takes_every_setting() -> None:
    cfg = job_config(None, {"resume": True, "out": "x", "seed": 2}, RunConfig())
    assert cfg == RunConfig(out="x", seed=2, resume=True)


def test_config_json_round_trip() -> None:
    cfg = RunConfig(device="a", also=(("b", 2.0), ("c", 3.5)), max_params=100, augment=False)
    doc = json.loads(json.dumps(cfg.to_json()))
    assert RunConfig.from_json(doc) == cfg
    # a record of another version: a missing field is defaulted, an unknown one dropped
    old = {k: v for k, v in doc.items() if k != "optimizer"} | {"retired_field": 1}
    assert RunConfig.from_json(old) == cfg
