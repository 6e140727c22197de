"""Search-space nouns: OpKey, Choice, Arch, and the layer-wise space's membership and shapes."""

from __future__ import annotations

import json
import random

import pytest
import torch
from helpers import DIGITS_CLASSES, DIGITS_SHAPE, MICRO

from edgeauto.errors import ConfigError
from edgeauto.spaces import SKIP, Arch, Choice, get_space
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.modules import MBConv, block_for_key

# -- OpKey ------------------------------------------------------------------------------------


KEYS = [
    OpKey("stem", 1, 0, 8, 8, 8, 3, 1),
    OpKey("mbconv", cin=16, hidden=96, cout=24, h=14, w=14, kernel=3, stride=2),
    OpKey("mbconv", 8, 0, 8, 8, 8, 5, 1, True),
    OpKey("head", 24, 0, 10, 4, 4),
]


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.describe())
def test_opkey_json_round_trip(key: OpKey) -> None:
    data = key.to_json()
    assert set(data) == {
        "kind", "cin", "hidden", "cout", "h", "w", "kernel", "stride", "residual",
    }  # fmt: skip
    # through real JSON text, as tables store it
    again = OpKey.from_json(json.loads(json.dumps(data)))
    assert again == key
    assert hash(again) == hash(key)


def test_opkey_describe_and_out_hw() -> None:
    k = OpKey("mbconv", cin=16, hidden=96, cout=24, h=7, w=5, kernel=3, stride=2)
    assert k.describe() == "mbconv k3 16->96->24 s2 @7x5"
    assert k.out_hw == (4, 3)  # ceil division, "same" padding
    res = OpKey("mbconv", 8, 0, 8, 8, 8, 5, 1, True)
    assert res.describe().endswith("+res")
    assert OpKey("head", 24, 0, 10, 4, 4).describe() == "head 24->10 k1 s1 @4x4"


def test_opkey_ordering_is_total() -> None:
    assert sorted(KEYS) == sorted(reversed(KEYS))
    assert len(set(KEYS)) == len(KEYS)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "deconv"}, "kind"),
        ({"cin": 0}, "cin"),
        ({"cout": -1}, "cout"),
        ({"h": 0}, "h"),
        ({"w": 0}, "w"),
        ({"kernel": 0}, "kernel"),
        ({"stride": 0}, "stride"),
    ],
)
def test_opkey_validation(kwargs: dict, field: str) -> None:
    base = {"kind": "mbconv", "cin": 8, "hidden": 24, "cout": 8, "h": 8, "w": 8}
    with pytest.raises(ConfigError, match=f"OpKey.{field}"):
        OpKey(**{**base, **kwargs})


def test_opkey_from_json_unknown_field() -> None:
    data = {**KEYS[1].to_json(), "dilation": 4}
    with pytest.raises(ConfigError, match=r"no field\(s\) \['dilation'\]"):
        OpKey.from_json(data)


def test_opkey_from_json_missing_field() -> None:
    data = KEYS[1].to_json()
    del data["cout"]
    with pytest.raises(ConfigError, match="incomplete"):
        OpKey.from_json(data)


def test_opkey_from_json_bad_kind() -> None:
    with pytest.raises(ConfigError, match="kind"):
        OpKey.from_json({**KEYS[1].to_json(), "kind": "maxpool"})


def test_opkey_distance() -> None:
    a = OpKey("mbconv", 8, 24, 16, 8, 8, 3, 1)
    b = OpKey("mbconv", 8, 20, 16, 8, 8, 3, 1)
    assert a.distance(a) == 0
    assert a.distance(b) == 4
    assert a.distance(OpKey("head", 8, 0, 10, 8, 8)) == float("inf")


# -- Choice -----------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", [Choice(3, 1), Choice(5, 6), Choice(7, 3), SKIP])
def test_choice_name_round_trip(choice: Choice) -> None:
    assert Choice.parse(choice.name) == choice


def test_choice_names() -> None:
    assert Choice(3, 6).name == "k3_e6"
    assert SKIP.name == "skip" and SKIP.is_skip
    assert not Choice(3, 1).is_skip


