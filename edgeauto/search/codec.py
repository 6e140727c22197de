"""Architectures as decisions: what the SMBO surrogate encodes and how PNAS grows an arch.

A :class:`ArchCodec` lists a space's decisions (:class:`Slot`: a stage's width, depth, a
layer's block, the resolution), one-hot encodes an arch over them, and gives the three moves
progressive search needs: :meth:`~ArchCodec.simplify` (the same arch with the fewest blocks),
:meth:`~ArchCodec.grow` (every arch with exactly one block more, PNAS's "add a block") and
:meth:`~ArchCodec.neighbours` (every arch that differs in one decision).

Complexity is the number of searchable blocks (``skip`` layers and layers beyond a stage's
depth are not blocks), which is what PNAS orders its search by.
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgeauto.errors import ConfigError
from edgeauto.spaces.base import SKIP, Arch, Choice, SearchSpace
from edgeauto.spaces.layerwise import LayerwiseSpace
from edgeauto.spaces.staged import StagedSpace


@dataclass(frozen=True)
class Slot:
    """One decision of a space: a name and the values it may take (one-hot encoded)."""

    name: str
    options: tuple[Any, ...]


class ArchCodec(abc.ABC):
    """A space's decisions, and the moves of progressive search over them."""

    def __init__(self, space: SearchSpace, slots: list[Slot]) -> None:
        self.space = space
        self.slots = tuple(slots)
        self._offsets = list(itertools.accumulate([0] + [len(s.options) for s in slots]))

    @property
    def width(self) -> int:
        """Length of :meth:`encode`'s vector."""
        return self._offsets[-1]

    @abc.abstractmethod
    def values(self, arch: Arch) -> list[Any]:
        """One value per slot; ``None`` where the slot does not apply (a layer cut by depth)."""

    @abc.abstractmethod
    def simplify(self, arch: Arch) -> Arch:
        """``arch`` with every optional block removed (skip, shallowest depth)."""

    @abc.abstractmethod
    def grow(self, arch: Arch) -> list[Arch]:
        """Every arch equal to ``arch`` plus exactly one block."""

    @abc.abstractmethod
    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every arch that differs from ``arch`` in exactly one decision."""

    def complexity(self, arch: Arch) -> int:
        """Searchable blocks of ``arch`` (skips are not blocks)."""
        return sum(not c.is_skip for st in arch.layers for c in st)

    def encode(self, arch: Arch) -> list[float]:
        """One-hot per slot (all zeros where the slot does not apply)."""
        vec = [0.0] * self.width
        for k, (slot, value) in enumerate(zip(self.slots, self.values(arch))):
            if value is not None:
                vec[self._offsets[k] + slot.options.index(value)] = 1.0
        return vec


def _put(items: tuple[Any, ...], i: int, value: Any) -> tuple[Any, ...]:
    """``items`` with position ``i`` replaced by ``value``."""
    return (*items[:i], value, *items[i + 1 :])


class LayerwiseCodec(ArchCodec):
    """Decisions of a :class:`LayerwiseSpace`: each stage's width, each layer's block."""

    def __init__(self, space: LayerwiseSpace) -> None:
        slots = []
        for i, spec in enumerate(space.config.stages):
            slots.append(Slot(f"stage{i}.width", spec.widths))
            slots += [
                Slot(f"stage{i}.layer{j}", space.layer_choices(i, j)) for j in range(spec.layers)
            ]
        super().__init__(space, slots)
        self.lw = space

    def values(self, arch: Arch) -> list[Any]:
        return [v for w, st in zip(arch.widths, arch.layers) for v in (w, *st)]

    def _layers(self) -> Iterator[tuple[int, int]]:
        for i, spec in enumerate(self.lw.config.stages):
            yield from ((i, j) for j in range(spec.layers))

    def simplify(self, arch: Arch) -> Arch:
        layers = tuple(
            tuple(SKIP if SKIP in self.lw.layer_choices(i, j) else c for j, c in enumerate(st))
            for i, st in enumerate(arch.layers)
        )
        return Arch(arch.widths, layers)

    def grow(self, arch: Arch) -> list[Arch]:
        out = []
        for i, j in self._layers():
            if arch.layers[i][j].is_skip:
                for c in self.lw.layer_choices(i, j):
                    if not c.is_skip:
                        stage = _put(arch.layers[i], j, c)
                        out.append(Arch(arch.widths, _put(arch.layers, i, stage)))
        return out

    def neighbours(self, arch: Arch) -> list[Arch]:
        out = []
        for i, spec in enumerate(self.lw.config.stages):
            for w in spec.widths:
                if w != arch.widths[i]:
                    widths = _put(arch.widths, i, w)
                    out.append(Arch(widths, arch.layers))
        for i, j in self._layers():
            for c in self.lw.layer_choices(i, j):
                if c != arch.layers[i][j]:
                    stage = _put(arch.layers[i], j, c)
                    out.append(Arch(arch.widths, _put(arch.layers, i, stage)))
        return out


class StagedCodec(ArchCodec):
    """Decisions of a :class:`StagedSpace`: the resolution, each stage's depth and layers."""

    def __init__(self, space: StagedSpace) -> None:
        slots = [Slot("resolution", space.resolutions)] if space.searches_resolution else []
        for i, options in enumerate(space.depths):
            slots += [Slot(f"stage{i}.depth", options)] if len(options) > 1 else []
            slots += [
                Slot(f"stage{i}.layer{j}", space.layer_choices(i, j)) for j in range(max(options))
            ]
        super().__init__(space, slots)
        self.st = space

    def values(self, arch: Arch) -> list[Any]:
        out: list[Any] = [arch.resolution] if self.st.searches_resolution else []
        for i, options in enumerate(self.st.depths):
            out += [len(arch.layers[i])] if len(options) > 1 else []
            out += [
                arch.layers[i][j] if j < len(arch.layers[i]) else None for j in range(max(options))
            ]
        return out

    def _skip_or(self, i: int, j: int, c: Choice) -> Choice:
        return SKIP if SKIP in self.st.layer_choices(i, j) else c

    def simplify(self, arch: Arch) -> Arch:
        layers = tuple(
            tuple(self._skip_or(i, j, c) for j, c in enumerate(st[: min(self.st.depths[i])]))
            for i, st in enumerate(arch.layers)
        )
        return Arch(arch.widths, layers, arch.resolution)

    def _deeper(self, arch: Arch, i: int, fill: bool) -> list[Arch]:
        """Stage ``i`` one allowed depth deeper; the new layers take every non-skip block
        (``fill``) or the first block of their choices."""
        depth = len(arch.layers[i])
        deeper = [d for d in self.st.depths[i] if d > depth]
        if not deeper:
            return []
        new = range(depth, min(deeper))
        per_layer = [
            [c for c in self.st.layer_choices(i, j) if not c.is_skip][: None if fill else 1]
            for j in new
        ]
        return [
            Arch(
                arch.widths,
                _put(arch.layers, i, arch.layers[i] + tuple(extra)),
                arch.resolution,
            )
            for extra in itertools.product(*per_layer)
        ]

    def grow(self, arch: Arch) -> list[Arch]:
        out = []
        for i, stage in enumerate(arch.layers):
            for j, c in enumerate(stage):
                if c.is_skip:
                    for b in self.st.layer_choices(i, j):
                        if not b.is_skip:
                            new = _put(stage, j, b)
                            out.append(
                                Arch(arch.widths, _put(arch.layers, i, new), arch.resolution)
                            )
            out += self._deeper(arch, i, fill=True)
        return out

    def neighbours(self, arch: Arch) -> list[Arch]:
        out = [
            Arch(arch.widths, arch.layers, r)
            for r in (self.st.resolutions if self.st.searches_resolution else ())
            if r != arch.resolution
        ]
        for i, stage in enumerate(arch.layers):
            out += self._deeper(arch, i, fill=False)
            shallower = [d for d in self.st.depths[i] if d < len(stage)]
            if shallower:
                cut = _put(arch.layers, i, stage[: max(shallower)])
                out.append(Arch(arch.widths, cut, arch.resolution))
            for j, c in enumerate(stage):
                for b in self.st.layer_choices(i, j):
                    if b != c:
                        new = _put(arch.layers, i, _put(stage, j, b))
                        out.append(Arch(arch.widths, new, arch.resolution))
        return out


def codec_for(space: SearchSpace) -> ArchCodec:
    """The codec of ``space``'s family; :class:`ConfigError` for a space with none."""
    if isinstance(space, LayerwiseSpace):
        return LayerwiseCodec(space)
    if isinstance(space, StagedSpace):
        return StagedCodec(space)
    raise ConfigError(
        f"space {space.name} ({type(space).__name__}) has no arch codec, which the smbo "
        "strategy needs; use a layer-wise or staged space, or --strategy evolution"
    )
