"""Calibration (history of verified artifacts) and emulation of unreachable devices.

The device/host law is fitted between two real tables measured here (LiteRT and ONNX
Runtime on this machine, the micro space at 28x28) and checked against real exported
models timed with both runtimes. The pipeline is run end to end against an ssh device that
cannot be reached (emulated, labelled) and, where sshd is installed, one that can (timed on
the "board" through the ssh runner, history appended).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import yaml
from helpers import MICRO, largest_arch, micro_table_path, relabel, sample_archs

import edgeauto
from edgeauto.config import RunConfig
from edgeauto.devices.profile import DeviceProfile, host_cpu_name, load_profile
from edgeauto.errors import ConfigError, RunnerError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.runtimes import get_runtime
from edgeauto.jobs import context as job_context
from edgeauto.jobs import measure as job_measure
from edgeauto.latency.builder import TimingSettings, make_timer, validate_table
from edgeauto.latency.calibration.history import (
    MIN_ENTRIES,
    WINDOW,
    calibration_factor,
    record_verification,
)
from edgeauto.latency.device import open_table
from edgeauto.latency.emulation import EmulationFit, expected_error, fit_emulation
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.latency.runners import DeviceInfo, Runner
from edgeauto.latency.table import LatencyStat, LatencyTable, Verification
from edgeauto.progress import NullReporter
from edgeauto.rundir import RunDir
from edgeauto.spaces import get_space
from edgeauto.testing.sshd import ThrowawaySshd, free_port, keygen, sshd_unavailable

SHAPE28 = (1, 28, 28)
VALIDATION = 6  # whole networks per table
SHA = "0" * 64


def _entry(i: int, ratio: float, predictor: str = "fusion") -> Verification:
    return Verification(f"{i:064d}", 0.1, 0.1 * ratio, predictor, f"2026-01-0{i % 9 + 1}")


# -- calibration --------------------------------------------------------------------------------


def test_calibration_factor(micro_table: LatencyTable) -> None:
    micro_table.history = [_entry(i, 1.2) for i in range(MIN_ENTRIES - 1)]
    assert calibration_factor(micro_table, "fusion") == 1.0  # too few to trust a median
    micro_table.history.append(_entry(9, 1.5))
    assert calibration_factor(micro_table, "fusion") == pytest.approx(1.2)  # the median
    micro_table.history += [_entry(10 + i, 0.9, "fusion+residual:abc") for i in range(5)]
    assert calibration_factor(micro_table, "fusion") == pytest.approx(1.2)  # others ignored
    assert calibration_factor(micro_table, "fusion+residual:abc") == pytest.approx(0.9)
    micro_table.history += [_entry(20 + i, 1.1) for i in range(WINDOW)]
    assert calibration_factor(micro_table, "fusion") == pytest.approx(1.1)  # last WINDOW only


def test_record_verification_saves_with_the_table(tables_copy: Path) -> None:
    path = micro_table_path(tables_copy)
    table = LatencyTable.load(path)
    entries = dict(table.entries)
    record_verification(table, SHA, 0.05, 0.06, "fusion")
    record_verification(table, "1" * 64, 0.05, 0.07, "fusion")
    record_verification(table, SHA, 0.05, 0.055, "fusion")  # verified again: replaces
    loaded = LatencyTable.load(path)
    assert [(h.model_sha256, h.measured_ms) for h in loaded.history] == [
        ("1" * 64, 0.07),
        (SHA, 0.055),
    ]
    assert loaded.entries == entries and loaded.history == table.history
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # atomic: no temp files


@pytest.mark.parametrize("bad", [float("nan"), 0.0, -1.0, float("inf")])
def test_bad_verification_leaves_the_table_alone(tables_copy: Path, bad: float) -> None:
    path = micro_table_path(tables_copy)
    before = path.read_bytes()
    table = LatencyTable.load(path)
    with pytest.raises(ConfigError, match="positive finite") as exc:
        record_verification(table, SHA, 0.05, bad, "fusion")
    assert "\n" not in str(exc.value)
    assert table.history == [] and path.read_bytes() == before


def test_predictor_applies_calibration(micro_table: LatencyTable) -> None:
    micro_table.history = [_entry(i, 1.25) for i in range(MIN_ENTRIES)]
    predictor = MeasuringPredictor(micro_table)
    keys = list(micro_table.entries)[:4]
    assert predictor.calibration == pytest.approx(1.25)
    assert predictor.uncalibrated(keys) == pytest.approx(micro_table.predict(keys))
    assert predictor.predict(keys) == pytest.approx(1.25 * micro_table.predict(keys))
    assert predictor.to_json()["calibration"] == pytest.approx(1.25)
    assert MeasuringPredictor(micro_table, calibration=1.0).predict(keys) == pytest.approx(
        micro_table.predict(keys)
    )


# -- the device/host ratio ------------------------------------------------------------------------


def test_fit_algebra(micro_table: LatencyTable) -> None:
    same = fit_emulation(micro_table, micro_table)
    assert same.fixed_ms == pytest.approx(0.0, abs=1e-9) and same.scale == pytest.approx(1.0)
    assert same.rmspe == pytest.approx(0.0, abs=1e-9)
    assert same.shared == len(micro_table.entries) + 1  # the blocks and the overhead

    def mapped(fixed: float, scale: float) -> LatencyTable:
        def f(s: LatencyStat) -> LatencyStat:
            return LatencyStat(fixed + scale * s.median_ms, fixed + scale * s.p90_ms, s.runs)

        entries = {k: f(s) for k, s in micro_table.entries.items()}
        return dataclasses.replace(micro_table, entries=entries, overhead=f(micro_table.overhead))

    fit = fit_emulation(mapped(0.004, 2.5), micro_table)
    assert fit.fixed_ms == pytest.approx(0.004) and fit.scale == pytest.approx(2.5)
    assert fit.rmspe == pytest.approx(0.0, abs=1e-9) and not fit.ratio
    assert fit.emulate(LatencyStat(0.1, 0.2, 9)) == LatencyStat(
        pytest.approx(0.254), pytest.approx(0.504), 9
    )
    few = dataclasses.replace(
        mapped(0.0, 3.0), overhead=None, estimated=set(list(micro_table.entries)[:-4])
    )
    ratio = fit_emulation(few, micro_table)  # 4 measured blocks: a plain ratio
    assert ratio.ratio and ratio.scale == pytest.approx(3.0) and ratio.fixed_ms == 0.0
    none = dataclasses.replace(few, estimated=set(list(micro_table.entries)[:-2]))
    with pytest.raises(ConfigError, match="share 2 measured blocks, need >= 3") as exc:
        fit_emulation(none, micro_table)  # estimated entries are never fitted on
    assert "\n" not in str(exc.value)


@pytest.fixture(scope="module")
def tables28(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LatencyTable]:
    """This machine's LiteRT and ONNX Runtime tables of the micro space at 28x28 (measured)."""
    root = tmp_path_factory.mktemp("tables28")
    host, space = load_profile("host"), get_space(MICRO, SHAPE28, 10)
    out = {}
    for rt in ("litert", "onnxruntime"):
        profile = host.model_copy(update={"runtime": rt})
        out[rt], _ = open_table(profile, space, NullReporter(), root)
        timer = make_timer(profile, TimingSettings())
        try:  # whole networks measured end to end: how each runtime's nets depart from blocks
            validate_table(out[rt], space, timer, VALIDATION)
        finally:
            timer.close()
    return out


