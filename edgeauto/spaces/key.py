"""Typed keys of latency-table entries: one :class:`OpKey` per block with its input shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from edgeauto.errors import ConfigError

OpKind = Literal["stem", "mbconv", "head", "conv", "pool", "linear", "resize"]
OP_KINDS: tuple[str, ...] = ("stem", "mbconv", "head", "conv", "pool", "linear", "resize")
#: Activations a block's convs may use. ``relu6`` is what the layer-wise spaces' blocks run.
ACTIVATIONS: tuple[str, ...] = ("relu6", "relu", "hswish", "none")
#: Fields added after the first tables were written, with the defaults that describe the
#: blocks of those tables. :meth:`OpKey.to_json` leaves them out at their defaults, so the
#: JSON (and content hash) of every earlier table is unchanged.
EXTENSION_DEFAULTS: dict[str, Any] = {"se": False, "act": "relu6", "groups": 1, "out_size": 0}
_SPATIAL_ONE = ("pool", "linear")  # kinds whose output is 1x1 whatever their input


@dataclass(frozen=True, order=True)
class OpKey:
    """One block as the runtime sees it: kind, input shape and the shapes it produces.

    ``hidden`` is the expanded width of an inverted residual, or 0 when the block has no
    expansion conv; for the other kinds it is 0. Pruned blocks have ordinary keys too, since
    the key is read from the block's actual tensors, not from the search space's choices.

    Kinds: ``stem`` (first kxk conv + BN + act), ``mbconv`` (inverted residual, optionally
    with squeeze-excite ``se`` and grouped 1x1 convs ``groups``), ``head`` (global average
    pool + linear), ``conv`` (kxk conv + BN + act, e.g. MobileNetV3's final expand),
    ``pool`` (global average pool to 1x1), ``linear`` (fully connected on a 1x1 input, with
    ``act``) and ``resize`` (bilinear resize of the input to ``out_size`` x ``out_size``).

    Example:
        >>> OpKey("mbconv", cin=16, hidden=96, cout=24, h=14, w=14, kernel=3, stride=2)
        OpKey(kind='mbconv', cin=16, hidden=96, cout=24, h=14, w=14, kernel=3, stride=2, \
residual=False, se=False, act='relu6', groups=1, out_size=0)
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
    se: bool = False
    act: str = "relu6"
    groups: int = 1
    out_size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise ConfigError(f"OpKey.kind must be one of {OP_KINDS}, got {self.kind!r}")
        for name in ("cin", "cout", "h", "w", "kernel", "stride", "groups"):
            if getattr(self, name) < 1:
                raise ConfigError(f"OpKey.{name} must be >= 1, got {getattr(self, name)}")
        if self.act not in ACTIVATIONS:
            raise ConfigError(f"OpKey.act must be one of {ACTIVATIONS}, got {self.act!r}")
        if (self.kind == "resize") != (self.out_size >= 1):
            raise ConfigError(
                f"OpKey.out_size must be >= 1 for a resize and 0 otherwise, got {self.out_size} "
                f"for kind {self.kind!r}"
            )

    @property
    def out_hw(self) -> tuple[int, int]:
        """Spatial size of the block's output (``same`` padding, ceil division)."""
        if self.kind == "resize":
            return (self.out_size, self.out_size)
        if self.kind in _SPATIAL_ONE:
            return (1, 1)
        return (-(-self.h // self.stride), -(-self.w // self.stride))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON object (no string encoding of the key); later fields only when set."""
        data = asdict(self)
        return {
            k: v
            for k, v in data.items()
            if k not in EXTENSION_DEFAULTS or v != EXTENSION_DEFAULTS[k]
        }

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
            core = (
                f"mbconv k{self.kernel} {self.cin}->{self.hidden}->{self.cout} "
                f"s{self.stride} @{self.h}x{self.w}"
            )
        elif self.kind == "resize":
            core = f"resize {self.cin} {self.h}x{self.w}->{self.out_size}x{self.out_size}"
        elif self.kind == "pool":
            core = f"pool {self.cin} @{self.h}x{self.w}"
        elif self.kind == "linear":
            core = f"linear {self.cin}->{self.cout}"
        else:
            core = (
                f"{self.kind} {self.cin}->{self.cout} k{self.kernel} s{self.stride} "
                f"@{self.h}x{self.w}"
            )
        return core + self._extras()

    def _extras(self) -> str:
        """The flags that differ from a plain block, in a fixed order."""
        out = " +res" if self.residual else ""
        out += " +se" if self.se else ""
        out += f" g{self.groups}" if self.groups > 1 else ""
        return out + (f" {self.act}" if self.act != "relu6" else "")

    def distance(self, other: OpKey) -> float:
        """A rough dissimilarity used only to suggest the nearest measured keys."""
        if self.kind != other.kind:
            return float("inf")
        a, b = asdict(self), asdict(other)
        total = 0.0
        for name in a:
            if name == "kind":
                continue
            if isinstance(a[name], str):  # act: a different activation is far, not close
                total += 0.0 if a[name] == b[name] else 1000.0
            else:
                total += abs(float(a[name]) - float(b[name]))
        return total
