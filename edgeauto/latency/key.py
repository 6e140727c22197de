"""Typed keys of latency-table entries: one :class:`OpKey` per block with its input shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from edgeauto.errors import ConfigError

OpKind = Literal["stem", "mbconv", "head"]
OP_KINDS: tuple[str, ...] = ("stem", "mbconv", "head")


@dataclass(frozen=True, order=True)
class OpKey:
    """One block as the runtime sees it: kind, input shape and the shapes it produces.

    ``hidden`` is the expanded width of an inverted residual, or 0 when the block has no
    expansion conv (expansion 1); for ``stem`` and ``head`` it is 0. Pruned blocks have ordinary keys too, since
    the key is read from the block's actual tensors, not from the search space's choices.

    Example:
        >>> OpKey("mbconv", cin=16, hidden=96, cout=24, h=14, w=14, kernel=3, stride=2)
        OpKey(kind='mbconv', cin=16, hidden=96, cout=24, h=14, w=14, kernel=3, stride=2, residual=False)
    """

    kind: str
    cin: int
    hidden: int
    cout: int
    h: int
    w: int
    kernel: int = 1
    stride: int = 1
    residual: bool = False

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise ConfigError(f"OpKey.kind must be one of {OP_KINDS}, got {self.kind!r}")
        for name in ("cin", "cout", "h", "w", "kernel", "stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"OpKey.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def out_hw(self) -> tuple[int, int]:
        """Spatial size of the block's output (``same`` padding, ceil division)."""
        return (-(-self.h // self.stride), -(-self.w // self.stride))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON object (no string encoding of the key)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpKey:
        """Inverse of :meth:`to_json`; unknown or missing fields raise :class:`ConfigError`."""
        names = {f.name for f in fields(cls)}
        extra = set(data) - names
        if extra:
            raise ConfigError(f"OpKey has no field(s) {sorted(extra)}; known: {sorted(names)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"OpKey JSON {data} is incomplete: {exc}") from exc

    def describe(self) -> str:
        """Short human-readable form for messages and reports."""
        if self.kind == "mbconv":
            return (
                f"mbconv k{self.kernel} {self.cin}->{self.hidden}->{self.cout} "
                f"s{self.stride} @{self.h}x{self.w}{' +res' if self.residual else ''}"
            )
        return (
            f"{self.kind} {self.cin}->{self.cout} k{self.kernel} s{self.stride} @{self.h}x{self.w}"
        )

    def distance(self, other: OpKey) -> float:
        """A rough dissimilarity used only to suggest the nearest measured keys."""
        if self.kind != other.kind:
            return float("inf")
        a, b = asdict(self), asdict(other)
        return sum(abs(float(a[k]) - float(b[k])) for k in a if k != "kind")
