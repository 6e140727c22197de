"""The published tables' spaces (``ofa-mbv3``, ``fbnet-cifar``), their blocks and new key fields.

Conformance (keys of the built model equal ``space.blocks``, exact ``cheapest``) runs for every
registered space in test_conformance.py; these tests pin the layouts to the publications.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from edgeauto.errors import ConfigError
from edgeauto.export.onnx import export_onnx
from edgeauto.export.parity import check_parity
from edgeauto.export.runtimes import get_runtime
from edgeauto.latency.table import LatencyStat, LatencyTable, Provenance
from edgeauto.spaces import Arch, Choice, get_space
from edgeauto.spaces.fbnet_cifar import CANDIDATES, FBNetCifarSpace
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.mbv3 import OFAMobileNetV3Space
from edgeauto.spaces.modules import (
    Chain,
    ChannelShuffle,
    ConvBNAct,
    LinearAct,
    MBConv,
    Pool,
    Resize,
    SqueezeExcite,
    Stem,
    block_for_key,
)


def uniform(space: OFAMobileNetV3Space, res: int, k: int, e: int, d: int) -> Arch:
    return Arch(space.widths, tuple((Choice(k, e),) * d for _ in space.widths), res)


# -- ofa-mbv3 ---------------------------------------------------------------------------------


def test_ofa_layout_is_ofa_w12() -> None:
    space = get_space("ofa-mbv3", (3, 224, 224), 1000)
    assert isinstance(space, OFAMobileNetV3Space)
    assert (space.stem_width, space.first_width) == (24, 24)
    assert space.widths == (32, 48, 96, 136, 192)
    assert (space.final_width, space.feature_width) == (1152, 1536)
    assert space.resolutions == tuple(range(160, 225, 4)) and len(space.resolutions) == 17
    assert space.size() == 17 * (9**2 + 9**3 + 9**4) ** 5


def test_ofa_blocks_at_224() -> None:
    """The largest arch at 224: shapes, SE and h-swish per stage, as MobileNetV3-Large."""
    space = get_space("ofa-mbv3", (3, 224, 224), 1000)
    keys = space.blocks(uniform(space, 224, 7, 6, 4))
    assert keys[0] == OpKey("stem", 3, 0, 24, 224, 224, 3, 2, act="hswish")
    assert keys[1] == OpKey("mbconv", 24, 0, 24, 112, 112, 3, 1, True, act="relu")
    firsts = [k for k in keys if k.kind == "mbconv" and not k.residual]
    assert [(k.cin, k.cout, k.h, k.stride, k.se, k.act) for k in firsts] == [
        (24, 32, 112, 2, False, "relu"),
        (32, 48, 56, 2, True, "relu"),
        (48, 96, 28, 2, False, "hswish"),
        (96, 136, 14, 1, True, "hswish"),
        (136, 192, 14, 2, True, "hswish"),
    ]
    assert all(k.hidden == 6 * k.cin for k in keys[2:-4])
    assert keys[-4:] == [
        OpKey("conv", 192, 0, 1152, 7, 7, 1, 1, act="hswish"),
        OpKey("pool", 1152, 0, 1152, 7, 7),
        OpKey("linear", 1152, 0, 1536, 1, 1, act="hswish"),
        OpKey("linear", 1536, 0, 1000, 1, 1, act="none"),
    ]
    assert len(keys) == 2 + 20 + 4


def test_ofa_small_data_is_resized_in_the_network() -> None:
    """28x28 MNIST runs at the arch's resolution: a resize key, then OFA's shapes."""
    space = get_space("ofa-mbv3", (1, 28, 28), 10)
    arch = uniform(space, 160, 3, 3, 2)
    model = space.build(arch).train(False)
    assert isinstance(model.layers[0], Resize)
    keys = model.op_keys((28, 28))
    assert keys == space.blocks(arch)
    assert keys[0] == OpKey("resize", 1, 0, 1, 28, 28, out_size=160)
    assert keys[1] == OpKey("stem", 1, 0, 24, 160, 160, 3, 2, act="hswish")
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    # data already at the resolution skips the resize
    at_160 = get_space("ofa-mbv3", (3, 160, 160), 10)
    assert at_160.blocks(uniform(at_160, 160, 3, 3, 2))[0].kind == "stem"


def test_ofa_sample_mutate_validate() -> None:
    space = get_space("ofa-mbv3", (1, 28, 28), 10)
    rng = random.Random(1)
    depths, resolutions = set(), set()
    for _ in range(200):
        arch = space.sample(rng)
        space.validate(arch)
        child = space.mutate(arch, rng)
        space.validate(child)
        changed = (child.resolution != arch.resolution) + sum(
            a != b for a, b in zip(arch.layers, child.layers)
        )
        assert changed == 1, "mutate changes exactly one decision"
        depths.update(len(st) for st in arch.layers)
        resolutions.add(arch.resolution)
    assert depths == {2, 3, 4} and len(resolutions) > 10


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"resolution": 150}, "resolution 150"),
        ({"resolution": 0}, "resolution 0"),
        ({"depth": 5}, "depth 5"),
        ({"depth": 1}, "depth 1"),
        ({"choice": Choice(9, 6)}, "k9_e6 is not allowed"),
        ({"choice": Choice(3, 1)}, "k3_e1 is not allowed"),
        ({"widths": (32, 48, 96, 136, 160)}, "fixed"),
    ],
)
def test_ofa_validate_rejects(change: dict, match: str) -> None:
    space = get_space("ofa-mbv3", (3, 224, 224), 1000)
    d = change.get("depth", 2)
    layers = tuple((change.get("choice", Choice(3, 3)),) * d for _ in range(5))
    arch = Arch(change.get("widths", space.widths), layers, change.get("resolution", 224))
    with pytest.raises(ConfigError, match=match):
        space.validate(arch)


def test_ofa_cheapest_under_macs_is_smallest() -> None:
    space = get_space("ofa-mbv3", (3, 224, 224), 1000)

    def macs(key: OpKey) -> float:
        return key.cin * (key.hidden or 1) * key.h * key.w * key.kernel**2

    assert space.cheapest(macs) == uniform(space, 160, 3, 3, 2)


# -- fbnet-cifar ------------------------------------------------------------------------------


def test_fbnet_cifar_schedule() -> None:
    space = get_space("fbnet-cifar", (3, 32, 32), 10)
    assert isinstance(space, FBNetCifarSpace)
    layers = space.searchable_layers()
    assert len(layers) == 22
    n = [len(space.layer_choices(i, j)) for i, j in layers]
    # skip only where an identity fits: stage 0 (16 -> 16, stride 1) and every later layer
    assert n == [9, 8, 9, 9, 9, 8, 9, 9, 9, 8, 9, 9, 9, 8, 9, 9, 9, 8, 9, 9, 9, 8]
    assert [c.name for c in CANDIDATES] == [
        "k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip",
    ]  # fmt: skip
    keys = {k for i, j in layers for k in [space.layer_key(32, i, j, Choice(3, 6))]}
    shapes = sorted({(k.cin, k.cout, k.h, k.stride) for k in keys})
    assert shapes == sorted([
        (16, 16, 32, 1), (16, 24, 32, 2), (24, 24, 16, 1), (24, 32, 16, 2), (32, 32, 8, 1),
        (32, 64, 8, 1), (64, 64, 8, 1), (64, 112, 8, 1), (112, 112, 8, 1), (112, 184, 8, 1),
        (184, 184, 8, 1), (184, 352, 8, 1),
    ])  # fmt: skip
    assert space.size() == 9**16 * 8**6


def test_fbnet_blocks_are_fbnets() -> None:
    """e1 keeps a 1x1 expansion conv; _g2 groups both 1x1 convs and shuffles after them."""
    space = get_space("fbnet-cifar", (3, 32, 32), 10)
    e1 = space.layer_key(32, 1, 1, Choice(3, 1))
    assert (e1.hidden, e1.groups, e1.act, e1.residual) == (24, 1, "relu", True)
    g2 = space.layer_key(32, 3, 0, Choice(5, 1, 2))
    assert (g2.cin, g2.hidden, g2.cout, g2.groups, g2.residual) == (32, 32, 64, 2, False)
    block = block_for_key(g2)
    convs = [m for m in block.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.groups for c in convs] == [2, 32, 2]
    assert sum(isinstance(m, ChannelShuffle) for m in block.body) == 2
    assert block.op_key(8, 8) == g2


def test_fbnet_small_data_resized_to_32() -> None:
    space = get_space("fbnet-cifar", (1, 28, 28), 10)
    arch = space.sample(random.Random(0))
    assert arch.resolution == 0
    keys = space.blocks(arch)
    assert keys[0] == OpKey("resize", 1, 0, 1, 28, 28, out_size=32)
    assert keys[1] == OpKey("stem", 1, 0, 16, 32, 32, 3, 1, act="none")
    assert keys[-2:] == [
        OpKey("conv", 352, 0, 1984, 8, 8, 1, 1, act="none"),
        OpKey("head", 1984, 0, 10, 8, 8),
    ]


# -- modules and keys -------------------------------------------------------------------------


def test_channel_shuffle_is_shufflenets() -> None:
    x = torch.randn(2, 12, 3, 3)
    ref = x.reshape(2, 3, 4, 3, 3).transpose(1, 2).reshape(2, 12, 3, 3)
    assert torch.equal(ChannelShuffle(3)(x), ref)


@pytest.mark.parametrize("size", [16, 32, 160, 164, 223, 224])
def test_resize_output_is_exactly_the_resolution(size: int) -> None:
    for n in (5, 7, 8, 12, 28, 32, 100, 224):
        assert Resize(1, size)(torch.zeros(1, 1, n, n)).shape[-2:] == (size, size)


def test_squeeze_excite_width() -> None:
    se = SqueezeExcite(408)
    assert (se.reduce.out_channels, se.expand.out_channels) == (104, 408)  # 408 // 4 = 102 -> 104


def test_new_blocks_export_with_parity(tmp_path: Path) -> None:
    """Every new block kind converts to ONNX and TFLite and matches PyTorch within 1e-4."""
    torch.manual_seed(0)
    model = Chain([
        Resize(1, 16), Stem(1, 8, 2, 3, "hswish"), MBConv(8, 8, 3, 1, 24, se=True, act="hswish"),
        MBConv(8, 16, 5, 2, 16, act="relu", groups=2), ConvBNAct(16, 32, 1, 1, "hswish"), Pool(),
        LinearAct(32, 16, "hswish", bias=False), LinearAct(16, 3),
    ]).train(False)  # fmt: skip
    assert [k.kind for k in model.op_keys((12, 12))] == [
        "resize", "stem", "mbconv", "mbconv", "conv", "pool", "linear", "linear",
    ]  # fmt: skip
    onnx_path = export_onnx(model, (1, 12, 12), tmp_path / "m.onnx")
    x = torch.rand(3, 1, 12, 12)
    for name in ("onnxruntime", "litert"):
        rt = get_runtime(name)
        artifact = rt.from_onnx(onnx_path, tmp_path / f"m{rt.suffix}")
        assert check_parity(model, rt, artifact, x).max_abs_diff <= 1e-4


@pytest.mark.parametrize(
    "key",
    [
        OpKey("mbconv", 136, 408, 136, 14, 14, 5, 1, True, se=True, act="hswish"),
        OpKey("mbconv", 32, 32, 64, 8, 8, 3, 1, act="relu", groups=2),
        OpKey("resize", 1, 0, 1, 28, 28, out_size=224),
        OpKey("pool", 1152, 0, 1152, 7, 7),
        OpKey("linear", 1152, 0, 1536, 1, 1, act="hswish"),
        OpKey("conv", 192, 0, 1152, 7, 7, act="hswish"),
    ],
    ids=lambda k: k.describe(),
)
def test_block_for_key_reports_its_key(key: OpKey) -> None:
    block = block_for_key(key).train(False)
    got = block.op_key(key.h, key.w, key.cin) if key.kind == "pool" else block.op_key(key.h, key.w)
    assert got == key
    with torch.no_grad():
        out = block(torch.zeros(1, key.cin, key.h, key.w))
    expected = (1, key.cout) if key.kind == "linear" else (1, key.cout, *key.out_hw)
    assert tuple(out.shape) == expected
    assert OpKey.from_json(json.loads(json.dumps(key.to_json()))) == key


def test_new_key_fields_stay_out_of_old_json() -> None:
    """Tables written before the new fields load unchanged and hash the same."""
    old = {"kind": "mbconv", "cin": 8, "hidden": 24, "cout": 16, "h": 8, "w": 8, "kernel": 3,
           "stride": 1, "residual": False}  # fmt: skip
    key = OpKey.from_json(old)
    assert (key.se, key.act, key.groups, key.out_size) == (False, "relu6", 1, 0)
    assert key.to_json() == old
    prov = Provenance("host", "cpu", "litert", "1", 1, 50, 20, "fbnet-micro", "2026", "0.1.0")
    table = LatencyTable(prov, None, {key: LatencyStat(0.1, 0.2, 50)})
    data = table.to_json()
    assert set(data["provenance"]) == {
        "device", "cpu_model", "runtime", "runtime_version", "threads", "runs", "warmup", "space",
        "date", "edgeauto_version",
    }  # fmt: skip
    assert "estimated" not in data["entries"][0]
    assert LatencyTable.from_json(data).to_json() == data


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"act": "gelu"}, "OpKey.act"),
        ({"groups": 0}, "OpKey.groups"),
        ({"kind": "resize"}, "out_size"),
        ({"out_size": 32}, "out_size"),
    ],
)
def test_new_key_fields_validated(kwargs: dict, match: str) -> None:
    base = {"kind": "mbconv", "cin": 8, "hidden": 24, "cout": 8, "h": 8, "w": 8}
    with pytest.raises(ConfigError, match=match):
        OpKey(**{**base, **kwargs})


def test_describe_new_kinds() -> None:
    assert OpKey("resize", 1, 0, 1, 28, 28, out_size=224).describe() == "resize 1 28x28->224x224"
    assert OpKey("pool", 1152, 0, 1152, 7, 7).describe() == "pool 1152 @7x7"
    assert OpKey("linear", 1536, 0, 10, 1, 1, act="none").describe() == "linear 1536->10 none"
    se = OpKey("mbconv", 136, 408, 136, 14, 14, 5, 1, True, se=True, act="hswish")
    assert se.describe() == "mbconv k5 136->408->136 s1 @14x14 +res +se hswish"
    g = OpKey("mbconv", 32, 32, 64, 8, 8, 3, 1, act="relu", groups=2)
    assert g.describe() == "mbconv k3 32->32->64 s1 @8x8 g2 relu"


def test_distance_prefers_same_activation() -> None:
    a = OpKey("linear", 1536, 0, 10, 1, 1, act="none")
    near = OpKey("linear", 1536, 0, 1000, 1, 1, act="none")
    other = OpKey("linear", 1152, 0, 1536, 1, 1, act="hswish")
    assert a.distance(near) < a.distance(other)


def test_choice_groups_and_arch_resolution_round_trip() -> None:
    assert Choice.parse("k5_e1_g2") == Choice(5, 1, 2)
    assert Choice(5, 1, 2).name == "k5_e1_g2" and Choice(3, 6, 1).name == "k3_e6"
    for bad in ("k5_e1_g1", "k5_e1_x2", "k5_e1_g2_g2", "k5_e1_g"):
        with pytest.raises(ConfigError, match="not of the form"):
            Choice.parse(bad)
    space = get_space("ofa-mbv3", (1, 28, 28), 10)
    arch = space.sample(random.Random(4))
    data = json.loads(json.dumps(arch.to_json()))
    assert data["resolution"] == arch.resolution and Arch.from_json(data) == arch
    assert arch.describe().startswith(f"r{arch.resolution} ")
    assert "resolution" not in Arch((8,), ((Choice(3, 1),),)).to_json()
    assert Arch.from_json({"widths": [8], "layers": [["k3_e1"]]}).resolution == 0