@pytest.mark.parametrize(
    "bad", ["", "k3", "k3e6", "x3_e6", "k3_x6", "k_e", "k3_e", "kx_e6", "_", "k3_e6_e1", "SKIP"]
)
def test_choice_parse_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="not of the form 'k<kernel>_e<expansion>' or 'skip'"):
        Choice.parse(bad)


# -- Arch -------------------------------------------------------------------------------------


def test_arch_json_round_trip() -> None:
    space = get_space("fbnet-lite", (1, 28, 28), 10)
    rng = random.Random(3)
    for _ in range(20):
        arch = space.sample(rng)
        text = json.dumps(arch.to_json())
        assert Arch.from_json(json.loads(text)) == arch


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"widths": [8, 16]},
        {"layers": [["k3_e1"], ["k3_e1"]]},
        {"widths": None, "layers": [["k3_e1"]]},
        {"widths": ["eight"], "layers": [["k3_e1"]]},
        {"widths": [8], "layers": [["k3e1"]]},
        {"widths": [8], "layers": 3},
        None,
        [8, 16],
        "widths",
    ],
    ids=repr,
)
def test_arch_from_json_malformed(data: object) -> None:
    with pytest.raises(ConfigError):
        Arch.from_json(data)  # type: ignore[arg-type]


def test_arch_from_json_non_string_choice() -> None:
    with pytest.raises(ConfigError):
        Arch.from_json({"widths": [8, 16], "layers": [[3], [3]]})


def test_arch_describe() -> None:
    arch = Arch((8, 24), ((Choice(3, 1),), (Choice(5, 3),)))
    assert arch.describe() == "8:[k3_e1] 24:[k5_e3]"


# -- LayerwiseSpace ---------------------------------------------------------------------------


@pytest.fixture
def micro():
    return get_space(MICRO, DIGITS_SHAPE, DIGITS_CLASSES)


@pytest.fixture
def lite():
    return get_space("fbnet-lite", (1, 28, 28), 10)


def test_micro_space_shape(micro) -> None:
    assert len(micro.all_keys()) == 21  # what the profiler measures for digits
    assert micro.size() == 2 * 3 * 2 * 3
    assert micro.stem_stride == 1  # 8 px < 16
    assert all(k.kind in ("stem", "mbconv", "head") for k in micro.all_keys())


def test_validate_accepts_samples(micro, lite) -> None:
    rng = random.Random(0)
    for space in (micro, lite):
        for _ in range(20):
            space.validate(space.sample(rng))


def test_validate_rejects_wrong_width(micro) -> None:
    with pytest.raises(ConfigError, match=r"stage 0 width 12 not in \(8, 16\)"):
        micro.validate(Arch((12, 16), ((Choice(3, 1),), (Choice(3, 1),))))
    with pytest.raises(ConfigError, match="stage 1 width 8"):
        micro.validate(Arch((8, 8), ((Choice(3, 1),), (Choice(3, 1),))))


def test_validate_rejects_wrong_stage_and_layer_counts(micro) -> None:
    with pytest.raises(ConfigError, match="arch has 1 stages; space fbnet-micro has 2"):
        micro.validate(Arch((8,), ((Choice(3, 1),),)))
    with pytest.raises(ConfigError, match="stage 0 has 2 layers, space needs 1"):
        micro.validate(Arch((8, 16), ((Choice(3, 1), Choice(3, 1)), (Choice(3, 1),))))


def test_validate_rejects_skip_in_first_layer(lite) -> None:
    ok = Arch((8, 16, 32), ((Choice(3, 1), SKIP), (Choice(3, 1), SKIP), (Choice(3, 1), SKIP)))
    lite.validate(ok)  # skip is allowed after the first layer of a stage
    bad = Arch((8, 16, 32), ((Choice(3, 1), SKIP), (SKIP, Choice(3, 1)), (Choice(3, 1), SKIP)))
    with pytest.raises(ConfigError, match="stage 1 layer 0: skip is not allowed there"):
        lite.validate(bad)
    with pytest.raises(ConfigError):
        lite.build(bad)
    with pytest.raises(ConfigError):
        lite.blocks(bad)


