"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import torch
import yaml

from edgeauto.devices.profile import DeviceProfile, load_profile, profiles_dir
from edgeauto.latency.table import LatencyTable
from edgeauto.spaces import Arch, SearchSpace
from edgeauto.spaces.layerwise import LayerwiseSpace
from edgeauto.testing.sshd import ThrowawaySshd

DIGITS_SHAPE = (1, 8, 8)
DIGITS_CLASSES = 10
MICRO = "fbnet-micro"
#: Recorded ``benchmark_model`` outputs (the fake phone prints them).
DATA = Path(__file__).parent / "data" / "benchmark_model"


def micro_table_path(
    root: Path, device: str = "host", runtime: str = "litert", folder: str = "fp32-t1"
) -> Path:
    return root / device / runtime / folder / f"{MICRO}.json"


def largest_arch(space: LayerwiseSpace) -> Arch:
    """Widest stages, and per layer the non-skip choice with the largest kernel and expansion."""
    cfg = space.config
    widths = tuple(max(s.widths) for s in cfg.stages)
    layers = tuple(
        tuple(max(c for c in space.layer_choices(i, j) if not c.is_skip) for j in range(s.layers))
        for i, s in enumerate(cfg.stages)
    )
    arch = Arch(widths, layers)
    space.validate(arch)
    return arch


def build_trained(space: SearchSpace, trained: tuple[Arch, dict]) -> torch.nn.Module:
    arch, state = trained
    model = space.build(arch)
    model.load_state_dict(state)
    return model.eval()


def sample_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(n)]


def shared_data() -> Path:
    """``../shared/data`` beside the repository (or ``$EDGEAUTO_SHARED_DATA``); skip if absent.

    The published tables there are read in place, never copied into the project.
    """
    import os

    import pytest

    env = os.environ.get("EDGEAUTO_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    if not (root / "luts").is_dir():
        pytest.skip(f"shared data not found at {root} (set EDGEAUTO_SHARED_DATA)")
    return root.resolve()


def assert_one_line_error(result, error: str, *fragments: str) -> str:
    """Exit 2, nothing on stdout, exactly one stderr line naming the error type, no traceback."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    assert result.exit_code == 2, (result.exit_code, text, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"error spans {len(lines)} lines: {result.stderr!r}"
    line = lines[0]
    assert line.startswith(f"error: {error}: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def relabel(table: LatencyTable, profile: DeviceProfile) -> LatencyTable:
    """``table`` presented as measured on ``profile``'s device: its name, threads and cores
    (these tests' "boards" are this machine)."""
    cores = profile.cpu_affinity if isinstance(profile.cpu_affinity, list) else None
    table.provenance = dataclasses.replace(
        table.provenance, device=profile.name, threads=profile.threads, cpu_affinity=cores
    )
    return table


def board_profile(server: ThrowawaySshd, key: Path, workdir: Path, **conn: object) -> DeviceProfile:
    """A 1-thread LiteRT board reached through ``server``, pinned to its core 0; its Python
    is this interpreter."""
    update = {"name": "test-board", "threads": 1, "cpu_affinity": [0]}
    base = load_profile("raspberry-pi-4").model_copy(update=update)
    fields = {"key": str(key), "python": sys.executable, "workdir": str(workdir), **conn}
    return server.profile(base, **fields)


def python_without_litert(tmp_path: Path) -> Path:
    """An executable that runs this interpreter with every LiteRT package unimportable: a
    board's Python without the runtime."""
    hide = tmp_path / "hide"
    for name in ("ai_edge_litert", "tflite_runtime", "tensorflow"):
        (hide / name).mkdir(parents=True)
        (hide / name / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    python = tmp_path / "python-without-litert"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={hide} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return python


def adb_profile(phone: dict[str, Path], **conn: object) -> DeviceProfile:
    data = yaml.safe_load((profiles_dir() / "pixel-7.yaml").read_text())
    data["connection"] = {
        "kind": "adb", "serial": "emulator-5554", "adb": str(phone["adb"]),
        "benchmark_model": str(phone["bm"]), "workdir": str(phone["workdir"]), **conn,
    }  # fmt: skip
    data["cpu_affinity"] = [0, 1, 2, 3]  # the fake phone is this machine: cores it has
    return DeviceProfile.model_validate(data)
