"""``edgeauto search`` joins a running Ray cluster (a real head started by ``ray start``)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import MICRO

pytest.importorskip("ray")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def token() -> str:
    """The cluster's auth token, made here: a new machine has no ``~/.ray/auth_token``, and
    the head and its clients must share one (Ray's token mode, ``RAY_AUTH_TOKEN``)."""
    return secrets.token_hex(16)


def _token_env(token: str) -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


@pytest.fixture(scope="module")
def head(token: str) -> Iterator[int]:
    """A head node with 2 CPUs on a free port, started with its token where it is started;
    stopped through its own process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2", "--block",
           "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    # no drain on SIGTERM (Ray waits up to 30 s for one): the teardown took ~60 s, now ~3 s
    env = {**_token_env(token), "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("ray start --head did not come up") from None
                time.sleep(0.3)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this fixture created, nothing else
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # the head's address file outlives a signalled head; a stale one would send later
        # `ray.init()` calls of this machine to a dead cluster
        current = Path(os.environ.get("RAY_TMPDIR", "/tmp/ray")) / "ray_current_cluster"
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


def test_search_joins_a_running_cluster(
    head: int, token: str, micro_tables: Path, tmp_path: Path
) -> None:
    out = tmp_path / "joined"
    args = [str(BIN / "edgeauto"), "search", "--space", MICRO, "--dataset", "digits",
            "--latency-ms", "1", "--trials", "3", "--search-epochs", "2",
            "--tables", str(micro_tables), "--out", str(out), "--ray-address", f"127.0.0.1:{head}"]  # fmt: skip
    # the head's token, given as the head got it: nothing read from this machine's $HOME
    env = _token_env(token)
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    study = json.loads((out / "study.json").read_text())
    assert study["executor"]["kind"] == "ray"
    assert study["executor"]["address"] == f"127.0.0.1:{head}" and study["executor"]["slots"] == 2
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert sorted(t["number"] for t in trials) == [0, 1, 2]
    assert all(t["status"] == "ok" for t in trials)
    pids = {t["worker"].rsplit(":", 1)[1] for t in trials}
    assert str(proc.pid) not in pids, "trials must run in the cluster's workers, not the CLI"
