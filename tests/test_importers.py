"""Importing the published OFA (Note10) and FBNet (Raspberry Pi 4) tables, and searching them.

Real data, read in place from ``../shared/data`` (skipped with a reason when absent). Bad
inputs are small corrupted copies written to ``tmp_path``.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
import yaml
from helpers import shared_data
from typer.testing import CliRunner

from edgeauto.cli import app
from edgeauto.devices.profile import DeviceProfile, load_profile
from edgeauto.errors import ConfigError, TableImportError
from edgeauto.fileio import sha256_file
from edgeauto.latency.importers import (
    ImportReport,
    ImportTarget,
    import_table,
    parse_ofa_key,
    usable_imported,
)
from edgeauto.latency.roofline import floor_ms, work
from edgeauto.latency.table import LatencyStat, LatencyTable, Provenance
from edgeauto.search import STRATEGIES, SearchProblem
from edgeauto.spaces import Arch, Choice, get_space
from edgeauto.spaces.fbnet_cifar import FBNetCifarSpace
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.mbv3 import OFAMobileNetV3Space

NOTE10, PI4 = "samsung-note10", "raspberry-pi-4"

# FBNet-A/B/C (Wu et al. 2019, Fig. 4), per stage, as in facebookresearch's fbnet_modeldef.py
FBNET_ABC = {
    "fbnet-a": "skip | k3_e3 k3_e1 skip skip | k5_e6 k3_e3 k5_e1 k3_e3 | k5_e6 k5_e3 k5_e1_g2 k5_e6"
    " | k3_e6 k5_e1_g2 k5_e1 k3_e1_g2 | k5_e6 k5_e6 k5_e3 k5_e6 | k5_e6",
    "fbnet-b": "k3_e1 | k3_e6 k5_e1 k3_e1 k3_e1 | k5_e6 k5_e3 k3_e6 k5_e6 | k5_e6 k5_e1 skip k5_e3"
    " | k5_e6 k3_e1 k5_e1 k5_e3 | k5_e6 k5_e1 k5_e6 k5_e6 | k3_e6",
    "fbnet-c": "k3_e1 | k3_e6 skip k3_e1 k3_e1 | k5_e6 k5_e3 k5_e6 k3_e6 | k5_e6 k5_e3 k5_e6 k5_e6"
    " | k5_e6 k5_e6 k5_e6 k5_e3 | k5_e6 k5_e6 k5_e6 k5_e6 | k3_e6",
}


@pytest.fixture(scope="module")
def luts() -> Path:
    return shared_data() / "luts"


@pytest.fixture(scope="module")
def note10() -> DeviceProfile:
    return load_profile(NOTE10)


@pytest.fixture(scope="module")
def pi4() -> DeviceProfile:
    return load_profile(PI4)


def _import(fmt: str, src: Path, profile: DeviceProfile, space: str, shape, classes, out: Path):
    return import_table(fmt, src, ImportTarget(profile, space, shape, classes, out))


@pytest.fixture(scope="module")
def ofa_rgb(luts, note10, tmp_path_factory) -> ImportReport:
    """OFA's Note10 tables for the data they were measured for: RGB, 1000 classes."""
    out = tmp_path_factory.mktemp("ofa") / "ofa-mbv3.json"
    return _import("ofa-yaml", luts / "ofa-note10", note10, "ofa-mbv3", (3, 224, 224), 1000, out)


@pytest.fixture(scope="module")
def ofa_mnist(luts, note10, tmp_path_factory) -> ImportReport:
    out = tmp_path_factory.mktemp("ofa28") / "ofa-mbv3.json"
    return _import("ofa-yaml", luts / "ofa-note10", note10, "ofa-mbv3", (1, 28, 28), 10, out)


@pytest.fixture(scope="module")
def fbnet_rgb(luts, pi4, tmp_path_factory) -> ImportReport:
    out = tmp_path_factory.mktemp("fbnet") / "fbnet-cifar.json"
    src = luts / "fbnet-raspi4" / "lookup_table_pi.json"
    return _import("fbnet-json", src, pi4, "fbnet-cifar", (3, 32, 32), 10, out)


# -- OFA --------------------------------------------------------------------------------------


