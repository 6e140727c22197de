"""Spaces with fixed stage widths, elastic depth, a choice per layer and a resolution.

The published spaces (OFA's MobileNetV3, FBNet's CIFAR supernet) fix every stage's width, so a
layer's key depends only on the resolution, its stage and whether it opens the stage. The
searchable decisions are independent, which makes :meth:`StagedSpace.cheapest` exact by
per-layer minima. A network is built from its own keys (:func:`block_for_key`), so the model
and :meth:`StagedSpace.blocks` describe the same tensors by construction, and the
conformance suite checks it through the built modules.
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Iterator

from edgeauto.errors import ConfigError
from edgeauto.spaces.base import Arch, Choice, Cost, SearchSpace
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.modules import Chain, block_for_key


class StagedSpace(SearchSpace):
    """Fixed-width stages; per stage a depth, per layer a :class:`Choice`; a resolution.

    Subclasses give the structure: :attr:`widths`, :attr:`depths` (allowed depths per stage),
    :attr:`resolutions` (one value: not searched, ``Arch.resolution`` is 0) and the hooks
    :meth:`layer_choices`, :meth:`layer_key`, :meth:`prefix_keys` and :meth:`suffix_keys`.
    Inputs whose size differs from the resolution are resized inside the network (a
    ``resize`` key), so the blocks run at the shapes their latency tables were measured at.
    """

    widths: tuple[int, ...]
    depths: tuple[tuple[int, ...], ...]
    resolutions: tuple[int, ...]

    def __init__(self, name: str, input_shape: tuple[int, int, int], num_classes: int) -> None:
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ConfigError(
                f"input_shape must be (C, H, W) with positive sizes, got {input_shape}"
            )
        if num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
        self.name = name
        self.input_shape = tuple(int(v) for v in input_shape)  # type: ignore[assignment]
        self.num_classes = int(num_classes)

    # -- hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def layer_choices(self, stage: int, layer: int) -> tuple[Choice, ...]:
        """Candidates of one layer (``skip`` included where the shapes allow it)."""

    @abc.abstractmethod
    def layer_key(self, res: int, stage: int, layer: int, choice: Choice) -> OpKey:
        """The key of a non-skip ``choice`` at ``layer`` of ``stage`` for resolution ``res``."""

    @abc.abstractmethod
    def prefix_keys(self, res: int) -> list[OpKey]:
        """Fixed blocks before the first stage (resize, stem, ...)."""

    @abc.abstractmethod
    def suffix_keys(self, res: int) -> list[OpKey]:
        """Fixed blocks after the last stage (final convs, pooling, classifier)."""

    # -- shared helpers ---------------------------------------------------------------------
    @property
    def searches_resolution(self) -> bool:
        return len(self.resolutions) > 1

    def resolution_of(self, arch: Arch) -> int:
        """The side the network of ``arch`` runs at."""
        return arch.resolution if self.searches_resolution else self.resolutions[0]

    def resize_keys(self, res: int) -> list[OpKey]:
        """A ``resize`` key when the data's size differs from ``res``, else nothing."""
        c, h, w = self.input_shape
        if (h, w) == (res, res):
            return []
        return [OpKey("resize", c, 0, c, h, w, out_size=res)]

    def _arch_res(self) -> tuple[int, ...]:
        return self.resolutions if self.searches_resolution else (0,)

    # -- membership -------------------------------------------------------------------------
    def validate(self, arch: Arch) -> None:
        if arch.widths != self.widths:
            raise ConfigError(
                f"arch widths {arch.widths} differ from space {self.name}'s fixed {self.widths}"
            )
        if arch.resolution not in self._arch_res():
            raise ConfigError(
                f"arch resolution {arch.resolution} not in space {self.name}'s {self._arch_res()}"
            )
        if len(arch.layers) != len(self.widths):
            raise ConfigError(
                f"arch has {len(arch.layers)} stages; space {self.name} has {len(self.widths)}"
            )
        for i, layers in enumerate(arch.layers):
            if len(layers) not in self.depths[i]:
                raise ConfigError(f"stage {i} depth {len(layers)} not in {self.depths[i]}")
            for j, choice in enumerate(layers):
                if choice not in self.layer_choices(i, j):
                    raise ConfigError(f"stage {i} layer {j}: {choice.name} is not allowed there")

    def sample(self, rng: random.Random) -> Arch:
        res = rng.choice(self._arch_res())
        layers = []
        for i, options in enumerate(self.depths):
            depth = rng.choice(options)
            layers.append(tuple(rng.choice(self.layer_choices(i, j)) for j in range(depth)))
        return Arch(self.widths, tuple(layers), res)

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """Change one decision: the resolution, one stage's depth or one layer's choice."""
        layers = [list(st) for st in arch.layers]
        decisions = [("res", -1)] if self.searches_resolution else []
        decisions += [("depth", i) for i, d in enumerate(self.depths) if len(d) > 1]
        decisions += [("layer", i) for i in range(len(layers))]
        what, stage = rng.choice(decisions)
        res = arch.resolution
        if what == "res":
            res = rng.choice([r for r in self.resolutions if r != res])
        elif what == "depth":
            depth = rng.choice([d for d in self.depths[stage] if d != len(layers[stage])])
            kept = layers[stage][:depth]
            extra = [rng.choice(self.layer_choices(stage, j)) for j in range(len(kept), depth)]
            layers[stage] = kept + extra
        else:
            j = rng.randrange(len(layers[stage]))
            others = [c for c in self.layer_choices(stage, j) if c != layers[stage][j]]
            layers[stage][j] = rng.choice(others) if others else layers[stage][j]
        return Arch(arch.widths, tuple(tuple(st) for st in layers), res)

    def size(self) -> int:
        """Number of distinct architectures."""
        n = len(self._arch_res())
        for i, options in enumerate(self.depths):
            n *= sum(math.prod(len(self.layer_choices(i, j)) for j in range(d)) for d in options)
        return n

    # -- structure --------------------------------------------------------------------------
    def blocks(self, arch: Arch) -> list[OpKey]:
        self.validate(arch)
        res = self.resolution_of(arch)
        keys = self.prefix_keys(res)
        for i, layers in enumerate(arch.layers):
            keys += [self.layer_key(res, i, j, c) for j, c in enumerate(layers) if not c.is_skip]
        return keys + self.suffix_keys(res)

    def build(self, arch: Arch) -> Chain:
        return Chain([block_for_key(key) for key in self.blocks(arch)])

    def _layer_slots(self) -> Iterator[tuple[int, int]]:
        for i, options in enumerate(self.depths):
            yield from ((i, j) for j in range(max(options)))

    def keys_at(self, res: int) -> set[OpKey]:
        """Every key an architecture at resolution ``res`` can produce."""
        keys = set(self.prefix_keys(res) + self.suffix_keys(res))
        for i, j in self._layer_slots():
            keys.update(
                self.layer_key(res, i, j, c) for c in self.layer_choices(i, j) if not c.is_skip
            )
        return keys

    def all_keys(self) -> set[OpKey]:
        return set().union(*(self.keys_at(res) for res in self.resolutions))

    def cheapest(self, cost: Cost) -> Arch:
        best: tuple[float, Arch] | None = None
        for res in self._arch_res():
            r = res or self.resolutions[0]
            total = sum(cost(k) for k in self.prefix_keys(r) + self.suffix_keys(r))
            layers = []
            for i, options in enumerate(self.depths):
                picks = [self._cheapest_choice(r, i, j, cost) for j in range(max(options))]
                # the first d picks are the cheapest stage of depth d: choose the best d
                depth = min(options, key=lambda d, p=picks: sum(c for c, _ in p[:d]))
                total += sum(c for c, _ in picks[:depth])
                layers.append(tuple(choice for _, choice in picks[:depth]))
            if best is None or total < best[0]:
                best = (total, Arch(self.widths, tuple(layers), res))
        assert best is not None  # a space always has at least one resolution
        return best[1]

    def _cheapest_choice(self, res: int, i: int, j: int, cost: Cost) -> tuple[float, Choice]:
        def c_of(c: Choice) -> float:
            return 0.0 if c.is_skip else cost(self.layer_key(res, i, j, c))

        choice = min(self.layer_choices(i, j), key=c_of)
        return c_of(choice), choice
