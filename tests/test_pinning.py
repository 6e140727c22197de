"""Pinned, repeatable timing: ``cpu_affinity`` resolved, every local timing on those cores,
tables that remember their cores, and unsteady figures re-taken and reported."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import MICRO, assert_one_line_error, micro_table_path

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError
from edgeauto.latency import cores as cores_mod
from edgeauto.latency.cores import CoreSurvey, resolve_cores, survey
from edgeauto.latency.runners.base import RETRIES
from edgeauto.latency.runners.local import LocalRunner
from edgeauto.latency.table import LatencyTable
from edgeauto.timing import REPEATABLE, LatencyStat, RelativeStat, allowed_cores, pinned


def with_cores(profile: DeviceProfile, cores: object) -> DeviceProfile:
    return DeviceProfile.model_validate({**profile.model_dump(), "cpu_affinity": cores})


def test_pinned_sets_and_restores_the_affinity() -> None:
    before = os.sched_getaffinity(0)
    core = max(before)
    with pinned([core]):
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == before
    with pinned(None):  # unpinned profiles leave the process where it is
        assert os.sched_getaffinity(0) == before


def test_repeatability_is_the_spread_of_round_medians() -> None:
    steady = LatencyStat.from_rounds([[1.0, 1.0, 1.01], [1.0, 1.01, 1.0], [1.01, 1.0, 1.0]])
    assert steady.repeatability == pytest.approx(0.0) and steady.repeatable
    # a disturbed round is dropped from the median but counts against repeatability
    shaky = LatencyStat.from_rounds([[1.0, 1.0], [1.0, 1.0], [1.5, 1.5]])
    assert shaky.median_ms == 1.0 and shaky.repeatability > REPEATABLE and not shaky.repeatable
    assert LatencyStat.from_samples([1.0, 2.0]).repeatability is None  # one round: unknown
    assert "repeatability" not in LatencyStat(1.0, 1.0, 3).to_json()


def test_profile_affinity_is_validated(host_profile: DeviceProfile) -> None:
    with pytest.raises(ValueError, match="distinct"):
        with_cores(host_profile, [0, 0])
    with pytest.raises(ValueError, match="1 cores for 2 threads"):
        DeviceProfile.model_validate(
            {**host_profile.model_dump(), "cpu_affinity": [0], "threads": 2}
        )
    with pytest.raises(ValueError, match="auto times each core of this machine"):
        DeviceProfile.model_validate(
            {**host_profile.model_dump(), "name": "b", "cpu_affinity": "auto",
             "connection": {"kind": "ssh", "host": "pi.local"}}
        )  # fmt: skip


def test_explicit_cores_must_be_usable_here(host_profile: DeviceProfile) -> None:
    mine = allowed_cores()
    assert resolve_cores(with_cores(host_profile, [mine[0]])) == (mine[0],)
    assert resolve_cores(with_cores(host_profile, None)) is None
    with pytest.raises(ConfigError, match=r"cpu_affinity \[1000\] names cores") as exc:
        resolve_cores(with_cores(host_profile, [1000]))
    assert "\n" not in str(exc.value)


def test_runner_times_on_its_cores(host_profile: DeviceProfile, micro_tables: Path) -> None:
    core = allowed_cores()[-1]
    runner = LocalRunner(with_cores(host_profile, [core]))
    assert runner.cores == (core,)
    table = LatencyTable.load(micro_table_path(micro_tables))
    # the session table was built by the host profile (auto): it names the cores it used
    assert table.provenance.cpu_affinity == list(resolve_cores(host_profile) or ())
    assert all(s.repeatability is not None for s in table.entries.values())


def test_survey_picks_the_fastest_steady_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto`` with more cores than threads: each core timed (interleaved), cached on disk."""
    every = set(range(os.cpu_count() or 1))
    if len(every) < 2:
        pytest.skip("one core: nothing to choose between")
    monkeypatch.setenv("EDGEAUTO_CACHE", str(tmp_path))
    monkeypatch.setattr(cores_mod, "_MEMO", {})
    with pinned(sorted(every)):  # under xdist this worker is confined to one core
        found = survey("onnxruntime")
        assert set(found.speeds_ms) == every and all(v > 0 for v in found.speeds_ms.values())
        cached = list(tmp_path.glob("cores-onnxruntime-*.json"))
        assert len(cached) == 1
        cores_mod._MEMO.clear()
        assert survey("onnxruntime") == found  # from the cache: not timed again
    fastest = min(found.speeds_ms, key=lambda c: (found.spreads[c] > REPEATABLE,
                                                  found.speeds_ms[c]))  # fmt: skip
    assert found.fastest(1) == (fastest,)