def test_ofa_every_entry_maps(ofa_rgb: ImportReport, luts: Path) -> None:
    files = sorted((luts / "ofa-note10").glob("*.yaml"))
    assert [f.name for f in ofa_rgb.files] == [f.name for f in files] and len(files) == 17
    for report, path in zip(ofa_rgb.files, files):
        assert (report.entries, report.mapped, report.unmapped) == (96, 96, [])
        assert report.sha256 == sha256_file(path)
    table = ofa_rgb.table
    # 17 x 96 entries, of which keys shared between resolutions (1x1 linears, deep stages
    # whose feature sizes coincide) pool into one key each
    assert ofa_rgb.mapped == 17 * 96 and ofa_rgb.pooled > 0
    space = get_space("ofa-mbv3", (3, 224, 224), 1000)
    measured = set(table.entries) - table.estimated
    assert measured == {k for k in space.all_keys() if k.kind != "resize"}
    assert {k.kind for k in ofa_rgb.estimated} == {"resize"}  # 224 px data at 160..220
    assert ofa_rgb.missing == [] and ofa_rgb.below_floor == []


def test_ofa_provenance(ofa_rgb: ImportReport, luts: Path) -> None:
    p = LatencyTable.load(ofa_rgb.table.path).provenance
    assert p.imported and p.device == NOTE10 and p.runtime == "tflite"
    assert p.source == f"ofa-yaml {luts / 'ofa-note10'}" and p.source_units == "ms"
    assert p.source_files["224_lookup_table.yaml"] == sha256_file(
        luts / "ofa-note10" / "224_lookup_table.yaml"
    )
    assert "1.2816" in p.notes and re.match(r"\d{4}-\d\d-\d\dT", p.date)
    assert (p.threads, p.runs, p.warmup) == (0, 0, 0)  # the source does not say


def test_ofa_stats_converted(ofa_rgb: ImportReport, luts: Path) -> None:
    """One-file keys keep the source's numbers; keys in all 17 files are count-weighted."""
    raw = yaml.safe_load((luts / "ofa-note10" / "224_lookup_table.yaml").read_text())
    src = raw["Conv-input:224x224x3-output:112x112x24"]
    stat = ofa_rgb.table.entries[OpKey("stem", 3, 0, 24, 224, 224, 3, 2, act="hswish")]
    assert stat.median_ms == pytest.approx(src["mean"])
    assert stat.p90_ms == pytest.approx(src["mean"] + 1.2816 * src["std"])
    assert stat.runs == src["count"]
    logits = [
        yaml.safe_load(f.read_text())["Logits-input:1x1x1536-output:1000"]
        for f in sorted((luts / "ofa-note10").glob("*.yaml"))
    ]
    pooled = ofa_rgb.table.entries[OpKey("linear", 1536, 0, 1000, 1, 1, act="none")]
    n = sum(e["count"] for e in logits)
    assert pooled.runs == n
    assert pooled.median_ms == pytest.approx(sum(e["count"] * e["mean"] for e in logits) / n)


def _ofa_sum(lut: dict, res: int, k: int, e: int, d: int) -> float:
    """OFA's own prediction (MBv3LatencyTable.predict_network_latency_given_config), by name."""
    widths, strides, se, hs = [24, 24, 32, 48, 96, 136, 192], [2, 2, 2, 1, 2], "01011", "00111"
    f = (res + 1) // 2
    total = lut[f"Conv-input:{res}x{res}x3-output:{f}x{f}x24"]["mean"]
    first = f"expanded_conv-input:{f}x{f}x24-output:{f}x{f}x24-expand:24-kernel:3-stride:1"
    total += lut[first + "-idskip:1-se:0-hs:0"]["mean"]
    cin = 24
    for st in range(5):
        for j in range(d):
            s, cout = (strides[st] if j == 0 else 1), widths[st + 2]
            out = int((f - 1) / s + 1)
            name = (
                f"expanded_conv-input:{f}x{f}x{cin}-output:{out}x{out}x{cout}-expand:{cin * e}"
                f"-kernel:{k}-stride:{s}-idskip:{int(s == 1 and cin == cout)}-se:{se[st]}-hs:{hs[st]}"
            )
            total += lut[name]["mean"]
            f, cin = out, cout
    total += lut[f"Conv_1-input:{f}x{f}x192-output:{f}x{f}x1152"]["mean"]
    total += lut[f"AvgPool2D-input:{f}x{f}x1152-output:1x1x1152"]["mean"]
    total += lut["Conv_2-input:1x1x1152-output:1x1x1536"]["mean"]
    return total + lut["Logits-input:1x1x1536-output:1000"]["mean"]


