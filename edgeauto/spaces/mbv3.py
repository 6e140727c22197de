"""``ofa-mbv3``: the Once-for-All MobileNetV3 space (Cai et al., ICLR 2020).

Layout as OFA's ``OFAMobileNetV3``: a 3x3 stride-2 h-swish stem, a fixed 3x3 depthwise
block with expansion 1, five stages (strides 2, 2, 2, 1, 2; ReLU in the first two, h-swish
after; squeeze-excite in stages 2, 4 and 5, as MobileNetV3-Large), then a 1x1 final expand
conv, global pooling, a 1x1 feature-mix layer and the classifier. Searched: kernel 3/5/7 and
expansion 3/4/6 per layer, depth 2-4 per stage, and the resolution 160-224 in steps of 4.

Widths use OFA's released width multiplier 1.2 (stem 24, stages 32/48/96/136/192, final
expand 1152, feature 1536; base widths 16/24/40/80/112/160/960/1280 x 1.2, rounded to
multiples of 8): OFA's published Samsung Note10 latency tables were measured for that
network (``ofa_mbv3_d234_e346_k357_w1.2``), so these widths make its keys ours.

Resolution: the network runs at the arch's resolution whatever the data's size. A dataset
of another size (28x28 MNIST) is resized bilinearly inside the network by its first block,
which has its own ``resize`` key, so the latency model sees every op the model runs and the
stages run at exactly the shapes OFA measured. Data already at the resolution skip it.
"""

from __future__ import annotations

from edgeauto.spaces.base import Choice
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.modules import make_divisible
from edgeauto.spaces.staged import StagedSpace

BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
WIDTH_MULT = 1.2
STRIDES = (2, 2, 2, 1, 2)
ACTS = ("relu", "relu", "hswish", "hswish", "hswish")
SE = (False, True, False, True, True)
KERNELS = (3, 5, 7)
EXPANSIONS = (3, 4, 6)
DEPTHS = (2, 3, 4)
RESOLUTIONS = tuple(range(160, 225, 4))
CHOICES = tuple(Choice(k, e) for k in KERNELS for e in EXPANSIONS)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class OFAMobileNetV3Space(StagedSpace):
    """OFA's MobileNetV3 space at width 1.2 (see the module docstring)."""

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, name: str = "ofa-mbv3"
    ) -> None:
        super().__init__(name, input_shape, num_classes)
        w = [make_divisible(b * WIDTH_MULT) for b in BASE_WIDTHS]
        self.stem_width, self.first_width = w[0], w[1]
        self.widths = tuple(w[2:7])
        self.final_width, self.feature_width = w[7], w[8]
        self.depths = (DEPTHS,) * len(self.widths)
        self.resolutions = RESOLUTIONS

    def layer_choices(self, stage: int, layer: int) -> tuple[Choice, ...]:
        return CHOICES

    def _stage_hw(self, res: int, stage: int) -> int:
        """Feature size at the input of ``stage`` (after the stem's stride 2)."""
        size = _ceil_div(res, 2)
        for s in STRIDES[:stage]:
            size = _ceil_div(size, s)
        return size

    def layer_key(self, res: int, stage: int, layer: int, choice: Choice) -> OpKey:
        first = layer == 0
        cin = (
            (self.widths[stage - 1] if stage else self.first_width) if first else self.widths[stage]
        )
        cout = self.widths[stage]
        stride = STRIDES[stage] if first else 1
        hw = self._stage_hw(res, stage) if first else self._stage_hw(res, stage + 1)
        hidden = make_divisible(cin * choice.expansion)
        return OpKey(
            "mbconv", cin, hidden, cout, hw, hw, choice.kernel, stride,
            residual=stride == 1 and cin == cout, se=SE[stage], act=ACTS[stage],
        )  # fmt: skip

    def prefix_keys(self, res: int) -> list[OpKey]:
        c = self.input_shape[0]
        half = _ceil_div(res, 2)
        stem = OpKey("stem", c, 0, self.stem_width, res, res, 3, 2, act="hswish")
        first = OpKey(
            "mbconv", self.stem_width, 0, self.first_width, half, half, 3, 1,
            residual=self.stem_width == self.first_width, act="relu",
        )  # fmt: skip
        return [*self.resize_keys(res), stem, first]

    def suffix_keys(self, res: int) -> list[OpKey]:
        hw = self._stage_hw(res, len(self.widths))
        last = self.widths[-1]
        return [
            OpKey("conv", last, 0, self.final_width, hw, hw, 1, 1, act="hswish"),
            OpKey("pool", self.final_width, 0, self.final_width, hw, hw),
            OpKey("linear", self.final_width, 0, self.feature_width, 1, 1, act="hswish"),
            OpKey("linear", self.feature_width, 0, self.num_classes, 1, 1, act="none"),
        ]
