"""Two processes at once: one run directory is held by one process at a time (the other gets
a one-line error), and two table builders writing the same table keep each other's keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MICRO, assert_one_line_error, micro_table_path

from edgeauto.latency.table import LatencyTable
from edgeauto.rundir import RunDir, release

HOLD = """
import sys, time
from edgeauto.rundir import RunDir
RunDir(sys.argv[1]).start(False)
print("held", flush=True)
time.sleep(120)
"""

FILL = """
import sys
from pathlib import Path
from edgeauto.devices.profile import load_profile
from edgeauto.latency.builder import TimingSettings, fill_table, make_timer, open_device_table
from edgeauto.spaces import get_space

root, part = Path(sys.argv[1]), int(sys.argv[2])
profile = load_profile("host")
keys = sorted(get_space("fbnet-micro", (1, 8, 8), 10).all_keys())[part::2][:4]
timer = make_timer(profile, TimingSettings(runs=30, warmup=1, rounds=1))
try:
    table = open_device_table(profile, "fbnet-micro", timer, root)
    print("measured", fill_table(table, keys, timer, batch=1), flush=True)
finally:
    timer.close()
"""


def _holder(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_run_directory_in_use_is_refused(cli, micro_tables: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    holder = _holder(out)
    try:
        args = ["run", "--dataset", "digits", "--space", MICRO, "--out", str(out), "--tables", str(micro_tables)]  # fmt: skip
        line = assert_one_line_error(cli(*args), "RunDirError", "in use by another edgeauto")
        assert str(out) in line and "--out" in line
        (out / "config.json").write_text(json.dumps({"dataset": "digits", "space": MICRO}))
        assert_one_line_error(cli("run", "--resume", str(out)), "RunDirError", "in use by another")
        with pytest.raises(Exception, match="in use by another"):
            RunDir(out).start(True)
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    rd = RunDir(out)
    rd.start(False)  # free again, and this process may take it twice (re-entrant)
    rd.start(True)
    release(out)


def test_the_same_process_releases_after_a_run(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r")
    rd.lock()
    release(tmp_path / "r")
    holder = _holder(tmp_path / "r")  # another process can take it now
    holder.kill()
    holder.wait()


@pytest.mark.slow
def test_two_table_builders_keep_each_others_keys(tmp_path: Path) -> None:
    """Both processes measure 4 keys into the same new table, saving after each key under the
    table lock; without the lock and merge the last save would drop the other's keys."""
    procs = [
        subprocess.Popen([sys.executable, "-c", FILL, str(tmp_path), str(i)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in (0, 1)
    ]  # fmt: skip
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-2000:]
        assert "measured 4" in stdout
    table = LatencyTable.load(micro_table_path(tmp_path))
    assert len(table.entries) == 8 and table.overhead is not None
    assert json.loads(micro_table_path(tmp_path).read_text())["schema_version"] == 1
    assert [p.name for p in micro_table_path(tmp_path).parent.iterdir()] == [f"{MICRO}.json"]