@pytest.mark.parametrize("res", [160, 192, 224])
@pytest.mark.parametrize(("k", "e", "d"), [(3, 3, 2), (7, 6, 4), (5, 4, 3)])
def test_ofa_prediction_equals_ofas_own_sum(ofa_rgb, luts, res, k, e, d) -> None:
    """Our keys, read from our space, sum to what OFA's string-keyed predictor gives.

    Within 1%: keys shared between resolution files are pooled over all of them.
    """
    lut = yaml.safe_load((luts / "ofa-note10" / f"{res}_lookup_table.yaml").read_text())
    space = get_space("ofa-mbv3", (3, res, res), 1000)
    arch = Arch(space.widths, tuple((Choice(k, e),) * d for _ in range(5)), res)
    ours = ofa_rgb.table.predict(space.blocks(arch))
    assert ours == pytest.approx(_ofa_sum(lut, res, k, e, d), rel=0.01)


def test_ofa_key_parsing() -> None:
    name = "expanded_conv-input:14x14x136-output:14x14x136-expand:408-kernel:5-stride:1-idskip:1-se:1-hs:1"
    assert parse_ofa_key(name) == OpKey(
        "mbconv", 136, 408, 136, 14, 14, 5, 1, True, se=True, act="hswish"
    )
    first = "expanded_conv-input:80x80x24-output:80x80x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0"
    assert parse_ofa_key(first).hidden == 0  # expand == cin: no expansion conv
    for bad in (
        "Softmax-input:1x1x1000-output:1000",
        "expanded_conv-input:14x14x136-output:14x14x136-expand:408-kernel:5-stride:2-idskip:1-se:1-hs:1",
        "Conv-input:224x224-output:112x112x24",
        "Conv_1-input:7x7x192-output:5x5x1152",
    ):
        with pytest.raises((ValueError, KeyError)):
            parse_ofa_key(bad)


def test_ofa_unmappable_entries_are_reported(luts, note10, tmp_path) -> None:
    data = yaml.safe_load((luts / "ofa-note10" / "224_lookup_table.yaml").read_text())
    data["Softmax-input:1x1x1000-output:1000"] = {"count": 5, "mean": 0.01, "std": 0.0}
    data["expanded_conv-input:7x7x192-output:7x7x192-expand:1152-kernel:9"] = {
        "count": 5, "mean": 1.0, "std": 0.1,
    }  # fmt: skip
    src = tmp_path / "224_lookup_table.yaml"
    src.write_text(yaml.safe_dump(data))
    rep = _import("ofa-yaml", src, note10, "ofa-mbv3", (3, 224, 224), 1000, tmp_path / "t.json")
    assert (rep.files[0].entries, rep.files[0].mapped, len(rep.files[0].unmapped)) == (98, 96, 2)
    assert any(u.startswith("224_lookup_table.yaml: Softmax-input") for u in rep.unmapped)
    assert any("kernel:9" in u for u in rep.unmapped)
    assert any("unmapped: 224_lookup_table.yaml: Softmax" in line for line in rep.lines())
    # only 224 was imported: the other resolutions' blocks are missing, and said so
    assert rep.missing and all(k.h != 224 or k.kind == "resize" for k in rep.missing)


# -- FBNet ------------------------------------------------------------------------------------


def test_fbnet_counts_and_units(fbnet_rgb: ImportReport, luts: Path) -> None:
    raw = json.loads((luts / "fbnet-raspi4" / "lookup_table_pi.json").read_text())
    [f] = fbnet_rgb.files
    assert (f.entries, f.mapped, len(f.unmapped)) == (192, 176, 16)
    assert all("candidate skip" in u for u in f.unmapped)
    space = get_space("fbnet-cifar", (3, 32, 32), 10)
    assert isinstance(space, FBNetCifarSpace)
    # stage 1's first layer (json entry 3): k3_e1 16 -> 24, stride 2; one layer, not pooled
    key = space.layer_key(32, 1, 0, Choice(3, 1))
    stat = fbnet_rgb.table.entries[key]
    assert stat.median_ms == pytest.approx(raw[3][0] / 1000) and stat.runs == 10
    # stage 1's layers 1-3 (entries 4-6) share one key: the mean of three 10-run means
    shared = fbnet_rgb.table.entries[space.layer_key(32, 1, 1, Choice(5, 6))]
    assert shared.median_ms == pytest.approx(sum(raw[i][7] for i in (4, 5, 6)) / 3000)
    assert shared.runs == 30 and shared.p90_ms > shared.median_ms
    measured = set(fbnet_rgb.table.entries) - fbnet_rgb.table.estimated
    assert measured == {k for k in space.all_keys() if k.kind == "mbconv"}
    assert {k.kind for k in fbnet_rgb.estimated} == {"stem", "conv", "head"}
    p = fbnet_rgb.table.provenance
    assert (p.runtime, p.source_units, p.imported) == ("tensorflow2-eager", "us", True)


