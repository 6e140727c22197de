"""Shared fixtures: one real latency table for the micro space, digits data, a trained model,
throwaway OpenSSH servers on 127.0.0.1 (the ssh runner's boards), a fake adb phone.

The table is measured once per session with the real LiteRT runtime on this machine (about
20 s for the 21 keys of ``fbnet-micro`` at the digits shape) and written to a temp folder,
never to the repository's ``hw_latency/``. Tests that add keys to a table copy it first.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from helpers import DATA, DIGITS_CLASSES, DIGITS_SHAPE, MICRO, largest_arch, micro_table_path
from typer.testing import CliRunner

from edgeauto.cli import app
from edgeauto.data import Dataset, load_dataset
from edgeauto.devices.profile import DeviceProfile, load_profile
from edgeauto.latency.device import open_table
from edgeauto.latency.table import LatencyTable
from edgeauto.progress import NullReporter
from edgeauto.spaces import Arch, SearchSpace, get_space
from edgeauto.spaces.layerwise import LayerwiseSpace
from edgeauto.testing.sshd import ThrowawaySshd, keygen, sshd_unavailable
from edgeauto.train import TrainConfig, fit


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs two workers on a 2-core machine) each worker
    trains with one torch thread and runs on a core of its own, so that the two neither
    fight over both cores nor time on the other's core (the host profile's ``cpu_affinity:
    auto`` then resolves to the worker's core, without a survey). Caches go to a temp folder."""
    # a fresh machine's cache: nothing decoded or surveyed by earlier sessions is found
    os.environ["EDGEAUTO_CACHE"] = tempfile.mkdtemp(prefix="edgeauto-cache-")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        torch.set_num_threads(1)
        cores = sorted(os.sched_getaffinity(0))
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        if len(cores) >= count > 1:
            os.sched_setaffinity(0, {cores[int(worker.removeprefix("gw")) % len(cores)]})


@pytest.fixture(scope="session")
def host_profile() -> DeviceProfile:
    return load_profile("host")


@pytest.fixture(scope="session")
def micro_space() -> LayerwiseSpace:
    space = get_space(MICRO, DIGITS_SHAPE, DIGITS_CLASSES)
    assert isinstance(space, LayerwiseSpace)
    return space


@pytest.fixture(scope="session")
def micro_tables(
    tmp_path_factory: pytest.TempPathFactory, host_profile: DeviceProfile, micro_space: SearchSpace
) -> Path:
    """Root folder of the session's measured table ``<root>/host/litert/fp32-t1/fbnet-micro.json``.

    Treat it as read-only; copy it (``tables_copy``) before anything may add keys.
    """
    root = tmp_path_factory.mktemp("tables")
    table, _ = open_table(host_profile, micro_space, NullReporter(), root=root)
    assert table.path is not None and table.path.is_file()
    return root


@pytest.fixture
def tables_copy(micro_tables: Path, tmp_path: Path) -> Path:
    """A private copy of the session table folder (tests may extend or edit it)."""
    dst = tmp_path / "tables"
    shutil.copytree(micro_tables, dst)
    return dst


@pytest.fixture
def micro_table(micro_tables: Path) -> LatencyTable:
    """The session table, freshly loaded (in memory; do not save it back)."""
    return LatencyTable.load(micro_table_path(micro_tables))


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def trained_micro(micro_space: LayerwiseSpace, digits: Dataset) -> tuple[Arch, dict]:
    """The largest micro arch trained briefly on digits: ``(arch, state_dict)``.

    Build a fresh model with ``micro_space.build(arch)`` and load the state dict, so tests
    that prune or perturb never share a module.
    """
    arch = largest_arch(micro_space)
    model = fit(micro_space.build(arch), digits, TrainConfig(epochs=4), seed=0)
    return arch, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


# -- an OpenSSH server on 127.0.0.1 (the ssh runner's "board" is this machine) -------------


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway client key pair shared by the session's servers; the private key's path."""
    if why := sshd_unavailable():
        pytest.skip(why)
    return keygen(tmp_path_factory.mktemp("client") / "id_ed25519")


@pytest.fixture(scope="session")
def new_server(
    tmp_path_factory: pytest.TempPathFactory, ssh_keys: Path
) -> Iterator[Callable[[], ThrowawaySshd]]:
    """Start more servers (for tests that stop or re-key theirs); all stop at session end."""
    servers: list[ThrowawaySshd] = []

    def make() -> ThrowawaySshd:
        server = ThrowawaySshd(tmp_path_factory.mktemp("sshd"), ssh_keys)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def sshd(new_server: Callable[[], ThrowawaySshd]) -> ThrowawaySshd:
    """The session's shared server: tests must not stop or re-key it."""
    return new_server()


# -- a fake adb whose "phone" is this machine (the adb runner's tests) ---------------------

FAKE_ADB = '''#!{python}
"""Fake adb: logs argv; the "phone" is this machine (push copies, shell runs sh -c)."""
import json, os, shutil, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
devices = [d for d in os.environ.get("FAKE_ADB_DEVICES", "").split(",") if d]
serial = None
if args[:1] == ["-s"]:
    serial, args = args[1], args[2:]
if serial is not None and serial not in devices:
    sys.exit(sys.stderr.write("adb: device '%s' not found\\n" % serial) and 1)
if not devices:
    sys.exit(sys.stderr.write("adb: no devices/emulators found\\n") and 1)
if args[0] == "push":
    *sources, dest = args[1:]
    for src in sources:
        target = os.path.join(dest, os.path.basename(src)) if dest.endswith("/") else dest
        shutil.copyfile(src, target)
        print("%s: 1 file pushed, 0 skipped." % src)
elif args[0] == "shell":
    command = " ".join(args[1:])  # what real adb does: one string for the phone's shell
    props = {{"getprop ro.product.model": "Pixel 7", "getprop ro.board.platform": "gs201"}}
    if command in props:
        print(props[command])
    else:
        sys.exit(subprocess.run(["sh", "-c", command]).returncode)
'''

FAKE_BENCHMARK_MODEL = '''#!{python}
"""Fake benchmark_model: logs argv, prints the recorded output for its --graph."""
import json, os, sys
with open(os.environ["FAKE_BM_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
graph = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--graph=")][0]
if not os.path.isfile(graph):
    sys.exit(print("ERROR: Could not open '%s'." % graph) or 1)
sys.stdout.write(open(os.environ["FAKE_BM_OUTPUT"]).read())
'''


@pytest.fixture
def phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A fake adb and benchmark_model, their logs, and a workdir standing for the phone's."""
    paths = {
        "adb": tmp_path / "adb", "bm": tmp_path / "benchmark_model",
        "adb_log": tmp_path / "adb.log", "bm_log": tmp_path / "bm.log",
        "workdir": tmp_path / "phone" / "edgeauto",
    }  # fmt: skip
    paths["adb"].write_text(FAKE_ADB.format(python=sys.executable))
    paths["bm"].write_text(FAKE_BENCHMARK_MODEL.format(python=sys.executable))
    for p in (paths["adb"], paths["bm"]):
        p.chmod(0o755)
    monkeypatch.setenv("FAKE_ADB_LOG", str(paths["adb_log"]))
    monkeypatch.setenv("FAKE_BM_LOG", str(paths["bm_log"]))
    monkeypatch.setenv("FAKE_BM_OUTPUT", str(DATA / "litert_percentiles.txt"))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "emulator-5554")
    return paths
