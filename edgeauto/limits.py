"""Budgets besides latency: parameters, model file size and peak activation memory.

Each is checked twice: on candidate archs during search (estimated from the block keys, so
no model is built), and on the final model (parameters counted, the ``.tflite`` file's real
size, peak activations measured). LiteRT does not report its arena size through the Python
API, so during search peak activation memory is an estimate (the largest set of tensors
alive at once inside one block, as TFLite's arena planner must hold them); the final model's
peak is measured through ONNX Runtime (:mod:`edgeauto.export.memory`) and that figure is
the one checked against ``--max-activation-kb``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from edgeauto.errors import ConfigError
from edgeauto.spaces.key import OpKey

FP32_BYTES = 4
#: a TFLite flatbuffer holds the weights plus a small graph; measured for fbnet-lite (~12 kB)
TFLITE_OVERHEAD_BYTES = 12_000


@dataclass(frozen=True)
class Limits:
    """Upper bounds beyond latency; ``None`` means unconstrained."""

    max_params: int | None = None
    max_size_kb: float | None = None
    max_activation_kb: float | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and not value > 0:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{name} must be > 0, got {value!r}; fix {flag}")

    @property
    def any(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def violations(self, fp: Footprint) -> list[str]:
        """One phrase per exceeded limit (empty when ``fp`` fits)."""
        peak = fp.peak_activation_bytes
        checks = [
            (self.max_params, fp.params, "parameters", "{:,.0f}"),
            (self.max_size_kb, fp.size_bytes / 1000, "model size kB", "{:.1f}"),
            (self.max_activation_kb, None if peak is None else peak / 1000,
             "peak activations kB", "{:.1f}"),
        ]  # fmt: skip
        out = []
        for limit, value, what, fmt in checks:
            if limit is not None and value is None:  # unknown never passes a limit silently
                out.append(f"{what} unknown (no estimate and no measurement)")
            elif limit is not None and value is not None and value > limit:
                out.append(f"{what} {fmt.format(value)} > {fmt.format(limit)}")
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Footprint:
    """Parameters, model file bytes and peak activation bytes of one model.

    ``activation_bytes`` is the block-level estimate (``None`` for a model without block
    keys, e.g. a user's own); ``measured_activation_bytes`` the runtime's figure, when the
    model was run. The measurement wins where both exist.
    """

    params: int
    size_bytes: int
    activation_bytes: int | None
    measured_activation_bytes: int | None = None

    @property
    def peak_activation_bytes(self) -> int | None:
        """The figure limits are checked against: measured when available, else estimated."""
        if self.measured_activation_bytes is not None:
            return self.measured_activation_bytes
        return self.activation_bytes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def key_params(key: OpKey) -> int:
    """Weights and biases of one block (BN folded into the convs, as the runtime sees it)."""
    if key.kind == "mbconv":
        expand = key.cin * key.hidden // key.groups + key.hidden if key.hidden else 0
        mid = key.hidden or key.cin
        se = 2 * mid * max(1, mid // 4) + mid + max(1, mid // 4) if key.se else 0
        return expand + mid * key.kernel**2 + mid + mid * key.cout // key.groups + key.cout + se
    if key.kind in ("stem", "conv"):
        return key.cin * key.cout * key.kernel**2 // key.groups + key.cout
    if key.kind in ("head", "linear"):
        return key.cin * key.cout + key.cout
    return 0


def key_activation_values(key: OpKey) -> int:
    """Values alive at once at the busiest op of the block (input kept for a residual)."""
    oh, ow = key.out_hw
    inp, out = key.cin * key.h * key.w, key.cout * (1 if key.kind == "head" else oh * ow)
    if key.kind != "mbconv":
        return inp + out
    keep = inp if key.residual else 0
    hid_in = (key.hidden or key.cin) * key.h * key.w  # the expansion's output
    hid_out = (key.hidden or key.cin) * oh * ow  # after the depthwise conv
    return max(inp + (hid_in if key.hidden else 0), keep + hid_in + hid_out, keep + hid_out + out)


def estimate(keys: Iterable[OpKey], bytes_per_value: int = FP32_BYTES) -> Footprint:
    """The footprint of a model made of ``keys``, without building it."""
    keys = list(keys)
    params = sum(key_params(k) for k in keys)
    peak = max((key_activation_values(k) for k in keys), default=0)
    return Footprint(params, params * bytes_per_value + TFLITE_OVERHEAD_BYTES,
                     peak * bytes_per_value)  # fmt: skip
