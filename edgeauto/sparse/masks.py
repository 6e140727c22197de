"""Per-weight boolean masks over a model's conv and linear weights, and how to pick them.

A :class:`Masks` holds one ``bool`` tensor per masked parameter (``True`` = kept). Sparse
training zeroes the weights it masks after every optimizer step (:meth:`Masks.apply`), so a
pruned weight stays exactly zero whatever the optimizer's momentum or weight decay would do.
Masks are saved as a ``.pt`` of bool tensors (read with ``torch.load(weights_only=True)``) and
summarised as JSON (per-layer counts); the method's config and seed replay them exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeauto.errors import ConfigError
from edgeauto.fileio import atomic_path

MASKED = (nn.Conv2d, nn.Linear)


def maskable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights sparse training masks: every conv and linear weight, by parameter name."""
    out = {f"{name}.weight" if name else "weight": mod.weight for name, mod in model.named_modules()
           if isinstance(mod, MASKED)}  # fmt: skip
    if not out:
        raise ConfigError("sparse training needs a model with Conv2d or Linear layers; found none")
    return out


class Masks:
    """Boolean keep-masks by parameter name.

    Example:
        >>> masks = Masks.dense(model)
        >>> masks.apply(model)  # zero every masked-out weight
        >>> masks.sparsity  # fraction of masked weights that are zero
    """

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks = {k: v.to(torch.bool) for k, v in masks.items()}

    @classmethod
    def dense(cls, model: nn.Module) -> Masks:
        """All-true masks over ``model``'s maskable weights."""
        return cls({k: torch.ones_like(p, dtype=torch.bool) for k, p in maskable(model).items()})

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Zero the masked-out weights of ``model`` in place."""
        params = dict(model.named_parameters())
        for name, mask in self.masks.items():
            params[name].mul_(mask)

    @property
    def numel(self) -> int:
        return sum(m.numel() for m in self.masks.values())

    @property
    def zeros(self) -> int:
        return sum(int((~m).sum()) for m in self.masks.values())

    @property
    def sparsity(self) -> float:
        """Fraction of masked weights that are pruned (0 = dense)."""
        return self.zeros / max(1, self.numel)

    def layer_sparsity(self) -> dict[str, float]:
        return {k: float((~m).sum()) / m.numel() for k, m in self.masks.items()}

    def to_json(self) -> dict[str, Any]:
        """Counts per layer and overall (the masks themselves go to :meth:`save`)."""
        layers = {k: {"numel": m.numel(), "zeros": int((~m).sum())} for k, m in self.masks.items()}
        return {"sparsity": self.sparsity, "numel": self.numel, "zeros": self.zeros,
                "layers": layers}  # fmt: skip

    def save(self, path: str | Path) -> Path:
        """Write the bool tensors atomically (``torch.save`` of a dict of tensors, no pickle
        of objects: it loads with ``weights_only=True``)."""
        with atomic_path(Path(path)) as tmp:
            torch.save(dict(self.masks), tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, model: nn.Module | None = None) -> Masks:
        """Read masks saved by :meth:`save`; with ``model``, check names and shapes match."""
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except (OSError, RuntimeError) as exc:
            raise ConfigError(
                f"masks file {path}: cannot read it ({exc}); pass a masks .pt"
            ) from None
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) and v.dtype == torch.bool for v in state.values()
        ):
            raise ConfigError(f"masks file {path} is not a dict of bool tensors; pass a masks .pt")
        masks = cls(state)
        if model is not None:
            masks.check(model)
        return masks

    def check(self, model: nn.Module) -> None:
        """Raise :class:`ConfigError` when a mask has no weight of its name and shape."""
        params = dict(model.named_parameters())
        for name, mask in self.masks.items():
            if name not in params or params[name].shape != mask.shape:
                have = tuple(params[name].shape) if name in params else "missing"
                raise ConfigError(
                    f"mask {name!r} {tuple(mask.shape)} does not fit the model ({have}); "
                    "use masks made for this architecture"
                )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Masks) or self.masks.keys() != other.masks.keys():
            return False
        return all(torch.equal(m, other.masks[k]) for k, m in self.masks.items())

    __hash__ = None  # type: ignore[assignment]  # mutable tensors inside


def keep_global(scores: dict[str, torch.Tensor], sparsity: float) -> Masks:
    """Keep the ``round((1 - sparsity) * N)`` highest scores over all layers together.

    A stable sort breaks ties by position, so equal scores give the same mask every time.
    """
    flat = torch.cat([s.detach().flatten().float() for s in scores.values()])
    keep = flat.numel() - round(sparsity * flat.numel())
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.argsort(flat, descending=True, stable=True)[:keep]] = True
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = chosen[start : start + s.numel()].view_as(s)
        start += s.numel()
    return Masks(out)


def keep_per_layer(scores: dict[str, torch.Tensor], keep: dict[str, int]) -> Masks:
    """Keep exactly ``keep[name]`` highest scores in each layer."""
    out = {}
    for name, s in scores.items():
        flat = torch.zeros(s.numel(), dtype=torch.bool)
        flat[
            torch.argsort(s.detach().flatten().float(), descending=True, stable=True)[: keep[name]]
        ] = True
        out[name] = flat.view_as(s)
    return Masks(out)


def erk_densities(shapes: dict[str, torch.Size], density: float) -> dict[str, float]:
    """Erdős–Rényi-Kernel densities (Evci et al., RigL): layer density proportional to
    ``sum(shape) / prod(shape)``, scaled so the total kept count is ``density * N``; layers
    that would exceed 1 are made dense and the rest rescaled."""
    numel = {k: math.prod(s) for k, s in shapes.items()}
    raw = {k: sum(s) / numel[k] for k, s in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = density * sum(numel.values()) - sum(numel[k] for k in dense)
        eps = budget / max(1e-12, sum(raw[k] * numel[k] for k in raw if k not in dense))
        over = {k for k in raw if k not in dense and eps * raw[k] > 1.0}
        if not over:
            return {k: 1.0 if k in dense else eps * raw[k] for k in raw}
        dense |= over


def keep_counts(
    numel: dict[str, int], densities: dict[str, float], sparsity: float
) -> dict[str, int]:
    """Per-layer kept counts from densities, rounded so the total is exactly
    ``N - round(sparsity * N)`` (largest remainders get the spare weights)."""
    total = sum(numel.values())
    want = total - round(sparsity * total)
    exact = {k: min(numel[k], densities[k] * numel[k]) for k in numel}
    counts = {k: math.floor(v) for k, v in exact.items()}
    order = sorted(numel, key=lambda k: (counts[k] - exact[k], k))  # largest remainder first
    i = 0
    while sum(counts.values()) < want and i < 10 * len(order):
        k = order[i % len(order)]
        if counts[k] < numel[k]:
            counts[k] += 1
        i += 1
    return counts


def layer_densities(shapes: dict[str, torch.Size], sparsity: float, kind: str) -> dict[str, float]:
    """``erk`` or ``uniform`` (every layer at ``1 - sparsity``) densities per layer."""
    if kind == "uniform":
        return {k: 1.0 - sparsity for k in shapes}
    return erk_densities(shapes, 1.0 - sparsity)


def random_masks(model: nn.Module, sparsity: float, kind: str, seed: int) -> Masks:
    """Random masks with per-layer densities ``kind`` (``erk`` / ``uniform``), seeded."""
    params = maskable(model)
    shapes = {k: p.shape for k, p in params.items()}
    counts = keep_counts({k: p.numel() for k, p in params.items()},
                         layer_densities(shapes, sparsity, kind), sparsity)  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    scores = {k: torch.rand(p.shape, generator=gen) for k, p in params.items()}
    return keep_per_layer(scores, counts)
