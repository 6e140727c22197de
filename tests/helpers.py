"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import torch

from edgeauto.devices.profile import DeviceProfile
from edgeauto.latency.table import LatencyTable
from edgeauto.spaces import Arch, SearchSpace
from edgeauto.spaces.layerwise import LayerwiseSpace

DIGITS_SHAPE = (1, 8, 8)
DIGITS_CLASSES = 10
MICRO = "fbnet-micro"


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