def _interleaved(artifacts: dict[str, Path], threads: int, rounds: int = 5) -> dict[str, float]:
    """Each artifact's least disturbed round: the median ms of every round, timed round after
    round in turn, and the lowest of those (contention on a shared machine only adds time)."""
    medians: dict[str, list[float]] = {rt: [] for rt in artifacts}
    for _ in range(rounds):
        for rt, artifact in artifacts.items():
            samples = get_runtime(rt).sample(artifact, threads, runs=60, warmup=20)
            medians[rt].append(LatencyStat.from_samples(samples).median_ms)
    return {rt: min(m) for rt, m in medians.items()}


def _emulation_error(
    fit: EmulationFit, artifacts: dict[str, Path], threads: int, bound: float
) -> float:
    """Relative error of the emulated ONNX Runtime time; a pair that misses ``bound`` is timed
    again (up to twice) because one disturbed runtime fakes an error the law does not make."""
    error = math.inf
    for _ in range(3):
        ms = _interleaved(artifacts, threads)
        error = (fit.predict_ms(ms["litert"]) - ms["onnxruntime"]) / ms["onnxruntime"]
        if abs(error) <= bound:
            break
    return error


def test_emulation_between_two_real_tables(
    tables28: dict[str, LatencyTable], tmp_path: Path
) -> None:
    """ONNX Runtime plays the unreachable device and LiteRT the host: real exported models'
    emulated ONNX Runtime latency (LiteRT time through the fitted law) is within the fit's
    error of their real ONNX Runtime time: the errors' RMS is at most the expected error,
    the law's block error combined with each table's measured whole-network error."""
    device, host = tables28["onnxruntime"], tables28["litert"]
    fit = fit_emulation(device, host)
    assert fit.shared == 22 and not fit.ratio and 0 < fit.rmspe < 1
    expected = expected_error(fit, device, host)
    assert expected > fit.rmspe  # the validation runs widen it
    space, threads = get_space(MICRO, SHAPE28, 10), host.provenance.threads
    errors = []
    for i, arch in enumerate([largest_arch(space), *sample_archs(space, 3, seed=7)]):
        onnx_path = export_onnx(space.build(arch).train(False), SHAPE28, tmp_path / f"{i}.onnx")
        artifacts = {
            rt: get_runtime(rt).from_onnx(onnx_path, tmp_path / f"{i}{get_runtime(rt).suffix}")
            for rt in ("litert", "onnxruntime")
        }
        errors.append(_emulation_error(fit, artifacts, threads, expected))
    rms = math.sqrt(sum(e * e for e in errors) / len(errors))
    assert rms <= expected, (
        f"emulation errors {[f'{e:+.1%}' for e in errors]} (RMS {rms:.1%}) exceed the expected "
        f"error {expected:.1%} (blocks {fit.rmspe:.1%}; device = {fit.fixed_ms:.4f} ms + "
        f"{fit.scale:.3f} x host)"
    )


