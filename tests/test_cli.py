"""The ``edgeauto`` command: listings, and every bad input ends in exit 2 with one clear line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import MICRO, assert_one_line_error, micro_table_path, relabel

from edgeauto.config import RunConfig
from edgeauto.devices.profile import list_profiles, load_profile, profiles_dir
from edgeauto.latency.store import table_path
from edgeauto.latency.table import LatencyTable

SHIPPED = [
    "host", "jetson-orin-nano", "pi-relu", "pixel-7", "raspberry-pi-4", "raspberry-pi-5",
    "samsung-note10",
]  # fmt: skip


def run_args(out: Path, *extra: str, tables: Path | None = None) -> list[str]:
    """A fast run command line (digits, micro space) writing into ``out``."""
    args = ["run", "--dataset", "digits", "--space", MICRO, "--out", str(out), "--trials", "1"]
    if tables is not None:
        args += ["--tables", str(tables)]
    return [*args, *extra]


# -- devices ----------------------------------------------------------------------------------


def test_devices_lists_all_profiles(cli, micro_tables: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGEAUTO_TABLES", str(micro_tables))
    result = cli("devices")
    assert result.exit_code == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 5 and cells[0] in SHIPPED:
            rows[cells[0]] = cells
    assert sorted(rows) == SHIPPED == list_profiles()
    assert rows["host"][1:] == ["litert", str(load_profile("host").threads), "local", "yes"]
    assert rows["raspberry-pi-4"][1:] == ["litert", "4", "ssh", "no"]
    assert rows["jetson-orin-nano"][1] == "onnxruntime"
    assert rows["pixel-7"][3] == "adb"


def test_devices_without_tables(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGEAUTO_TABLES", str(tmp_path))
    result = cli("devices")
    assert result.exit_code == 0
    host = next(line for line in result.stdout.splitlines() if "│ host " in line)
    assert host.rstrip(" │").endswith("no")


def test_devices_show_prints_yaml(cli) -> None:
    result = cli("devices", "show", "raspberry-pi-4")
    assert result.exit_code == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    expected = load_profile("raspberry-pi-4").model_dump(mode="json", exclude={"source"})
    assert data == expected
    assert data["spec"]["soc"] == "BCM2711" and data["connection"]["kind"] == "ssh"
    assert result.stdout.rstrip().splitlines()[-1] == (
        f"# source: {profiles_dir() / 'raspberry-pi-4.yaml'}"
    )


def test_devices_show_host_resolves_auto(cli) -> None:
    result = cli("devices", "show", "host")
    assert result.exit_code == 0
    data = yaml.safe_load(result.stdout)
    assert "auto" not in (data["spec"]["cpu"], data["spec"]["cores"], data["threads"])
    assert data["threads"] == load_profile("host").threads


def test_devices_show_long_path_stays_yaml(cli, tmp_path: Path) -> None:
    folder = tmp_path / ("a-rather-long-folder-name-" * 3)
    folder.mkdir()
    path = folder / "my-device.yaml"
    shutil.copy(profiles_dir() / "raspberry-pi-4.yaml", path)
    result = cli("devices", "show", str(path))
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["name"] == "raspberry-pi-4"


def test_devices_show_unknown(cli) -> None:
    result = cli("devices", "show", "raspberry-pi-6")
    assert_one_line_error(result, "UnknownComponent", "did you mean 'raspberry-pi-5'")


# -- profile ----------------------------------------------------------------------------------


def test_profile_on_a_complete_table_measures_nothing(cli, tables_copy: Path) -> None:
    path = micro_table_path(tables_copy)
    before = path.read_bytes()
    result = cli(
        "profile", "--device", "host", "--space", MICRO, "--dataset", "digits",
        "--tables", str(tables_copy),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "21 entries" in result.stdout and "fbnet-micro.json" in result.stdout
    assert path.read_bytes() == before


def test_profile_bad_input_shape(cli, tmp_path: Path) -> None:
    result = cli("profile", "--space", MICRO, "--input-shape", "1,8", "--tables", str(tmp_path))
    assert_one_line_error(result, "ConfigError", "--input-shape", "'1,8'")
    assert list(tmp_path.iterdir()) == []


# -- run: bad inputs --------------------------------------------------------------------------


def test_unknown_device(cli, tmp_path: Path) -> None:
    result = cli(*run_args(tmp_path / "out", "--device", "raspbery-pi-4"))
    assert_one_line_error(
        result,
        "UnknownComponent",
        "unknown device 'raspbery-pi-4'",
        "did you mean 'raspberry-pi-4'",
    )


def test_malformed_profile_yaml(cli, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("schema_version: 1\nname: broken\nspec: [unclosed\n")
    result = cli(*run_args(tmp_path / "out", "--device", str(bad)))
    assert_one_line_error(result, "ConfigError", str(bad), "invalid YAML at line", "fix the YAML")


def test_incomplete_profile_yaml(cli, tmp_path: Path) -> None:
    data = yaml.safe_load((profiles_dir() / "host.yaml").read_text())
    del data["runtime"]
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli(*run_args(tmp_path / "out", "--device", str(path)))
    assert_one_line_error(result, "ConfigError", "field 'runtime'", "field is missing")


def test_profile_with_bad_field_value(cli, tmp_path: Path) -> None:
    data = yaml.safe_load((profiles_dir() / "host.yaml").read_text())
    data["threads"] = 0
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli(*run_args(tmp_path / "out", "--device", str(path)))
    assert_one_line_error(result, "ConfigError", "field 'threads'", "got 0")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "inf", "nan", ""])
def test_bad_latency_budget(cli, tmp_path: Path, value: str) -> None:
    out = tmp_path / "out"
    result = cli(*run_args(out, "--latency-ms", value))
    assert_one_line_error(
        result, "ConfigError", "latency_ms must be a positive number", "--latency-ms", repr(value)
    )
    assert not out.exists()  # rejected before anything is written


def test_budget_below_smallest_arch(cli, tables_copy: Path, tmp_path: Path) -> None:
    table = LatencyTable.load(micro_table_path(tables_copy))
    # history: the copied table has none, so the quoted prediction is the table's own
    args = run_args(tmp_path / "out", "--latency-ms", "0.000001", tables=tables_copy)
    result = cli(*args, "--calibration", "history")
    line = assert_one_line_error(
        result, "BudgetInfeasible", "latency budget 1e-06 ms", "smallest architecture",
        "on host in space fbnet-micro", "raise --latency-ms",
    )  # fmt: skip
    # the quoted prediction is the table's cheapest arch
    from edgeauto.spaces import get_space

    space = get_space(MICRO, (1, 8, 8), 10)
    cheapest = table.predict(space.blocks(space.cheapest(table.block_ms)))
    assert f"predicted {cheapest:.4f} ms" in line
    assert LatencyTable.load(micro_table_path(tables_copy)).entries == table.entries
    assert not (tmp_path / "out" / "trials.jsonl").exists()


def _remote_profile(tmp_path: Path, name: str = "test-pi") -> Path:
    data = yaml.safe_load((profiles_dir() / "raspberry-pi-4.yaml").read_text())
    data["name"] = name
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_remote_device_table_missing_a_key(cli, micro_tables: Path, tmp_path: Path) -> None:
    """An ssh device cannot be measured from here: a table that lacks keys is a TableMiss."""
    profile_path = _remote_profile(tmp_path)
    profile = load_profile(profile_path)
    table = relabel(LatencyTable.load(micro_table_path(micro_tables)), profile)
    for key in [k for k in table.entries if k.kind == "mbconv"]:
        del table.entries[key]
    tables = tmp_path / "tables"
    target = table_path(profile, MICRO, tables)
    table.save(target)
    before = target.read_bytes()
    result = cli(
        *run_args(
            tmp_path / "out", "--device", str(profile_path), "--latency-ms", "1", tables=tables
        )
    )
    assert_one_line_error(
        result, "TableMiss", "(test-pi, litert) has no entry for mbconv", "nearest measured: none",
        "edgeauto profile --device test-pi --space fbnet-micro",
    )  # fmt: skip
    assert target.read_bytes() == before  # nothing measured, nothing written


def test_remote_device_without_table(cli, tmp_path: Path) -> None:
    profile_path = _remote_profile(tmp_path)
    tables = tmp_path / "tables"
    result = cli(*run_args(tmp_path / "out", "--device", str(profile_path), tables=tables))
    assert_one_line_error(
        result, "TableMiss", "no latency table for test-pi (litert)",
        "edgeauto profile --device test-pi --space fbnet-micro",
    )  # fmt: skip


def test_remote_table_measured_differently(cli, micro_tables: Path, tmp_path: Path) -> None:
    profile_path = _remote_profile(tmp_path)
    table = LatencyTable.load(micro_table_path(micro_tables))
    table = relabel(table, load_profile(profile_path))
    table.provenance = dataclasses.replace(table.provenance, threads=1)
    table.save(table_path(load_profile(profile_path), MICRO, tmp_path / "tables"))
    result = cli(
        *run_args(tmp_path / "out", "--device", str(profile_path), tables=tmp_path / "tables")
    )
    assert_one_line_error(result, "ConfigError", "1 threads", "4 threads", "--tables")


def test_dataset_path_missing(cli, tmp_path: Path) -> None:
    args = run_args(tmp_path / "out")
    args[args.index("digits")] = "npz:/nonexistent.npz"
    result = cli(*args)
    assert_one_line_error(result, "DatasetError", "/nonexistent.npz does not exist", "--dataset")


def test_dataset_folder_without_images(cli, tmp_path: Path) -> None:
    (tmp_path / "imgs" / "cats").mkdir(parents=True)
    args = run_args(tmp_path / "out")
    args[args.index("digits")] = f"folder:{tmp_path / 'imgs'}"
    result = cli(*args)
    assert_one_line_error(result, "DatasetError", "holds no images", str(tmp_path / "imgs"))


def test_unknown_dataset(cli, tmp_path: Path) -> None:
    args = run_args(tmp_path / "out")
    args[args.index("digits")] = "digit"
    assert_one_line_error(cli(*args), "DatasetError", "did you mean 'digits'")


@pytest.mark.parametrize("where", ["proc", "under-file"])
def test_output_dir_not_writable(cli, tmp_path: Path, where: str) -> None:
    if where == "proc":
        out = Path("/proc/edgeauto-x")
    else:
        (tmp_path / "plain-file").write_text("x")
        out = tmp_path / "plain-file" / "run"
    result = cli(*run_args(out))
    assert_one_line_error(result, "RunDirError", str(out), "cannot be written", "--out")


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("--strategy", "randon", "unknown strategy 'randon'; did you mean 'random'"),
        ("--criterion", "taylr", "unknown criterion 'taylr'; did you mean 'taylor'"),
        ("--allocation", "netadapd", "unknown pruner 'netadapd'; did you mean 'netadapt'"),
        (
            "--space",
            "fbnet-mikro",
            "unknown search space 'fbnet-mikro'; did you mean 'fbnet-micro'",
        ),
    ],
)
def test_unknown_components(cli, tmp_path: Path, flag: str, value: str, fragment: str) -> None:
    result = cli(*run_args(tmp_path / "out", flag, value))
    assert_one_line_error(result, "UnknownComponent", fragment, "available:")


@pytest.mark.parametrize("flag", ["--trials", "--epochs"])
def test_nonpositive_counts(cli, tmp_path: Path, flag: str) -> None:
    result = cli(*run_args(tmp_path / "out", flag, "0"))
    assert_one_line_error(result, "ConfigError", "must be a positive integer, got 0", flag)


def test_bad_tolerance(cli, tmp_path: Path) -> None:
    result = cli(*run_args(tmp_path / "out", "--tolerance", "-0.5"))
    assert_one_line_error(result, "ConfigError", "tolerance must be in [0, 10)", "--tolerance")


@pytest.mark.parametrize("spec", ["npz:/tmp/no[bold]such.npz", "[/x]"])
def test_error_text_is_not_markup(cli, tmp_path: Path, spec: str) -> None:
    args = run_args(tmp_path / "out")
    args[args.index("digits")] = spec
    result = cli(*args)
    assert_one_line_error(result, "DatasetError", spec.removeprefix("npz:"))


# -- a real process ---------------------------------------------------------------------------


def test_console_script_bad_budget(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "edgeauto"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "edgeauto.cli"]
    env = {**os.environ, "COLUMNS": "40"}  # a narrow terminal must not wrap the error
    proc = subprocess.run(
        [*cmd, "run", "--latency-ms", "abc", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0] == (
        "error: ConfigError: latency_ms must be a positive number of milliseconds, got 'abc'; "
        "fix --latency-ms"
    )
    assert list(tmp_path.iterdir()) == []


# -- a successful run -------------------------------------------------------------------------


def test_run_succeeds_and_summarises(cli, tables_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "ok"
    result = cli(*run_args(out, "--latency-ms", "1", "--epochs", "1", tables=tables_copy))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    summary = result.stdout
    assert "edgeauto run: host" in summary
    for row in ("validation accuracy", "budget (ms)", "predicted litert (ms)", "measured litert",
                "measured onnxruntime", "measured torch_eager", "within budget"):  # fmt: skip
        assert row in summary, row
    within = next(line for line in summary.splitlines() if "within budget" in line)
    assert "yes" in within
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["budget"]["latency_ms"] == 1.0 and manifest["config"]["trials"] == 1
    assert f"{manifest['accuracy']['val']:.4f}" in summary
    assert (out / "model.tflite").is_file() and (out / "report.md").is_file()
    # resumed by its directory alone: every stage is reused, the same model and verdict
    again = cli("run", "--resume", str(out))
    assert again.exit_code == 0, again.stdout + again.stderr
    assert json.loads((out / "manifest.json").read_text())["accuracy"] == manifest["accuracy"]
    assert f"{manifest['accuracy']['val']:.4f}" in again.stdout


# -- known gaps (package bugs): these must become one-line errors with exit 2 -----------------


def test_negative_seed(cli, tmp_path: Path) -> None:
    result = cli(*run_args(tmp_path / "out", "--seed", "-1"))
    assert_one_line_error(result, "ConfigError", "seed", "--seed")


def test_resume_with_corrupt_stages(cli, tables_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    recorded = RunConfig(dataset="digits", space=MICRO, trials=1, latency_ms=1.0, out=str(out),
                         tables=str(tables_copy))  # fmt: skip
    (out / "config.json").write_text(json.dumps(recorded.to_json()))
    (out / "stages.json").write_text("{broken")
    result = cli("run", "--resume", str(out))
    assert_one_line_error(result, "RunDirError", "stages.json")
