"""A fleet of boards: ``edgeauto profile --device A --device B`` builds both tables at once on
Ray (one actor per board), resumes each, and reports a failed board in one line, exit 2.

The boards are two profiles (``board-a``, ``board-b``) reached through the session's
throwaway OpenSSH server on 127.0.0.1 (``sshd`` in conftest.py; skipped with the reason when
Debian's openssh-server is absent); an unreachable board is a third one on a port nobody
listens on. The fleet runs in a real subprocess, so a kill point kills a board's worker for
real (``EDGEAUTO_KILL_AT``, :mod:`edgeauto.killpoints`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import MICRO

import edgeauto
from edgeauto.devices.profile import DeviceProfile, load_profile
from edgeauto.killpoints import KILL_ENV
from edgeauto.latency.store import table_path
from edgeauto.latency.table import LatencyTable
from edgeauto.spaces import get_space
from edgeauto.testing.sshd import ThrowawaySshd, free_port

pytest.importorskip("ray")
SHAPE = (1, 8, 8)
KEYS = get_space(MICRO, SHAPE, 10).all_keys()  # 21 keys: 3 batches of the ssh runner's 8


def write_board(server: ThrowawaySshd, key: Path, where: Path, name: str, **conn: object) -> Path:
    """A 1-thread LiteRT board profile YAML reached through ``server``."""
    base = load_profile("raspberry-pi-4").model_copy(update={"name": name, "threads": 1})
    fields = {"key": str(key), "python": sys.executable, "workdir": str(where / name), **conn}
    data = server.profile(base, **fields).model_dump(mode="json", exclude={"source"})
    path = where / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Fleet:
    boards: dict[str, Path]  # name -> profile YAML
    tables: Path  # both boards' complete tables, built by the first fleet run
    first: subprocess.CompletedProcess[str]

    def profile(self, name: str) -> DeviceProfile:
        return load_profile(self.boards[name])

    def table(self, name: str, root: Path | None = None) -> Path:
        return table_path(self.profile(name), MICRO, root or self.tables)


def run_fleet(
    boards: list[Path], tables: Path, kill: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``edgeauto profile --device B1 --device B2 ...`` in a subprocess."""
    argv = [sys.executable, "-m", "edgeauto.cli", "profile", "--space", MICRO]
    argv += ["--input-shape", ",".join(map(str, SHAPE)), "--tables", str(tables)]
    for board in boards:
        argv += ["--device", str(board)]
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill:
        env[KILL_ENV] = kill
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


def board_line(text: str, name: str) -> str:
    """The one line the fleet printed for board ``name``."""
    (line,) = [s for s in text.splitlines() if s.startswith(f"{name}: ")]
    return line