# -- the pipeline on an ssh device: unreachable (emulated) and reachable -------------------------


def _board_yaml(tmp_path: Path, profile: DeviceProfile) -> Path:
    path = tmp_path / f"{profile.name}.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump(mode="json", exclude={"source"})))
    return path


def _board_tables(micro_tables: Path, root: Path, board: DeviceProfile) -> Path:
    """``root`` with this machine's table and the same numbers as the board's table (the
    board of these tests is this machine, reached over ssh)."""
    host_table = LatencyTable.load(micro_table_path(micro_tables))
    host_table.save(micro_table_path(root))
    board_table = relabel(LatencyTable.load(micro_table_path(micro_tables)), board)
    return board_table.save(micro_table_path(root, device=board.name))


def _run(device: str | Path, tables: Path, out: Path) -> edgeauto.Manifest:
    return edgeauto.run(
        check=False, device=str(device), latency_ms=1.0, dataset="digits", space=MICRO, trials=1, epochs=1,
        tables=str(tables), out=str(out), measure_runs=60,
    )  # fmt: skip


def test_unreachable_device_is_emulated_and_labelled(
    cli, micro_tables: Path, tmp_path: Path
) -> None:
    base = load_profile("raspberry-pi-4")
    conn = {"kind": "ssh", "host": "127.0.0.1", "port": free_port(), "user": "pi"}
    board = DeviceProfile.model_validate(
        {**base.model_dump(mode="json", exclude={"source"}), "name": "test-gone", "threads": 1,
         "connection": conn}
    )  # fmt: skip
    device_yaml, root = _board_yaml(tmp_path, board), tmp_path / "tables"
    board_table = _board_tables(micro_tables, root, board)
    before = board_table.read_bytes()
    out = tmp_path / "out"
    args = ["run", "--device", str(device_yaml), "--dataset", "digits", "--space", MICRO]
    result = cli(*args, "--trials", "1", "--epochs", "1", "--latency-ms", "1", "--tables",
                 str(root), "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.stderr + result.stdout
    assert "EMULATED litert" in result.stdout and "fit error" in result.stdout
    m = edgeauto.Manifest.load(out)
    assert m["device"]["measured_on"] == "emulated"
    lat = m["latency"]
    e = lat["emulation"]
    assert lat["measured_on"] == "emulated" and "cannot reach" in e["reason"]
    assert e["scale"] == pytest.approx(1.0) and e["fixed_ms"] == pytest.approx(0.0, abs=1e-9)
    assert e["rmspe"] == pytest.approx(0.0, abs=1e-9)  # the board's numbers are this machine's
    assert lat["measured"]["litert_ms"] == pytest.approx(e["fixed_ms"] + e["host_ms"] * e["scale"])
    assert set(lat["measured"]) == {"litert_ms", "litert_p90_ms"}  # nothing claimed measured
    assert e["host_cpu"] == host_cpu_name() and e["shared"] == 22  # 21 blocks + the overhead
    report = (out / "report.md").read_text()
    assert "litert (**emulated**)" in report and "Emulated, not measured" in report
    assert board_table.read_bytes() == before  # an estimate never calibrates the device


@pytest.mark.skipif(bool(sshd_unavailable()), reason=str(sshd_unavailable()))
def test_reachable_ssh_device_is_timed_there(micro_tables: Path, tmp_path: Path) -> None:
    (tmp_path / "client").mkdir()
    client_key = keygen(tmp_path / "client" / "id_ed25519")
    with ThrowawaySshd(tmp_path / "sshd", client_key) as server:
        base = load_profile("raspberry-pi-4").model_copy(
            update={"name": "test-board", "threads": 1}
        )
        board = server.profile(base, python=sys.executable, workdir=str(tmp_path / "board"))
        root = tmp_path / "tables"
        board_table = _board_tables(micro_tables, root, board)
        m = _run(_board_yaml(tmp_path, board), root, tmp_path / "out")
    assert m["device"]["measured_on"] == "device" and m["device"]["cpu"] == host_cpu_name()
    lat = m["latency"]
    assert lat["emulation"] is None and lat["skipped"] == {}
    assert {"litert_ms", "onnxruntime_ms"} <= set(lat["measured"])
    assert "torch_eager_ms" not in lat["measured"]  # PyTorch does not run on the board
    history = LatencyTable.load(board_table).history
    assert len(history) == 1 and history[0].measured_ms == pytest.approx(m.measured_ms)
    assert history[0].predicted_ms == pytest.approx(m.predicted_ms)  # calibration was 1.0
    assert history[0].predictor == lat["predictor"]["signature"] == "fusion"
    assert lat["calibration"] == {"used": 1.0, "source": "history", "history": 1, "next": 1.0}
    assert json.loads(json.dumps(m.data)) == m.data


def test_local_run_records_history(tables_copy: Path, tmp_path: Path) -> None:
    m = _run("host", tables_copy, tmp_path / "out")
    history = LatencyTable.load(micro_table_path(tables_copy)).history
    assert len(history) == 1
    assert history[0].measured_ms == pytest.approx(m["latency"]["measured"]["litert_ms"])
    assert m["device"]["measured_on"] == "device" and m["device"]["cpu"] == host_cpu_name()
    assert "torch_eager_ms" in m["latency"]["measured"]
    # one frame for the run: the calibration network nearest the budget is the reference
    # every later whole-model timing is taken beside (pruning's, the verdict's)
    stages = json.loads((tmp_path / "out" / "stages.json").read_text())
    ref, lat = stages["reference"], m["latency"]
    assert (tmp_path / "out" / "reference.tflite").is_file() and ref["ms"] > 0
    assert lat["reference"]["ms"] == ref["ms"] and lat["calibration"]["source"] == "fresh"
    assert m.measured_ms == pytest.approx(lat["reference"]["ratio"] * ref["ms"])
    nearest = lat["calibration"]["fresh_networks"][0]  # timed beside itself: about 1x
    assert nearest["measured_ms"] == pytest.approx(ref["ms"], rel=0.15)


class _StubPhone(Runner):
    """Stands for the adb runner: times .tflite only, as benchmark_model does."""

    kind = "stub"
    calls: ClassVar[list[str]] = []

    def describe(self) -> DeviceInfo:
        return DeviceInfo("Stub Phone (gs201)", "benchmark_model sha256:0")

    def measure_many(self, artifacts, threads, runs, warmup, rounds=1):  # type: ignore[no-untyped-def]
        self.calls.append(Path(artifacts[0]).suffix)
        if Path(artifacts[0]).suffix != ".tflite":
            raise RunnerError("the adb runner times .tflite files with benchmark_model")
        return [LatencyStat(0.098, 0.12, runs)]


def test_remote_device_times_what_it_can(
    monkeypatch: pytest.MonkeyPatch, digits, tmp_path: Path
) -> None:
    """On a phone only the profile's runtime is required: the .onnx is skipped, and said so;
    the CPU is what the runner reported; nothing is timed in PyTorch here."""
    monkeypatch.setattr(job_measure, "get_runner", lambda profile: _StubPhone(profile))
    profile = load_profile("pixel-7")
    cfg = RunConfig(device="pixel-7", measure_runs=30, out=str(tmp_path / "out"))
    ctx = job_context.Context(
        cfg, RunDir(cfg.out), NullReporter(), profile, digits, None, None, None
    )  # no block table: nothing to calibrate
    artifacts = {"litert": tmp_path / "m.tflite", "onnxruntime": tmp_path / "m.onnx"}
    stats = job_measure.measure_stage(ctx, torch.nn.Identity(), artifacts)
    runs, _warmup, _rounds = job_measure.verify_counts(30)  # 30 runs split over rounds
    assert stats == {"litert": LatencyStat(0.098, 0.12, runs)}
    assert _StubPhone.calls == [".tflite", ".onnx"]  # the profile's runtime first
    m = ctx.measurement
    assert m["measured_on"] == "device" and m["cpu"] == "Stub Phone (gs201)"
    assert "benchmark_model" in m["skipped"]["onnxruntime"]
