"""The published tables shipped in ``hw_latency/``, and honest emulation of the Pi 4.

The committed OFA Note10 and FBNet Pi 4 tables must reach a run without ``../shared``, be what
``make tables`` makes from it, and price the device's runtime: the FBNet table was timed with
TensorFlow 2 eager, so it is refused unless converted to LiteRT, and the shipped (converted)
one must agree with the emulation of the same networks within emulation's measured error.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import pytest
from helpers import shared_data
from typer.testing import CliRunner

from edgeauto.cli import app
from edgeauto.devices.profile import load_profile
from edgeauto.errors import ConfigError
from edgeauto.latency.builder import TimingSettings, make_timer, validate_table
from edgeauto.latency.conversion import OverheadModel, model_path
from edgeauto.latency.device import open_table
from edgeauto.latency.emulation import MIN_NETWORKS, expected_error, fit_emulation
from edgeauto.latency.importers import ImportTarget, import_table
from edgeauto.latency.store import table_path
from edgeauto.latency.table import LatencyTable
from edgeauto.progress import NullReporter
from edgeauto.spaces import Arch, Choice, get_space

REPO_TABLES = Path(__file__).resolve().parents[1] / "hw_latency"
NOTE10, PI4 = "samsung-note10", "raspberry-pi-4"
CIFAR = ((3, 32, 32), 10)
# What `make tables` runs (Makefile): format, source under luts/, device, space, shape, origin
SHIPPED = {
    NOTE10: ("ofa-yaml", "ofa-note10", "ofa-mbv3", ((3, 224, 224), 1000),
             "mit-han-lab/once-for-all@698a5c1/tutorial/checkpoints/latency_table@note10"),
    PI4: ("fbnet-json", "fbnet-raspi4/lookup_table_pi.json", "fbnet-cifar", CIFAR,
          "jh88/fbnet@5bd12ab/lookup_table_pi.json"),
}  # fmt: skip


def _shipped(device: str) -> Path:
    return table_path(load_profile(device), SHIPPED[device][2], REPO_TABLES)


def _import(device: str, out: Path, convert: bool) -> LatencyTable:
    fmt, src, space, (shape, classes), origin = SHIPPED[device]
    model = None
    if convert:
        model = OverheadModel.load(model_path(REPO_TABLES, "tensorflow2-eager", "litert", space))
    target = ImportTarget(load_profile(device), space, shape, classes, out, True, origin, model)
    return import_table(fmt, shared_data() / "luts" / src, target).table


def test_devices_lists_the_shipped_tables(monkeypatch) -> None:
    monkeypatch.delenv("EDGEAUTO_TABLES", raising=False)
    result = CliRunner().invoke(app, ["devices"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if "│" in line[:2]}
    for device in (NOTE10, PI4):
        assert re.search(r"│\s*yes\s*│\s*$", rows[device]), rows[device]


@pytest.mark.parametrize("device", [NOTE10, PI4])
def test_shipped_table_is_what_make_tables_imports(device: str, tmp_path: Path) -> None:
    """Importing the source again (as ``make tables`` does) gives the committed table."""
    committed = LatencyTable.load(_shipped(device))
    again = _import(device, tmp_path / "t.json", convert=device == PI4)
    assert again.entries == committed.entries and again.estimated == committed.estimated
    mine, theirs = again.provenance, committed.provenance
    assert theirs.imported and theirs.origin == SHIPPED[device][4]
    assert theirs.source_files == mine.source_files and len(theirs.source_files) >= 1
    # the date is the source files' modification time: a fresh checkout of ../shared has its
    # own, so only its form is compared
    assert (theirs.runtime, theirs.conversion) == (mine.runtime, mine.conversion)
    assert dt.datetime.fromisoformat(mine.date) and dt.datetime.fromisoformat(theirs.date)
    assert theirs.source_units == ("ms" if device == NOTE10 else "us")


def test_shipped_pi4_table_is_labelled_converted() -> None:
    p = LatencyTable.load(_shipped(PI4)).provenance
    assert p.runtime == "litert" and p.conversion["from_runtime"] == "tensorflow2-eager"
    assert "Converted from tensorflow2-eager" in p.notes and p.conversion["scale"] > 1


def test_table_of_another_runtime_is_refused(tmp_path: Path) -> None:
    """The FBNet table as timed (TensorFlow 2 eager) is refused for the LiteRT Pi 4."""
    pi4 = load_profile(PI4)
    _import(PI4, table_path(pi4, "fbnet-cifar", tmp_path), convert=False)
    space = get_space("fbnet-cifar", *CIFAR)
    with pytest.raises(ConfigError, match=r"timed with tensorflow2-eager.*--convert-to litert"):
        open_table(pi4, space, NullReporter(), tmp_path)
    # the OFA table (TFLite, LiteRT's former name) prices LiteRT as it is
    note10 = load_profile(NOTE10)
    ofa = get_space("ofa-mbv3", (3, 224, 224), 1000)
    table, _ = open_table(note10, ofa, NullReporter(), REPO_TABLES)
    assert table.provenance.runtime == "tflite"


def _fbnet(text: str) -> Arch:
    space = get_space("fbnet-cifar", *CIFAR)
    layers = tuple(tuple(Choice.parse(c) for c in st.split()) for st in text.split("|"))
    return Arch(space.widths, layers)


# FBNet-B and -C (Wu et al. 2019) on the CIFAR schedule (22 layers), and one mostly skipped
FRESH = [
    "k3_e1 | k3_e6 k5_e1 k3_e1 k3_e1 | k5_e6 k5_e3 k3_e6 k5_e6 | k5_e6 k5_e1 skip k5_e3"
    " | k5_e6 k3_e1 k5_e1 k5_e3 | k5_e6 k5_e1 k5_e6 k5_e6 | k3_e6",
    "k3_e1 | k3_e6 skip k3_e1 k3_e1 | k5_e6 k5_e3 k5_e6 k3_e6 | k5_e6 k5_e3 k5_e6 k5_e6"
    " | k5_e6 k5_e6 k5_e6 k5_e3 | k5_e6 k5_e6 k5_e6 k5_e6 | k3_e6",
    "skip | k3_e1 skip skip skip | k3_e1 skip skip skip | k3_e1 skip skip skip"
    " | k3_e1 skip skip skip | k3_e1 skip skip skip | k3_e1",
]


@pytest.mark.slow
def test_pi4_prediction_agrees_with_emulation(tmp_path: Path) -> None:
    """The shipped Pi 4 table's prediction of whole networks and their emulation (this
    machine's LiteRT time through the device/host law) agree within emulation's expected
    error, measured on other whole networks; the eager table was +216% apart."""
    pi4 = LatencyTable.load(_shipped(PI4))
    space = get_space("fbnet-cifar", *CIFAR)
    host, _ = open_table(load_profile("host"), space, NullReporter(), tmp_path)
    timer = make_timer(load_profile("host"), TimingSettings())
    try:
        validate_table(host, space, timer, MIN_NETWORKS)
        archs = [_fbnet(t) for t in FRESH]
        measured = timer.time_networks([space.build(a) for a in archs], space.input_shape)
    finally:
        timer.close()
    fit = fit_emulation(pi4, host)
    expected = expected_error(fit, pi4, host)
    assert 0 < expected < 0.5
    gaps = []
    for arch, stat in zip(archs, measured):
        predicted = pi4.predict(space.blocks(arch))
        gaps.append((fit.predict_ms(stat.median_ms) - predicted) / predicted)
    rms = math.sqrt(sum(g * g for g in gaps) / len(gaps))
    # 3 networks sample the error: allow their RMS half again the measured figure
    assert rms <= 1.5 * expected, (
        f"gaps {[f'{g:+.1%}' for g in gaps]} (RMS {rms:.1%}), expected {expected:.1%}"
    )