@pytest.fixture(scope="module")
def boards(sshd: ThrowawaySshd, ssh_keys: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # fmt: skip
    """Two boards (profile YAMLs) behind the one loopback sshd: board-a and board-b."""
    where = tmp_path_factory.mktemp("boards")
    return {n: write_board(sshd, ssh_keys, where, n) for n in ("board-a", "board-b")}


@pytest.fixture(scope="module")
def fleet(boards: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """Both boards' tables built from nothing by one fleet command."""
    tables = tmp_path_factory.mktemp("fleet") / "tables"
    return Fleet(boards, tables, run_fleet(list(boards.values()), tables))


def test_one_command_builds_both_tables(fleet: Fleet) -> None:
    assert fleet.first.returncode == 0, fleet.first.stderr[-3000:]
    for name in ("board-a", "board-b"):
        path = fleet.table(name)
        line = board_line(fleet.first.stdout, name)
        assert line.startswith(f"{name}: 21 entries (21 measured, ") and line.endswith(str(path))
        table = LatencyTable.load(path)
        assert set(table.entries) == KEYS and table.overhead is not None
        assert table.provenance.device == name and table.provenance.threads == 1
        assert all(0 < s.median_ms <= s.p90_ms for s in table.entries.values())
    assert len(fleet.first.stdout.splitlines()) == 2  # one line per board, nothing else


def test_rerun_measures_nothing(fleet: Fleet) -> None:
    before = {n: fleet.table(n).read_bytes() for n in fleet.boards}
    again = run_fleet(list(fleet.boards.values()), fleet.tables)
    assert again.returncode == 0, again.stderr[-3000:]
    for name in fleet.boards:
        assert "21 entries (0 measured" in board_line(again.stdout, name)
        assert fleet.table(name).read_bytes() == before[name]  # not even re-saved


def _copy_without(fleet: Fleet, root: Path, drop: dict[str, int]) -> None:
    """The fleet's tables copied to ``root``, each board's first ``drop[name]`` keys removed."""
    shutil.copytree(fleet.tables, root)
    for name, n in drop.items():
        table = LatencyTable.load(fleet.table(name, root))
        for key in sorted(table.entries)[:n]:
            del table.entries[key]
        table.save()


def test_unreachable_board_fails_alone(fleet: Fleet, sshd, ssh_keys, tmp_path: Path) -> None:
    bad = write_board(sshd, ssh_keys, tmp_path, "board-c", port=free_port())  # nobody there
    root = tmp_path / "tables"
    _copy_without(fleet, root, {"board-a": 3})
    proc = run_fleet([fleet.boards["board-a"], bad], root)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "21 entries (3 measured" in board_line(proc.stdout, "board-a")
    assert set(LatencyTable.load(fleet.table("board-a", root)).entries) == KEYS
    assert proc.stderr.splitlines() == [board_line(proc.stderr, "board-c")]  # that line only
    assert board_line(proc.stderr, "board-c").startswith(
        "board-c: error: RunnerError: cannot reach "
    )
    assert "Traceback" not in proc.stderr
    assert not (root / "board-c").exists()  # nothing written for it


def test_killed_board_resumes_and_the_other_finishes(fleet: Fleet, tmp_path: Path) -> None:
    """Each board's worker dies the 2nd time it saves a batch: board-a (21 keys missing: 3
    batches) dies with 2 saved; board-b (3 missing: 1 batch) finishes. Again: board-a measures
    only its last 5 keys, and its saved 16 stay as they were."""
    root = tmp_path / "tables"
    _copy_without(fleet, root, {"board-b": 3})
    fleet.table("board-a", root).unlink()
    boards = list(fleet.boards.values())
    killed = run_fleet(boards, root, kill="table_batch:2")
    assert killed.returncode == 2, killed.stderr[-3000:]
    assert board_line(killed.stderr, "board-a").startswith("board-a: error: WorkerDied: ")
    assert "21 entries (3 measured" in board_line(killed.stdout, "board-b")
    saved = LatencyTable.load(fleet.table("board-a", root))
    assert len(saved.entries) == 16 and saved.overhead is not None
    resumed = run_fleet(boards, root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "21 entries (5 measured" in board_line(resumed.stdout, "board-a")
    assert "21 entries (0 measured" in board_line(resumed.stdout, "board-b")
    final = LatencyTable.load(fleet.table("board-a", root))
    assert set(final.entries) == KEYS
    assert {k: final.entries[k] for k in saved.entries} == saved.entries
    assert final.overhead == saved.overhead


def test_python_api_returns_per_board_results(fleet: Fleet, sshd, ssh_keys, tmp_path) -> None:
    """``edgeauto.profile``: two devices on Ray in this process, one alone without Ray."""
    import ray

    bad = write_board(sshd, ssh_keys, tmp_path, "board-c", port=free_port())
    root = tmp_path / "tables"
    _copy_without(fleet, root, {"board-a": 2})
    heard: list[str] = []
    both = edgeauto.profile(
        [fleet.boards["board-a"], bad], MICRO, input_shape=SHAPE, tables=root,
        on_result=lambda r: heard.append(r.device),
    )  # fmt: skip
    assert [r.device for r in both] == ["board-a", "board-c"] and sorted(heard) == sorted(
        ["board-a", "board-c"]
    )
    a, c = both
    assert (a.ok, a.entries, a.measured, a.path) == (True, 21, 2, fleet.table("board-a", root))
    assert not c.ok and c.error is not None and c.error.startswith("RunnerError: cannot reach")
    assert not ray.is_initialized()  # the fleet's own cluster is gone
    (alone,) = edgeauto.profile([fleet.profile("board-b")], MICRO, input_shape=SHAPE, tables=root)
    assert (alone.ok, alone.entries, alone.measured) == (True, 21, 0)
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--device", "A"], "device 'board-a' is given twice"),
        (["--device", "host"], "device 'host' is timed on this machine"),
        (["--device", "B", "--host", "127.0.0.1:22"], "--host names one board"),
    ],
)
def test_bad_fleets_are_one_line(
    boards: dict[str, Path], cli, tmp_path: Path, extra: list[str], fragment: str
) -> None:
    """Refused before Ray starts or anything is measured: one line, exit 2."""
    a = str(boards["board-a"])
    args = ["profile", "--space", MICRO, "--input-shape", "1,8,8", "--device", a]
    yamls = {"A": a, "B": str(boards["board-b"])}
    extra = [yamls.get(x, x) for x in extra]
    result = cli(*args, *extra, "--tables", str(tmp_path / "tables"))
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and fragment in result.stderr
    assert not (tmp_path / "tables").exists()