def test_fbnet_needs_its_space(luts, pi4, tmp_path) -> None:
    src = luts / "fbnet-raspi4" / "lookup_table_pi.json"
    with pytest.raises(TableImportError, match="use --space fbnet-cifar"):
        _import("fbnet-json", src, pi4, "ofa-mbv3", (3, 32, 32), 10, tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


# -- estimates and the table on disk ----------------------------------------------------------


def test_estimates_are_labelled_and_above_the_floor(ofa_mnist: ImportReport, note10) -> None:
    table = LatencyTable.load(ofa_mnist.table.path)
    assert table.estimated == set(ofa_mnist.estimated)
    kinds = sorted({k.kind for k in table.estimated})
    assert kinds == ["linear", "resize", "stem"]  # 28 px, 1 channel, 10 classes
    assert len(table.estimated) == 17 + 17 + 1
    for key in table.estimated:
        assert table.entries[key].runs == 0
        assert table.entries[key].median_ms >= floor_ms(key, note10)
    # the 1-channel stem is estimated from OFA's measured 3-channel stems at the same size
    rgb = table.entries[OpKey("stem", 3, 0, 24, 224, 224, 3, 2, act="hswish")].median_ms
    gray = table.entries[OpKey("stem", 1, 0, 24, 224, 224, 3, 2, act="hswish")].median_ms
    assert gray < rgb


def test_no_estimates_when_asked(luts, note10, tmp_path) -> None:
    target = ImportTarget(note10, "ofa-mbv3", (1, 28, 28), 10, tmp_path / "t.json", False)
    rep = import_table("ofa-yaml", luts / "ofa-note10", target)
    assert rep.estimated == [] and len(rep.missing) == 35
    assert not LatencyTable.load(tmp_path / "t.json").estimated


def test_usable_imported(ofa_rgb, note10, pi4) -> None:
    assert usable_imported(ofa_rgb.table, note10)
    assert not usable_imported(ofa_rgb.table, pi4)


def test_import_does_not_replace_a_measured_table(luts, note10, tmp_path) -> None:
    out = tmp_path / "t.json"
    prov = Provenance(NOTE10, "cpu", "litert", "1", 1, 50, 20, "ofa-mbv3", "2026", "0.1.0")
    LatencyTable(prov, None, {OpKey("pool", 8, 0, 8, 7, 7): LatencyStat(0.01, 0.02, 50)}).save(out)
    before = out.read_bytes()
    with pytest.raises(TableImportError, match="does not replace measurements"):
        _import("ofa-yaml", luts / "ofa-note10", note10, "ofa-mbv3", (3, 224, 224), 1000, out)
    assert out.read_bytes() == before


# -- searching the imported tables ------------------------------------------------------------


def _search(space, table, profile, budget: float) -> list[float]:
    problem = SearchProblem(
        space, table, budget, lambda a: 0.0, trials=4, seed=0, device=profile.name,
        profile=profile,
    )  # fmt: skip
    return [t.predicted_ms for t in STRATEGIES.get("random")(problem).search().trials]


def test_search_over_note10_table(ofa_mnist: ImportReport, note10) -> None:
    space = get_space("ofa-mbv3", (1, 28, 28), 10)
    predicted = _search(space, ofa_mnist.table, note10, budget=30.0)
    assert len(predicted) == 4 and all(10.0 < ms <= 30.0 for ms in predicted)


def test_search_over_pi4_table(luts, pi4, tmp_path) -> None:
    src = luts / "fbnet-raspi4" / "lookup_table_pi.json"
    rep = _import("fbnet-json", src, pi4, "fbnet-cifar", (1, 28, 28), 10, tmp_path / "t.json")
    space = get_space("fbnet-cifar", (1, 28, 28), 10)
    predicted = _search(space, rep.table, pi4, budget=400.0)
    assert len(predicted) == 4 and all(0 < ms <= 400.0 for ms in predicted)


def test_published_archs_predicted(ofa_rgb: ImportReport, fbnet_rgb: ImportReport) -> None:
    """OFA's extremes at 224 and FBNet-A/B/C on the Pi: the numbers the closing note quotes."""
    ofa = get_space("ofa-mbv3", (3, 224, 224), 1000)
    assert isinstance(ofa, OFAMobileNetV3Space)
    small = ofa_rgb.table.predict(ofa.blocks(Arch(ofa.widths, ((Choice(3, 3),) * 2,) * 5, 224)))
    large = ofa_rgb.table.predict(ofa.blocks(Arch(ofa.widths, ((Choice(7, 6),) * 4,) * 5, 224)))
    # OFA's Note10 models span 8-64 ms (its model zoo); the space at 224 brackets the upper part
    assert 10 < small < 25 < 60 < large < 120
    fb = get_space("fbnet-cifar", (3, 32, 32), 10)
    ms = {}
    for name, text in FBNET_ABC.items():
        layers = tuple(tuple(Choice.parse(c) for c in st.split()) for st in text.split("|"))
        ms[name] = fbnet_rgb.table.predict(fb.blocks(Arch(fb.widths, layers)))
    cheapest = fb.cheapest(fbnet_rgb.table.block_ms)
    assert all(fbnet_rgb.table.predict(fb.blocks(cheapest)) < v for v in ms.values())
    assert ms["fbnet-c"] > ms["fbnet-b"]  # C adds e6 blocks where B has e1


@pytest.mark.parametrize(("published_ms", "macs_m"), [(22, 237), (30, 339), (41, 457)])
def test_ofa_note10_models_within_predicted_range(ofa_rgb, published_ms, macs_m) -> None:
    """OFA's Note10 models (model zoo: note10_lat@22/30/41ms, 237/339/457M MACs) sit inside the
    latencies we predict for random archs of the space with the same MACs (+-5%)."""
    space = get_space("ofa-mbv3", (3, 224, 224), 1000)
    rng = random.Random(0)
    near = []
    for _ in range(1500):
        keys = [k for k in space.blocks(space.sample(rng)) if k.kind != "resize"]
        macs = sum(work(k)[0] for k in keys) / 2e6
        if abs(macs - macs_m) <= 0.05 * macs_m:
            near.append(ofa_rgb.table.predict(keys))
    assert len(near) >= 20
    assert min(near) <= published_ms <= max(near)


# -- bad input --------------------------------------------------------------------------------


def _assert_fails_cleanly(fmt: str, src: Path, profile, space: str, tmp_path: Path, match: str):
    out = tmp_path / "out" / "t.json"
    shape = (3, 32, 32) if space == "fbnet-cifar" else (3, 224, 224)
    with pytest.raises(TableImportError, match=match) as exc:
        _import(fmt, src, profile, space, shape, 10, out)
    assert "\n" not in str(exc.value)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no table, no temp file
    result = CliRunner().invoke(
        app, ["lut", "import", "--format", fmt, str(src), "--device", profile.name,
              "--space", space, "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: TableImportError: ")
    assert "Traceback" not in result.output
    assert not out.exists()


def test_wrong_format_yaml_as_fbnet(luts, pi4, tmp_path) -> None:
    src = luts / "ofa-note10" / "224_lookup_table.yaml"
    _assert_fails_cleanly("fbnet-json", src, pi4, "fbnet-cifar", tmp_path, "not valid JSON")


def test_wrong_format_json_as_ofa(luts, note10, tmp_path) -> None:
    src = luts / "fbnet-raspi4" / "lookup_table_pi.json"
    _assert_fails_cleanly("ofa-yaml", src, note10, "ofa-mbv3", tmp_path, "--format fbnet-json")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_yaml(luts, note10, tmp_path, cut: float) -> None:
    text = (luts / "ofa-note10" / "200_lookup_table.yaml").read_text()
    src = tmp_path / "200_lookup_table.yaml"
    src.write_text(text[: int(len(text) * cut)])
    _assert_fails_cleanly("ofa-yaml", src, note10, "ofa-mbv3", tmp_path, "truncated")


def test_yaml_cut_at_an_entry_boundary(luts, note10, tmp_path) -> None:
    """A file that parses but lost its last entries is caught by the completeness check."""
    lines = (luts / "ofa-note10" / "200_lookup_table.yaml").read_text().splitlines()
    src = tmp_path / "200_lookup_table.yaml"
    src.write_text("\n".join(lines[: len(lines) - 4 * 10]) + "\n")  # 10 entries of 4 lines
    _assert_fails_cleanly("ofa-yaml", src, note10, "ofa-mbv3", tmp_path, "10 of the 96 blocks")


@pytest.mark.parametrize("cut", [0.3, 0.99])
def test_truncated_json(luts, pi4, tmp_path, cut: float) -> None:
    text = (luts / "fbnet-raspi4" / "lookup_table_pi.json").read_text()
    src = tmp_path / "lookup_table_pi.json"
    src.write_text(text[: int(len(text) * cut)])
    _assert_fails_cleanly("fbnet-json", src, pi4, "fbnet-cifar", tmp_path, "not valid JSON")


def test_json_missing_a_layer(luts, pi4, tmp_path) -> None:
    data = json.loads((luts / "fbnet-raspi4" / "lookup_table_pi.json").read_text())
    src = tmp_path / "short.json"
    src.write_text(json.dumps(data[:27]))
    _assert_fails_cleanly("fbnet-json", src, pi4, "fbnet-cifar", tmp_path, "a list of 27")
    data[7] = data[7][:-1]  # a candidate dropped from one layer
    src.write_text(json.dumps(data))
    _assert_fails_cleanly("fbnet-json", src, pi4, "fbnet-cifar", tmp_path, "layer 7 holds 7")


@pytest.mark.parametrize("bad", [-1.5, 0, float("nan"), float("inf"), "fast"])
def test_bad_latency_in_yaml(luts, note10, tmp_path, bad) -> None:
    data = yaml.safe_load((luts / "ofa-note10" / "224_lookup_table.yaml").read_text())
    name = "Conv_1-input:7x7x192-output:7x7x1152"
    data[name]["mean"] = bad
    src = tmp_path / "224_lookup_table.yaml"
    src.write_text(yaml.safe_dump(data))
    _assert_fails_cleanly("ofa-yaml", src, note10, "ofa-mbv3", tmp_path, "mean is")


@pytest.mark.parametrize("bad", [-5.0, 0.0, float("nan"), None, True])
def test_bad_latency_in_json(luts, pi4, tmp_path, bad) -> None:
    data = json.loads((luts / "fbnet-raspi4" / "lookup_table_pi.json").read_text())
    data[12][3] = bad
    src = tmp_path / "lookup_table_pi.json"
    src.write_text(json.dumps(data))  # NaN is written as the JSON extension NaN
    _assert_fails_cleanly("fbnet-json", src, pi4, "fbnet-cifar", tmp_path, "latency is")


def test_empty_and_missing_sources(note10, tmp_path) -> None:
    src = tmp_path / "empty.yaml"
    src.write_text("")
    _assert_fails_cleanly("ofa-yaml", src, note10, "ofa-mbv3", tmp_path, "empty file")
    _assert_fails_cleanly("ofa-yaml", tmp_path / "nope", note10, "ofa-mbv3", tmp_path, "not exist")


@pytest.mark.parametrize(
    "text", ['{"schema_version": 1, "provenance": {"device": "x"', "", "[1, 2]"]
)
def test_corrupt_table_json_is_a_one_line_error(tmp_path, text: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        LatencyTable.load(path)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("bad", [-0.5, 0, "NaN"])
def test_table_json_with_bad_latency(ofa_rgb: ImportReport, tmp_path, bad) -> None:
    data = ofa_rgb.table.to_json()
    data["entries"][5]["median_ms"] = float(bad) if bad == "NaN" else bad
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="positive finite milliseconds"):
        LatencyTable.load(path)


def test_cli_writes_the_devices_table(luts, tmp_path, monkeypatch) -> None:
    """Without --out the table lands where the pipeline looks: <tables>/<device>/<runtime>/."""
    monkeypatch.setenv("EDGEAUTO_TABLES", str(tmp_path))
    src = luts / "fbnet-raspi4" / "lookup_table_pi.json"
    args = ["lut", "import", "--format", "fbnet-json", str(src), "--device", PI4,
            "--space", "fbnet-cifar"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    path = tmp_path / PI4 / "litert" / "fp32-t4" / "fbnet-cifar.json"
    assert f"wrote {path}" in result.output
    assert "lookup_table_pi.json: 192 entries, 176 mapped, 16 unmapped" in result.output
    assert "4 estimated" in result.output
    table = LatencyTable.load(path)
    assert table.provenance.imported and len(table.entries) == 100
    assert all(math.isfinite(s.median_ms) and s.median_ms > 0 for s in table.entries.values())