def test_validate_rejects_choice_outside_space(micro) -> None:
    with pytest.raises(ConfigError, match="k7_e6 is not allowed"):
        micro.validate(Arch((8, 16), ((Choice(7, 6),), (Choice(3, 1),))))
    with pytest.raises(ConfigError, match="skip is not allowed"):  # micro has no skip at all
        micro.validate(Arch((8, 16), ((Choice(3, 1),), (SKIP,))))


def test_skip_contributes_no_block(lite) -> None:
    with_skip = Arch(
        (8, 16, 32), ((Choice(3, 1), SKIP), (Choice(3, 1), SKIP), (Choice(3, 1), SKIP))
    )
    without = Arch(
        (8, 16, 32),
        ((Choice(3, 1), Choice(3, 1)), (Choice(3, 1), Choice(3, 1)), (Choice(3, 1), Choice(3, 1))),
    )
    assert len(lite.blocks(with_skip)) == 1 + 3 + 1
    assert len(lite.blocks(without)) == 1 + 6 + 1
    assert len(lite.build(with_skip).blocks) == 3


@pytest.mark.parametrize(
    ("shape", "stem_stride", "head_hw"),
    [
        ((3, 32, 32), 2, (4, 4)),
        ((1, 5, 7), 1, (2, 2)),
        ((1, 28, 28), 2, (4, 4)),
        ((1, 8, 8), 1, (2, 2)),
    ],
)
def test_space_for_other_shapes(shape: tuple[int, int, int], stem_stride: int, head_hw) -> None:
    space = get_space("fbnet-lite", shape, 7)
    assert space.stem_stride == stem_stride
    rng = random.Random(1)
    for _ in range(5):
        arch = space.sample(rng)
        model = space.build(arch).eval()
        with torch.no_grad():
            out = model(torch.rand(3, *shape))
        assert out.shape == (3, 7)
        keys = space.blocks(arch)
        assert model.op_keys(shape[1:]) == keys
        assert keys[0] == OpKey("stem", shape[0], 0, 8, shape[1], shape[2], 3, stem_stride)
        head = keys[-1]
        assert head.kind == "head" and (head.h, head.w) == head_hw and head.cout == 7
        assert set(keys) <= space.all_keys()


def test_space_rejects_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="input_shape"):
        get_space(MICRO, (1, 0, 8), 10)
    with pytest.raises(ConfigError, match="input_shape"):
        get_space(MICRO, (8, 8), 10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="num_classes"):
        get_space(MICRO, (1, 8, 8), 1)


def test_cheapest_is_exact(micro) -> None:
    # A cost that favours a specific arch: the exhaustive answer must be found.
    target = Arch((16, 24), ((Choice(5, 3),), (Choice(3, 3),)))
    wanted = set(micro.blocks(target))

    def cost(key: OpKey) -> float:
        return 0.0 if key in wanted else 1.0

    assert micro.cheapest(cost) == target


@pytest.mark.parametrize("space_name", ["fbnet-micro", "fbnet-lite"])
def test_block_for_key_matches_every_key(space_name: str) -> None:
    space = get_space(space_name, (1, 28, 28), 10)
    keys = sorted(space.all_keys())
    assert keys
    for key in keys[:: max(1, len(keys) // 30)]:  # every kind, about 30 keys
        block = block_for_key(key).eval()
        assert block.op_key(key.h, key.w) == key
        if key.kind == "mbconv":
            assert isinstance(block, MBConv)
            assert block.residual == key.residual
        with torch.no_grad():
            y = block(torch.rand(1, key.cin, key.h, key.w))
        if key.kind == "head":
            assert y.shape == (1, key.cout)
        else:
            assert y.shape == (1, key.cout, *key.out_hw)


def test_block_for_pruned_key() -> None:
    # A key no space lists (a pruned hidden width) still builds with exactly its shapes.
    key = OpKey("mbconv", 8, 12, 16, 8, 8, 5, 2)
    block = block_for_key(key)
    assert block.op_key(8, 8) == key
    assert block(torch.rand(1, 8, 8, 8)).shape == (1, 16, 4, 4)
