"""Runners: local, ssh (against a real OpenSSH server on 127.0.0.1) and adb (fake adb).

The SSH tests start ``/usr/sbin/sshd`` as the current user on a free port, with a throwaway
host key, client key, known_hosts and sshd_config in a temp folder; the "board" is this
machine and its Python is this interpreter. They skip, with the reason, only when sshd is
not installed (CI installs Debian's openssh-server). ADB has no phone here: its parser reads
recorded output and its command sequence runs against a fake ``adb`` that executes the
phone-side shell commands locally, with a fake ``benchmark_model``.
"""

from __future__ import annotations

import getpass
import json
import shlex
from pathlib import Path

import pytest
import yaml
from helpers import DATA, MICRO, adb_profile, board_profile, python_without_litert

from edgeauto.cli import app
from edgeauto.devices.profile import (
    Connection,
    host_cpu_name,
    load_profile,
    parse_host,
    profiles_dir,
    with_connection,
)
from edgeauto.errors import ConfigError, RunnerError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import get_runtime
from edgeauto.latency.builder import (
    TimingSettings,
    fill_table,
    make_timer,
    new_table,
    open_device_table,
)
from edgeauto.latency.runners import RUNNERS, Runner, get_runner
from edgeauto.latency.runners.adb import parse_benchmark_output
from edgeauto.latency.runners.ssh import SshRunner
from edgeauto.latency.store import table_path
from edgeauto.latency.table import LatencyStat, LatencyTable
from edgeauto.spaces import get_space
from edgeauto.spaces.modules import Stem
from edgeauto.testing.sshd import SSHD, free_port, keygen

SHAPE = (1, 8, 8)
FEW = TimingSettings(runs=30, warmup=2, rounds=1)
needs_sshd = pytest.mark.skipif(
    not SSHD.is_file(),
    reason=f"{SSHD} is absent (Debian: apt-get install openssh-server; .ci/run does)",
)


# -- an OpenSSH server on 127.0.0.1 (fixtures ssh_keys, new_server, sshd: conftest.py) ------


def micro_keys(n: int) -> list:
    return sorted(get_space(MICRO, SHAPE, 10).all_keys())[:n]


