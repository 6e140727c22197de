"""Search spaces, registered by name. ``get_space(name, input_shape, num_classes)``."""

from __future__ import annotations

from collections.abc import Callable

from edgeauto.registry import Registry
from edgeauto.spaces.base import SKIP, Arch, Choice, SearchSpace
from edgeauto.spaces.fbnet_cifar import FBNetCifarSpace
from edgeauto.spaces.layerwise import LayerwiseSpace, SpaceConfig, StageSpec
from edgeauto.spaces.mbv3 import OFAMobileNetV3Space

SpaceFactory = Callable[[tuple[int, int, int], int], SearchSpace]
SPACES: Registry[SpaceFactory] = Registry("search space")

_BLOCKS = tuple(Choice(k, e) for k in (3, 5) for e in (1, 3, 6))

FBNET_LITE = SpaceConfig(
    stem_width=8,
    stages=(
        StageSpec(widths=(8, 16), layers=2, stride=1),
        StageSpec(widths=(16, 24, 32), layers=2, stride=2),
        StageSpec(widths=(32, 48, 64), layers=2, stride=2),
    ),
    choices=(*_BLOCKS, SKIP),
)
# A deliberately tiny space for tests and quick demos: 21 keys, profiled in seconds.
FBNET_MICRO = SpaceConfig(
    stem_width=8,
    stages=(StageSpec((8, 16), 1, 1), StageSpec((16, 24), 1, 2)),
    choices=(Choice(3, 1), Choice(3, 3), Choice(5, 3)),
)

# MobileNetV2-style for 32x32 RGB (CIFAR-sized): the stem strides to 16x16, where two stages
# keep the resolution, then two halve it and a last stage widens at 4x4. Expansion 1 is left
# out: with it the cheapest net falls to 0.6M MACs (0.015 ms on LiteRT, 1 thread, this host),
# far below any useful budget. Measured at 3x32x32 with LiteRT 1-thread on the dev host: the
# cheapest arch 2.8M MACs / 62k params, 0.065 ms; the largest 42M MACs / 1.3M params, 1.1 ms.
CIFAR_MBV2 = SpaceConfig(
    stem_width=16,
    stages=(
        StageSpec(widths=(16, 24), layers=1, stride=1),
        StageSpec(widths=(24, 32), layers=3, stride=1),
        StageSpec(widths=(32, 48, 64), layers=3, stride=2),
        StageSpec(widths=(64, 96, 128), layers=3, stride=2),
        StageSpec(widths=(128, 160), layers=2, stride=1),
    ),
    choices=(*(Choice(k, e) for k in (3, 5) for e in (3, 6)), SKIP),
)


def _factory(name: str, config: SpaceConfig) -> SpaceFactory:
    def make(input_shape: tuple[int, int, int], num_classes: int) -> SearchSpace:
        return LayerwiseSpace(name, config, input_shape, num_classes)

    make.__doc__ = f"Layer-wise space {name!r}."
    return make


SPACES.register("fbnet-lite")(_factory("fbnet-lite", FBNET_LITE))
SPACES.register("fbnet-micro")(_factory("fbnet-micro", FBNET_MICRO))
SPACES.register("cifar-mbv2")(_factory("cifar-mbv2", CIFAR_MBV2))
# The published tables' spaces (imported with `edgeauto lut import`).
SPACES.register("ofa-mbv3")(OFAMobileNetV3Space)
SPACES.register("fbnet-cifar")(FBNetCifarSpace)


def get_space(name: str, input_shape: tuple[int, int, int], num_classes: int) -> SearchSpace:
    """Instantiate the registered space ``name`` for the given data shape."""
    return SPACES.get(name)(input_shape, num_classes)


def list_spaces() -> list[str]:
    """Names of the registered search spaces."""
    return SPACES.names()


__all__ = [
    "SKIP", "SPACES", "Arch", "Choice", "FBNetCifarSpace", "LayerwiseSpace",
    "OFAMobileNetV3Space", "SearchSpace", "SpaceConfig", "StageSpec", "get_space", "list_spaces",
]  # fmt: skip
