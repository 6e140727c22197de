"""Search-space nouns: :class:`Choice`, :class:`Arch` and the :class:`SearchSpace` role."""

from __future__ import annotations

import abc
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from edgeauto.errors import ConfigError
from edgeauto.spaces.key import OpKey

Cost = Callable[[OpKey], float]


@dataclass(frozen=True, order=True)
class Choice:
    """One candidate block of a searchable layer: an inverted residual or ``skip``.

    ``skip`` is ``Choice(0, 0)``; ``groups`` > 1 means grouped 1x1 convs with a channel
    shuffle (FBNet's ``k3_e1_g2``). Names round-trip through :meth:`parse`.
    """

    kernel: int
    expansion: int
    groups: int = 1

    @property
    def is_skip(self) -> bool:
        return self.kernel == 0

    @property
    def name(self) -> str:
        if self.is_skip:
            return "skip"
        group = f"_g{self.groups}" if self.groups > 1 else ""
        return f"k{self.kernel}_e{self.expansion}{group}"

    @classmethod
    def parse(cls, name: str) -> Choice:
        """Parse ``'k3_e6'``, ``'k5_e1_g2'`` or ``'skip'``; else :class:`ConfigError`."""
        if name == "skip":
            return SKIP
        if not isinstance(name, str):
            raise ConfigError(
                f"block choice {name!r} is a {type(name).__name__}, not a name; write it as "
                "'k<kernel>_e<expansion>' or 'skip'"
            )
        try:
            parts = name.split("_")
            k, e, *g = parts
            if k[0] != "k" or e[0] != "e" or len(g) > 1 or (g and g[0][0] != "g"):
                raise ValueError(name)
            groups = int(g[0][1:]) if g else 1
            if groups < 2 and g:
                raise ValueError(name)  # '_g1' is spelled without the suffix
            return cls(int(k[1:]), int(e[1:]), groups)
        except (ValueError, IndexError):
            raise ConfigError(
                f"block choice {name!r} is not of the form 'k<kernel>_e<expansion>' or 'skip' "
                "(grouped: 'k<kernel>_e<expansion>_g<groups>')"
            ) from None


SKIP = Choice(0, 0)


@dataclass(frozen=True)
class Arch:
    """An architecture: one width per stage, one :class:`Choice` per layer, a resolution.

    Plain, hashable data with a JSON round trip. ``resolution`` is the side of the square
    image the network runs at, for spaces that search it (``ofa-mbv3``); 0 means the space
    does not search it and the network runs at the data's size.

    Example:
        >>> a = Arch((8, 16), ((Choice(3, 1),), (Choice(5, 3),)))
        >>> Arch.from_json(a.to_json()) == a
        True
    """

    widths: tuple[int, ...]
    layers: tuple[tuple[Choice, ...], ...]
    resolution: int = 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "widths": list(self.widths),
            "layers": [[c.name for c in st] for st in self.layers],
        }
        if self.resolution:
            data["resolution"] = self.resolution
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Arch:
        """Inverse of :meth:`to_json`; malformed input raises :class:`ConfigError`."""
        if not isinstance(data, dict) or set(data) - {"widths", "layers", "resolution"}:
            raise ConfigError(
                f"arch JSON must be an object with 'widths', 'layers' and optionally "
                f"'resolution', got {_short(data)}; fix the arch record"
            )
        try:
            widths = tuple(_int_field(w, "widths") for w in _list_field(data, "widths"))
            stages = _list_field(data, "layers")
            layers = tuple(tuple(Choice.parse(n) for n in _list(st, "layers")) for st in stages)
            resolution = _int_field(data.get("resolution", 0), "resolution")
        except KeyError as exc:
            raise ConfigError(f"arch JSON has no field {exc}; fix the arch record") from None
        if len(widths) != len(layers):
            raise ConfigError(
                f"arch JSON has {len(widths)} 'widths' but {len(layers)} stages of 'layers'; "
                "give one width per stage"
            )
        return cls(widths, layers, resolution)

    def describe(self) -> str:
        stages = (
            f"{w}:[{','.join(c.name for c in st)}]" for w, st in zip(self.widths, self.layers)
        )
        return (f"r{self.resolution} " if self.resolution else "") + " ".join(stages)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _list(value: object, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"arch JSON field {name!r} must be a list, got {_short(value)}")
    return value


def _list_field(data: dict[str, Any], name: str) -> list[Any]:
    return _list(data[name], name)


def _int_field(value: object, name: str) -> int:
    """A non-negative JSON integer (not a bool, float or string): the round trip is exact."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"arch JSON field {name!r} must hold non-negative integers, got {_short(value)}; "
            "fix the arch record"
        )
    return value


class SearchSpace(abc.ABC):
    """The only code that knows a network's structure.

    Subclasses build modules from :class:`Arch` values and list each block's :class:`OpKey`.
    """

    name: str = "abstract"
    input_shape: tuple[int, int, int]
    num_classes: int

    @abc.abstractmethod
    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random valid architecture."""

    @abc.abstractmethod
    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """A neighbour of ``arch`` that differs in one decision."""

    @abc.abstractmethod
    def validate(self, arch: Arch) -> None:
        """Raise :class:`ConfigError` if ``arch`` is not a member of this space."""

    @abc.abstractmethod
    def blocks(self, arch: Arch) -> list[OpKey]:
        """The keys of every block of ``arch``, in forward order (skips contribute none)."""

    @abc.abstractmethod
    def build(self, arch: Arch) -> nn.Module:
        """A freshly initialised ``nn.Module`` for ``arch``."""

    @abc.abstractmethod
    def all_keys(self) -> set[OpKey]:
        """Every key any architecture of the space can produce (what a table builder measures)."""

    @abc.abstractmethod
    def cheapest(self, cost: Cost) -> Arch:
        """The architecture with the smallest summed ``cost`` over its blocks (exact)."""

    def cost(self, arch: Arch, cost: Cost) -> float:
        """Sum of ``cost`` over the blocks of ``arch``."""
        return sum(cost(k) for k in self.blocks(arch))
