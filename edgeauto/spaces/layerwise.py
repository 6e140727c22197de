"""FBNet/MobileNetV2-style layer-wise space: each layer picks a block, each stage a width."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from edgeauto.errors import ConfigError
from edgeauto.spaces.base import SKIP, Arch, Choice, Cost, SearchSpace
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.modules import Head, MBConv, Net, Stem, hidden_width


@dataclass(frozen=True)
class StageSpec:
    """A stage: candidate widths, number of searchable layers, stride of its first layer."""

    widths: tuple[int, ...]
    layers: int
    stride: int


@dataclass(frozen=True)
class SpaceConfig:
    """Everything that defines a layer-wise space apart from the data's shape."""

    stem_width: int
    stages: tuple[StageSpec, ...]
    choices: tuple[Choice, ...]


class LayerwiseSpace(SearchSpace):
    """Stem, stages of searchable layers, pooling head, for any ``(C, H, W)`` and class count.

    The first layer of a stage changes width or stride, so it cannot be ``skip``; later layers
    can. The stem strides by 2 when the input is at least 16 pixels on its short side.
    """

    def __init__(
        self, name: str, config: SpaceConfig, input_shape: tuple[int, int, int], num_classes: int
    ) -> None:
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ConfigError(
                f"input_shape must be (C, H, W) with positive sizes, got {input_shape}"
            )
        if num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
        self.name = name
        self.config = config
        self.input_shape = tuple(int(v) for v in input_shape)  # type: ignore[assignment]
        self.num_classes = int(num_classes)
        self.stem_stride = 2 if min(input_shape[1:]) >= 16 else 1

    # -- membership -----------------------------------------------------------------------
    def layer_choices(self, stage: int, layer: int) -> tuple[Choice, ...]:
        """Candidates of one layer (``skip`` only where shapes allow)."""
        blocks = tuple(c for c in self.config.choices if not c.is_skip)
        return blocks + ((SKIP,) if layer > 0 and SKIP in self.config.choices else ())

    def validate(self, arch: Arch) -> None:
        stages = self.config.stages
        if len(arch.widths) != len(stages) or len(arch.layers) != len(stages):
            raise ConfigError(
                f"arch has {len(arch.widths)} stages; space {self.name} has {len(stages)}"
            )
        for i, (spec, width, layers) in enumerate(zip(stages, arch.widths, arch.layers)):
            if width not in spec.widths:
                raise ConfigError(f"stage {i} width {width} not in {spec.widths}")
            if len(layers) != spec.layers:
                raise ConfigError(f"stage {i} has {len(layers)} layers, space needs {spec.layers}")
            for j, choice in enumerate(layers):
                if choice not in self.layer_choices(i, j):
                    raise ConfigError(f"stage {i} layer {j}: {choice.name} is not allowed there")

    def sample(self, rng: random.Random) -> Arch:
        widths = tuple(rng.choice(s.widths) for s in self.config.stages)
        layers = tuple(
            tuple(rng.choice(self.layer_choices(i, j)) for j in range(s.layers))
            for i, s in enumerate(self.config.stages)
        )
        return Arch(widths, layers)

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        stage = rng.randrange(len(self.config.stages))
        spec = self.config.stages[stage]
        widths, layers = list(arch.widths), [list(st) for st in arch.layers]
        if rng.random() < 1 / (spec.layers + 1) and len(spec.widths) > 1:
            widths[stage] = rng.choice([w for w in spec.widths if w != widths[stage]])
        else:
            j = rng.randrange(spec.layers)
            others = [c for c in self.layer_choices(stage, j) if c != layers[stage][j]]
            layers[stage][j] = rng.choice(others) if others else layers[stage][j]
        return Arch(tuple(widths), tuple(tuple(st) for st in layers))

    def size(self) -> int:
        """Number of distinct architectures."""
        n = 1
        for i, s in enumerate(self.config.stages):
            n *= len(s.widths) * math.prod(len(self.layer_choices(i, j)) for j in range(s.layers))
        return n

    # -- structure ------------------------------------------------------------------------
    def _hw_after(self, n_stages: int) -> tuple[int, int]:
        h, w = (-(-d // self.stem_stride) for d in self.input_shape[1:])
        for spec in self.config.stages[:n_stages]:
            h, w = -(-h // spec.stride), -(-w // spec.stride)
        return h, w

    def layer_key(self, stage: int, layer: int, cin: int, cout: int, c: Choice) -> OpKey:
        """Key of layer ``layer`` of ``stage`` as ``c`` from ``cin`` to ``cout`` channels."""
        stride = self.config.stages[stage].stride if layer == 0 else 1
        h, w = self._hw_after(stage) if layer == 0 else self._hw_after(stage + 1)
        hidden = hidden_width(cin, c.expansion)
        res = stride == 1 and cin == cout
        return OpKey("mbconv", cin, hidden, cout, h, w, c.kernel, stride, res)

    def stem_key(self) -> OpKey:
        """Key of the stem (fixed in this space)."""
        c, h, w = self.input_shape
        return OpKey("stem", c, 0, self.config.stem_width, h, w, 3, self.stem_stride)

    def head_key(self, cin: int) -> OpKey:
        """Key of the pooling head on ``cin`` channels."""
        h, w = self._hw_after(len(self.config.stages))
        return OpKey("head", cin, 0, self.num_classes, h, w)

    def blocks(self, arch: Arch) -> list[OpKey]:
        self.validate(arch)
        keys, cin = [self.stem_key()], self.config.stem_width
        for i, (width, layers) in enumerate(zip(arch.widths, arch.layers)):
            for j, choice in enumerate(layers):
                if not choice.is_skip:
                    keys.append(self.layer_key(i, j, cin if j == 0 else width, width, choice))
            cin = width
        return [*keys, self.head_key(cin)]

    def build(self, arch: Arch) -> Net:
        self.validate(arch)
        stem = Stem(self.input_shape[0], self.config.stem_width, self.stem_stride)
        blocks, cin = [], self.config.stem_width
        for spec, width, layers in zip(self.config.stages, arch.widths, arch.layers):
            for j, c in enumerate(layers):
                if not c.is_skip:
                    stride = spec.stride if j == 0 else 1
                    hidden = hidden_width(cin, c.expansion)
                    blocks.append(MBConv(cin, width, c.kernel, stride, hidden))
                cin = width
        return Net(stem, blocks, Head(cin, self.num_classes))

    def all_keys(self) -> set[OpKey]:
        keys = {self.stem_key()}
        prev_widths: tuple[int, ...] = (self.config.stem_width,)
        for i, spec in enumerate(self.config.stages):
            for w, c in itertools.product(spec.widths, self.layer_choices(i, 0)):
                keys.update(self.layer_key(i, 0, p, w, c) for p in prev_widths)
            for j in range(1, spec.layers):
                for w, c in itertools.product(spec.widths, self.layer_choices(i, j)):
                    if not c.is_skip:
                        keys.add(self.layer_key(i, j, w, w, c))
            prev_widths = spec.widths
        return keys | {self.head_key(w) for w in prev_widths}

    def cheapest(self, cost: Cost) -> Arch:
        best: tuple[float, Arch] | None = None
        for widths in itertools.product(*(s.widths for s in self.config.stages)):
            layers, cin = [], self.config.stem_width
            for i, (spec, w) in enumerate(zip(self.config.stages, widths)):
                layers.append(
                    tuple(self._cheapest_choice(i, j, cin, w, cost) for j in range(spec.layers))
                )
                cin = w
            arch = Arch(widths, tuple(layers))
            total = self.cost(arch, cost)
            if best is None or total < best[0]:
                best = (total, arch)
        assert best is not None  # a space always has at least one width per stage
        return best[1]

    def _cheapest_choice(self, i: int, j: int, cin: int, w: int, cost: Cost) -> Choice:
        def c_of(c: Choice) -> float:
            return 0.0 if c.is_skip else cost(self.layer_key(i, j, cin if j == 0 else w, w, c))

        return min(self.layer_choices(i, j), key=c_of)