def test_survey_prefers_steady_cores() -> None:
    s = CoreSurvey("cpu", "litert", "1", {0: 1.0, 1: 0.6, 2: 0.7}, {0: 0.01, 1: 0.2, 2: 0.01}, "d")
    assert s.fastest(1) == (2,)  # core 1 is quicker but unsteady
    assert s.fastest(2) == (0, 2)
    assert CoreSurvey.from_json(s.to_json()) == s


def test_table_of_other_cores_is_refused(cli, tables_copy: Path, tmp_path: Path) -> None:
    path = micro_table_path(tables_copy)
    table = LatencyTable.load(path)
    table.provenance = dataclasses.replace(table.provenance, cpu_affinity=[999])
    table.save()
    result = cli(
        "run", "--device", "host", "--dataset", "digits", "--space", MICRO, "--trials", "1",
        "--epochs", "1", "--latency-ms", "1", "--tables", str(tables_copy),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert_one_line_error(result, "ConfigError", "timed on cores [999]", "cpu_affinity: [999]")


class _Replay(LocalRunner):
    """This machine's runner whose first takes are labelled unsteady (20%) and later ones
    steady (1%), as on a machine that was busy, then quiet: the policy under test is what
    :meth:`measure_all` does with them (a real busy spell cannot be timed to order)."""

    def __init__(self, profile: DeviceProfile, unsteady_takes: int) -> None:
        super().__init__(profile)
        self.calls, self.unsteady_takes = 0, unsteady_takes

    def measure_many(self, artifacts: Sequence[Path], *args: int) -> list[LatencyStat]:
        real = super().measure_many(artifacts, *args)
        self.calls += 1
        rsd = 0.01 if self.calls > self.unsteady_takes else 0.2
        return [dataclasses.replace(s, repeatability=rsd) for s in real]


def test_unsteady_figures_are_taken_again(host_profile: DeviceProfile, tmp_path: Path) -> None:
    from edgeauto.export.onnx import export_onnx
    from edgeauto.export.runtimes import get_runtime
    from edgeauto.spaces.modules import Stem

    onnx_path = export_onnx(Stem(1, 8, 1).train(False), (1, 8, 8), tmp_path / "m.onnx")
    art = get_runtime("onnxruntime").from_onnx(onnx_path, tmp_path / "m2.onnx")
    once = _Replay(host_profile, unsteady_takes=1)
    stat = once.measure(art, 1, 30, 5, rounds=3)
    assert once.calls == 2 and stat.repeatability == 0.01  # re-taken, the steady take kept
    never = _Replay(host_profile, unsteady_takes=99)
    stat = never.measure(art, 1, 30, 5, rounds=3)
    assert never.calls == 1 + RETRIES and stat.repeatability == 0.2 and not stat.repeatable


def test_relative_stat_is_the_median_of_round_ratios() -> None:
    """A machine twice as slow in one round moves model and reference alike: the ratio does
    not move; a round where only the model was disturbed is outvoted by the median."""
    rounds = [(1.0, 2.0), (2.0, 4.0), (1.1, 2.0), (3.0, 2.0), (1.0, 2.0)]  # (model, ref) ms
    rel = RelativeStat.from_rounds([(LatencyStat(m, m * 1.2, 10), LatencyStat(r, r, 10))
                                    for m, r in rounds])  # fmt: skip
    assert rel.ratio == pytest.approx(0.5) and rel.model.runs == 50
    assert rel.model.median_ms == pytest.approx(1.1) and rel.reference.median_ms == 2.0
    assert rel.repeatability and rel.repeatability > REPEATABLE and not rel.repeatable
    at = rel.at(3.0)  # the model when the reference takes 3 ms
    assert at.median_ms == pytest.approx(1.5) and at.p90_ms == pytest.approx(1.5 * 1.32 / 1.1)
    assert at.repeatability == rel.repeatability


def test_timing_beside_a_reference(host_profile: DeviceProfile, tmp_path: Path) -> None:
    """Real LiteRT sessions, interleaved: a model beside itself reads about 1, and a model
    with 16x the MACs of another reads far above it."""
    from edgeauto.export.onnx import export_onnx
    from edgeauto.export.runtimes import get_runtime
    from edgeauto.spaces.modules import Stem

    litert = get_runtime("litert")

    def artifact(channels: int) -> Path:
        onnx_path = export_onnx(Stem(3, channels, 1).train(False), (3, 32, 32),
                                tmp_path / f"c{channels}.onnx")  # fmt: skip
        return litert.from_onnx(onnx_path, tmp_path / f"c{channels}.tflite")

    small, big = artifact(8), artifact(128)
    runner = LocalRunner(host_profile)
    same, bigger = runner.measure_beside([small, big], small, 1, 50, 10, rounds=5)
    assert same.ratio == pytest.approx(1.0, rel=0.15), same
    assert bigger.ratio > 2 * same.ratio, bigger
    assert same.model.runs == bigger.reference.runs == 5 * 50
