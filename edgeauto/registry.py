"""A small generic registry, timm-style: ``@REG.register("name")`` and ``REG.names()``.

Tests parametrise over ``names()`` so that a component is tested the moment it registers.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from edgeauto.errors import UnknownComponent

T = TypeVar("T")


def suggest(name: str, choices: list[str]) -> str:
    """Return a 'did you mean' hint for ``name`` among ``choices`` (may be empty)."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.4)
    return f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""


class Registry(Generic[T]):
    """Maps unique names to components (classes or factories) of one role."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; duplicate names raise ``ValueError``."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.role} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the component named ``name`` or raise :class:`UnknownComponent`."""
        if name not in self._items:
            names = self.names()
            raise UnknownComponent(
                f"unknown {self.role} {name!r}; {suggest(name, names)}available: {', '.join(names)}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
