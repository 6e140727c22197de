"""``fbnet-cifar``: FBNet's supernet (Wu et al., CVPR 2019) at CIFAR's 32x32, as jh88/fbnet.

The layout is the one the public Raspberry Pi 4 table (``lookup_table_pi.json`` of jh88/fbnet)
was measured for: a 3x3 stride-1 stem to 16 channels (conv + BN, no activation), 22 searchable
layers in 7 stages of widths 16/24/32/64/112/184/352 with 1/4/4/4/4/4/1 layers and strides
1/2/2/1/1/1/1, a 1x1 conv to 1984 channels (conv + BN), global pooling and the classifier.
Each layer picks one of FBNet's 9 candidates, in the paper's order :data:`CANDIDATES`:
k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip. ``skip`` is allowed
where the shapes allow an identity (stride 1 and equal widths), as in the table. Blocks are
FBNet's: a 1x1 expansion conv even at expansion 1, ReLU, and for ``_g2`` grouped 1x1 convs
with channel shuffles.

Inputs of another size (28x28 MNIST) are resized to 32x32 by the network's first block
(its own ``resize`` key); the resolution is not searched (``Arch.resolution`` is 0).
"""

from __future__ import annotations

from edgeauto.spaces.base import SKIP, Choice
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.staged import StagedSpace

WIDTHS = (16, 24, 32, 64, 112, 184, 352)
LAYERS = (1, 4, 4, 4, 4, 4, 1)
STRIDES = (1, 2, 2, 1, 1, 1, 1)
STEM_WIDTH = 16
HEAD_WIDTH = 1984
RESOLUTION = 32
#: The paper's candidate order: the order of each layer's list in the published tables.
CANDIDATES: tuple[Choice, ...] = (
    Choice(3, 1), Choice(3, 1, 2), Choice(3, 3), Choice(3, 6),
    Choice(5, 1), Choice(5, 1, 2), Choice(5, 3), Choice(5, 6), SKIP,
)  # fmt: skip


class FBNetCifarSpace(StagedSpace):
    """FBNet's 22-layer x 9-candidate space at 32x32 (see the module docstring)."""

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, name: str = "fbnet-cifar"
    ) -> None:
        super().__init__(name, input_shape, num_classes)
        self.widths = WIDTHS
        self.depths = tuple((n,) for n in LAYERS)
        self.resolutions = (RESOLUTION,)

    def searchable_layers(self) -> list[tuple[int, int]]:
        """``(stage, layer)`` of the 22 searchable layers, in network order."""
        return [(i, j) for i, n in enumerate(LAYERS) for j in range(n)]

    def _cin(self, stage: int, layer: int) -> int:
        if layer:
            return WIDTHS[stage]
        return WIDTHS[stage - 1] if stage else STEM_WIDTH

    def layer_choices(self, stage: int, layer: int) -> tuple[Choice, ...]:
        identity = self._stride(stage, layer) == 1 and self._cin(stage, layer) == WIDTHS[stage]
        return CANDIDATES if identity else CANDIDATES[:-1]

    def _stride(self, stage: int, layer: int) -> int:
        return STRIDES[stage] if layer == 0 else 1

    def _hw(self, stage: int, layer: int) -> int:
        """Input size of a layer: 32 halved by every stride before it."""
        size = RESOLUTION
        for s in STRIDES[: stage + (1 if layer else 0)]:
            size = -(-size // s)
        return size

    def layer_key(self, res: int, stage: int, layer: int, choice: Choice) -> OpKey:
        cin, cout, stride = self._cin(stage, layer), WIDTHS[stage], self._stride(stage, layer)
        hw = self._hw(stage, layer)
        return OpKey(
            "mbconv", cin, cin * choice.expansion, cout, hw, hw, choice.kernel, stride,
            residual=stride == 1 and cin == cout, act="relu", groups=choice.groups,
        )  # fmt: skip

    def prefix_keys(self, res: int) -> list[OpKey]:
        stem = OpKey("stem", self.input_shape[0], 0, STEM_WIDTH, res, res, 3, 1, act="none")
        return [*self.resize_keys(res), stem]

    def suffix_keys(self, res: int) -> list[OpKey]:
        hw = self._hw(len(WIDTHS), 0)
        return [
            OpKey("conv", WIDTHS[-1], 0, HEAD_WIDTH, hw, hw, 1, 1, act="none"),
            OpKey("head", HEAD_WIDTH, 0, self.num_classes, hw, hw),
        ]