def small_artifacts(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny exported model: (.onnx, .tflite)."""
    onnx_path = export_onnx(Stem(1, 8, 1).train(False), SHAPE, tmp_path / "m.onnx")
    return onnx_path, get_runtime("litert").from_onnx(onnx_path, tmp_path / "m.tflite")


# -- ssh: for real --------------------------------------------------------------------------


@needs_sshd
def test_ssh_builds_a_table_and_verifies_an_artifact(sshd, ssh_keys, tmp_path: Path) -> None:
    workdir = tmp_path / "board"
    profile = board_profile(sshd, ssh_keys, workdir)
    timer = make_timer(profile, FEW)
    assert isinstance(timer.runner, SshRunner)
    keys = micro_keys(4)
    try:
        table = open_device_table(profile, MICRO, timer, root=tmp_path / "tables")
        assert fill_table(table, keys, timer, batch=2) == 4
    finally:
        timer.close()
    saved = LatencyTable.load(table_path(profile, MICRO, tmp_path / "tables"))
    assert set(saved.entries) == set(keys) and saved.overhead is not None
    assert all(0 < s.median_ms <= s.p90_ms and s.runs == FEW.runs for s in saved.entries.values())
    p = saved.provenance  # what the board reported, not this process
    assert (p.device, p.cpu_model, p.threads) == ("test-board", host_cpu_name(), 1)
    assert p.runtime_version == get_runtime("litert").version()
    # verify an exported artifact through the same runner, both runtimes
    onnx_path, tflite = small_artifacts(tmp_path)
    with get_runner(profile) as runner:
        remote = runner.measure_many([tflite, onnx_path], threads=1, runs=50, warmup=5)
    local = get_runner(load_profile("host")).measure(tflite, threads=1, runs=50, warmup=5)
    assert all(s.runs == 50 and 0 < s.median_ms <= s.p90_ms for s in remote)
    assert 0.1 < remote[0].median_ms / local.median_ms < 10  # same machine, same runtime
    assert list(workdir.iterdir()) == []  # each call removes what it copied


@needs_sshd
def test_ssh_cut_mid_table_resumes(new_server, ssh_keys, tmp_path: Path) -> None:
    server = new_server()
    profile = board_profile(server, ssh_keys, tmp_path / "board")
    keys, root = micro_keys(5), tmp_path / "tables"
    timer = make_timer(profile, FEW)

    def cut_after_first_batch(done: int, total: int, _key: object) -> None:
        if 0 < done < total:
            server.stop()  # the board goes away between batch 1 and batch 2

    table = open_device_table(profile, MICRO, timer, root)
    with pytest.raises(RunnerError, match=r"cannot reach") as exc:
        fill_table(table, keys, timer, cut_after_first_batch, batch=2)
    assert "\n" not in str(exc.value)
    saved = LatencyTable.load(table_path(profile, MICRO, root))
    assert set(saved.entries) == set(keys[:2]) and saved.overhead is not None
    # restart: the same command measures only what is missing
    server.start()
    sent: list[int] = []
    measure_many = timer.runner.measure_many

    def spy(artifacts, *args, **kw):  # type: ignore[no-untyped-def]
        sent.append(len(artifacts))
        return measure_many(artifacts, *args, **kw)

    timer.runner.measure_many = spy  # type: ignore[method-assign]
    resumed = open_device_table(profile, MICRO, timer, root)
    assert fill_table(resumed, keys, timer, batch=2) == 3
    timer.close()
    assert sent == [2, 1]  # no overhead, no first batch again
    final = LatencyTable.load(table_path(profile, MICRO, root))
    assert set(final.entries) == set(keys)
    assert {k: final.entries[k] for k in keys[:2]} == saved.entries
    assert final.overhead == saved.overhead


@needs_sshd
def test_ssh_unreachable_port(sshd, ssh_keys, tmp_path: Path) -> None:
    port = free_port()  # nobody listens there
    runner = get_runner(board_profile(sshd, ssh_keys, tmp_path / "board", port=port))
    with pytest.raises(RunnerError, match=rf"cannot reach .*127\.0\.0\.1:{port}") as exc:
        runner.describe()
    assert "\n" not in str(exc.value) and "Connection refused" in str(exc.value)


@needs_sshd
def test_ssh_changed_host_key(new_server, ssh_keys, tmp_path: Path) -> None:
    server = new_server()
    profile = board_profile(server, ssh_keys, tmp_path / "board")
    get_runner(profile).describe()  # the recorded key works
    server.stop()
    keygen(server.host_key)  # the board was reinstalled (or someone is in the middle)
    server.start()
    timer = make_timer(profile, FEW)
    with pytest.raises(RunnerError, match=r"host key of .* has changed") as exc:
        open_device_table(profile, MICRO, timer, root=tmp_path / "tables")
    message = str(exc.value)
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in message and "ssh-keygen -R" in message
    assert "\n" not in message
    assert not (tmp_path / "tables").exists()  # nothing written


@needs_sshd
def test_ssh_unknown_host_key_and_refused_login(sshd, ssh_keys, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    profile = board_profile(sshd, ssh_keys, tmp_path / "b", known_hosts=str(empty))
    with pytest.raises(RunnerError, match=r"host key of .* is not in"):
        get_runner(profile).describe()
    with pytest.raises(ConfigError, match=r"connection.key .* is not a file"):
        get_runner(board_profile(sshd, tmp_path / "no-such-key", tmp_path / "b"))
    stranger = tmp_path / "stranger"
    keygen(stranger)
    profile = board_profile(sshd, stranger, tmp_path / "b")
    with pytest.raises(RunnerError, match=r"refused the SSH login.*--key"):
        get_runner(profile).describe()


@needs_sshd
def test_ssh_missing_runtime_on_the_board(sshd, ssh_keys, tmp_path: Path) -> None:
    """A board Python without any LiteRT package: one line naming the host and the install."""
    python = python_without_litert(tmp_path)
    profile = board_profile(sshd, ssh_keys, tmp_path / "b", python=str(python))
    runner = get_runner(profile)
    with pytest.raises(RunnerError, match=r"127\.0\.0\.1:\d+ has no litert.*ai-edge-litert"):
        runner.describe()
    _, tflite = small_artifacts(tmp_path)
    with pytest.raises(RunnerError, match=r"no LiteRT"):
        runner.measure(tflite, threads=1, runs=5, warmup=1)


@needs_sshd
def test_ssh_remote_arguments_are_quoted(sshd, ssh_keys, tmp_path: Path) -> None:
    """A workdir with spaces and shell syntax is a literal path on the board, never code."""
    workdir = tmp_path / "work dir $(touch PWNED) ; touch PWNED2"
    runner = get_runner(board_profile(sshd, ssh_keys, workdir))
    argv = runner.ssh_argv("true")  # type: ignore[attr-defined]
    assert argv[-3:] == ["--", "127.0.0.1", "true"] and "StrictHostKeyChecking=yes" in argv
    assert "BatchMode=yes" in argv and f"UserKnownHostsFile={sshd.known_hosts}" in argv
    _, tflite = small_artifacts(tmp_path)
    assert runner.measure(tflite, threads=1, runs=5, warmup=1).runs == 5
    assert workdir.is_dir() and list(workdir.iterdir()) == []
    assert not list(Path.home().glob("PWNED*")) and not list(tmp_path.glob("PWNED*"))


@needs_sshd
def test_cli_profile_over_ssh_with_host_override(sshd, ssh_keys, tmp_path: Path) -> None:
    """`edgeauto profile --device D --host user@127.0.0.1:PORT` measures the missing keys."""
    from typer.testing import CliRunner

    data = board_profile(sshd, ssh_keys, tmp_path / "board").model_dump(mode="json")
    data["connection"].update(host="board.invalid", port=22, user="pi")  # overridden below
    for k in ("key", "known_hosts", "source"):
        data["connection"].pop(k, None)
    data.pop("source")
    path = tmp_path / "test-board.yaml"
    path.write_text(yaml.safe_dump(data))
    profile = load_profile(path)
    # a table missing two keys (the others carry placeholder stats): the CLI times those two
    space = get_space(MICRO, SHAPE, 10)
    todo = sorted(space.all_keys())[:2]
    table = new_table(profile, get_runtime("litert"), MICRO, TimingSettings(), cores=(0,))
    table.overhead = LatencyStat(0.003, 0.004, 30)
    table.entries = {k: LatencyStat(0.01, 0.02, 30) for k in space.all_keys() if k not in todo}
    target = table_path(profile, MICRO, tmp_path / "tables")
    table.save(target)
    args = ["profile", "--device", str(path), "--space", MICRO, "--input-shape", "1,8,8"]
    args += ["--tables", str(tmp_path / "tables"), "--key", str(ssh_keys)]
    args += ["--known-hosts", str(sshd.known_hosts)]
    host = f"{getpass.getuser()}@127.0.0.1:{sshd.port}"
    result = CliRunner().invoke(app, [*args, "--host", host])
    assert result.exit_code == 0, result.stderr
    after = LatencyTable.load(target)
    assert set(after.entries) == space.all_keys()
    runs = TimingSettings().runs  # whole rounds of it, a disturbed round dropped
    assert all(after.entries[k].runs in (runs, 2 * runs, 3 * runs) for k in todo)
    # an unreachable override with a key to measure: one line, exit 2, the table untouched
    del after.entries[todo[0]]
    after.save()
    before = target.read_bytes()
    result = CliRunner().invoke(app, [*args, "--host", f"127.0.0.1:{free_port()}"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    # the device is asked first, so the error comes before any conversion or progress bar
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: RunnerError: cannot reach pi@127.0.0.1:")
    assert target.read_bytes() == before


# -- profiles and overrides -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ("pi@10.0.0.5", {"user": "pi", "host": "10.0.0.5"}),
        ("pi@10.0.0.5:2222", {"user": "pi", "host": "10.0.0.5", "port": 2222}),
        ("board.local", {"host": "board.local"}),
        ("[::1]:2200", {"host": "::1", "port": 2200}),
        ("me@fe80::1", {"user": "me", "host": "fe80::1"}),
    ],
)
def test_parse_host(spec: str, fields: dict) -> None:
    assert parse_host(spec) == fields


@pytest.mark.parametrize("spec", ["pi@", "pi@host:abc", ":22", "[::1"])
def test_parse_host_rejects(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"--host must be \[user@\]host\[:port\]"):
        parse_host(spec)


def test_with_connection_overrides_and_validates() -> None:
    pi = load_profile("raspberry-pi-4")
    moved = with_connection(pi, **parse_host("me@10.0.0.5:2200"), key="~/.ssh/k")
    assert (moved.connection.user, moved.connection.host, moved.connection.port) == (
        "me", "10.0.0.5", 2200,
    )  # fmt: skip
    assert moved.connection.key == "~/.ssh/k" and pi.connection.port == 22
    with pytest.raises(ConfigError, match=r"connection.port"):
        with_connection(pi, port=70000)
    with pytest.raises(ConfigError, match=r"connection.host must .* not start with '-'"):
        with_connection(pi, host="-oProxyCommand=touch x")


@pytest.mark.parametrize(
    ("conn", "fragment"),
    [
        ({"kind": "adb", "host": "x"}, "adb connection takes no 'host'"),
        ({"kind": "local", "serial": "x"}, "local connection takes no 'serial'"),
        ({"kind": "ssh", "host": "h", "benchmark_model": "/b"}, "takes no 'benchmark_model'"),
        (
            {"kind": "ssh", "host": "h", "workdir": "tmp/x"},
            "connection.workdir must be an absolute",
        ),
        ({"kind": "ssh", "host": "h", "user": "-l root"}, "connection.user must"),
        ({"kind": "adb", "serial": "-d"}, "connection.serial must"),
    ],
)
def test_connection_validation(conn: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        Connection(**conn)


def test_bad_connection_field_in_yaml_names_it(tmp_path: Path) -> None:
    data = yaml.safe_load((profiles_dir() / "pixel-7.yaml").read_text())
    data["connection"]["benchmark_modle"] = "/x"
    path = tmp_path / "pixel-7.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"field 'connection.benchmark_modle'"):
        load_profile(path)


def test_cli_host_override_needs_an_ssh_device(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        app, ["profile", "--device", "host", "--host", "pi@x", "--tables", str(tmp_path)]
    )
    assert result.exit_code == 2 and "only ssh devices take --host" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", RUNNERS.names())
def test_registered_runners(name: str) -> None:
    cls = RUNNERS.get(name)
    assert issubclass(cls, Runner) and cls.kind == name and cls.batch_size >= 1
    assert name in Connection.model_fields["kind"].annotation.__args__  # a profile can name it


def test_local_runner_measures_both_runtimes(tmp_path: Path) -> None:
    onnx_path, tflite = small_artifacts(tmp_path)
    with get_runner(load_profile("host")) as runner:
        stats = runner.measure_many([onnx_path, tflite], threads=1, runs=20, warmup=2, rounds=2)
        assert all(s.runs in (20, 40) for s in stats)  # 2 rounds of 20, unless one was disturbed
        with pytest.raises(RunnerError, match=r"suffix '.pt'"):
            runner.measure(tmp_path / "m.pt", threads=1, runs=5, warmup=1)


# -- adb: recorded output and a fake adb ------------------------------------------------------


def test_parse_litert_output_with_percentiles() -> None:
    run = parse_benchmark_output((DATA / "litert_percentiles.txt").read_text())
    assert (run.init_us, run.first_us, run.warmup_avg_us, run.avg_us) == (3512, 312, 118.9, 103.42)
    assert (run.count, run.std_us, run.median_us, run.p95_us) == (9480, 22, 98, 131)  # not warmup
    stat = run.stat(runs=50)
    assert stat.median_ms == pytest.approx(0.098) and stat.runs == 9480
    assert stat.p90_ms == pytest.approx((98 + 33 * 1.2816 / 1.6449) / 1e3)


def test_parse_older_output_without_percentiles() -> None:
    run = parse_benchmark_output((DATA / "tflite_2_4_no_percentiles.txt").read_text())
    assert (run.count, run.avg_us, run.std_us, run.median_us) == (50, 35284.6, 987, None)
    stat = run.stat(runs=50)
    assert stat.median_ms == pytest.approx(35.2846)
    assert stat.p90_ms == pytest.approx((35284.6 + 1.2816 * 987) / 1e3)


def test_parse_scientific_notation_and_summary_only() -> None:
    run = parse_benchmark_output((DATA / "slow_model_scientific.txt").read_text())
    assert run.avg_us == 2.95034e06 and run.warmup_avg_us == 3.51239e06 and run.count == 50
    line = "Inference timings in us: Init: 10, First inference: 20, Warmup (avg): 30, Inference (avg): 40"
    stat = parse_benchmark_output(line).stat(runs=7)
    assert (stat.median_ms, stat.p90_ms, stat.runs) == (0.04, 0.04, 7)


def test_parse_failure_is_one_line() -> None:
    with pytest.raises(RunnerError, match=r"Benchmarking failed") as exc:
        parse_benchmark_output((DATA / "failed_to_load.txt").read_text())
    assert "\n" not in str(exc.value)


def _lines(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_adb_command_sequence(phone: dict[str, Path], tmp_path: Path) -> None:
    models = []
    for name in ("a", "b b"):  # a local name with a space: the phone sees our own names
        (tmp_path / f"{name}.tflite").write_bytes(b"TFL3 not a real model")
        models.append(tmp_path / f"{name}.tflite")
    runner = get_runner(adb_profile(phone))
    assert runner.describe().cpu_model == "Pixel 7 (gs201)"
    stats = runner.measure_many(models, threads=4, runs=50, warmup=5, rounds=2)
    assert (
        stats
        == [LatencyStat(0.098, pytest.approx((98 + 33 * 1.2816 / 1.6449) / 1e3), 18960, 0.0)] * 2
    )
    calls = _lines(phone["adb_log"])
    wd = str(phone["workdir"])
    assert all(c[:2] == ["-s", "emulator-5554"] for c in calls)
    verbs = [c[2] for c in calls]
    assert verbs == ["shell", "shell", "shell", "push", "shell", "push", "shell"]
    assert calls[2] == ["-s", "emulator-5554", "shell", f"mkdir -p {shlex.quote(wd)}"]
    assert calls[3][3:] == [str(phone["bm"]), f"{wd}/benchmark_model"]
    assert calls[4][3] == f"chmod 755 {shlex.quote(wd + '/benchmark_model')}"
    assert len(calls[5]) == 3 + 3 and calls[5][-1] == f"{wd}/"  # both models, one push
    assert calls[6][3].count("taskset f ") == 4  # every run pinned to the profile's cores
    runs = _lines(phone["bm_log"])
    assert len(runs) == 4  # 2 models x 2 rounds, one shell call
    for argv in runs:
        assert argv[1:] == ["--num_threads=4", "--num_runs=50", "--warmup_runs=5"]
        assert argv[0].startswith(f"--graph={wd}/edgeauto-") and argv[0].endswith(".tflite")
    assert sorted(p.name for p in phone["workdir"].iterdir()) == ["benchmark_model"]
    # a second batch does not push the binary again
    runner.measure(models[0], threads=4, runs=50, warmup=5)
    assert [c[2] for c in _lines(phone["adb_log"])[7:]] == ["push", "shell"]


def test_adb_device_missing(phone: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_ADB_DEVICES", "")
    model = phone["workdir"].parent / "m.tflite"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"x")
    with pytest.raises(RunnerError, match=r"no such adb device: adb:emulator-5554.*adb devices"):
        get_runner(adb_profile(phone)).measure(model, threads=1, runs=5, warmup=1)
    with pytest.raises(RunnerError, match=r"no adb device attached"):
        get_runner(adb_profile(phone, serial=None)).describe()


def test_adb_bad_output_and_bad_inputs(phone: dict[str, Path], monkeypatch) -> None:
    monkeypatch.setenv("FAKE_BM_OUTPUT", str(DATA / "failed_to_load.txt"))
    model = phone["workdir"].parent / "m.tflite"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"x")
    runner = get_runner(adb_profile(phone))
    with pytest.raises(RunnerError, match=r"Benchmarking failed"):
        runner.measure(model, threads=1, runs=5, warmup=1)
    with pytest.raises(RunnerError, match=r"times \.tflite files"):
        runner.measure(model.with_suffix(".onnx"), threads=1, runs=5, warmup=1)
    with pytest.raises(ConfigError, match=r"connection.benchmark_model is not set"):
        get_runner(load_profile("pixel-7"))
    with pytest.raises(ConfigError, match=r"is not a file"):
        get_runner(adb_profile(phone, benchmark_model=str(phone["bm"]) + ".missing"))
    with pytest.raises(RunnerError, match=r"adb executable .* not found"):
        get_runner(adb_profile(phone, adb="/nonexistent/adb")).describe()
