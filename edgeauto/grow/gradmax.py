"""Function-preserving growth of a layer pair, with GradMax's initialisation.

Growth adds ``k`` output units to a layer (``Linear`` or ``Conv2d``) and the matching inputs
to the next such layer. The new *outgoing* weights start at zero, so the network computes
exactly the same function right after growth; only the *incoming* weights are chosen, and
:data:`GROWTH_INITS` names how:

- ``gradmax`` (Evci et al., "GradMax: Growing Neural Networks using Gradient Information",
  ICLR 2022). With the outgoing weights ``W2_new = 0``, the loss gradient w.r.t. them is
  ``E[δ · σ(W_new x)ᵀ]``, ``δ`` the gradient at the next layer's output. Linearising the
  activation at zero (``σ(h) ≈ h``, as GradMax does for ReLU) it is ``M W_newᵀ`` with the
  gradient product ``M = E[δ xᵀ]``. ``‖M W_newᵀ‖_F`` under ``‖W_new‖_2 ≤ c`` is maximised by
  rows ``c · v_i``, ``v_i`` the top-``k`` right singular vectors of ``M`` (the left singular
  vectors of GradMax's ``E[x δᵀ]``). For a conv pair ``M`` maps one new channel's kernel to the
  gradient of its outgoing kernel (:func:`gradient_product`), and the same SVD applies.
- ``random``: Gaussian rows rescaled to the same per-unit norm ``c`` (the fair baseline).
- ``zero``: zero incoming weights. With ReLU (``relu'(0) = 0`` in PyTorch) such units get no
  gradient and stay dead: the "grow but learn nothing" baseline.

``c`` is the median row norm of the layer's existing incoming weights, so grown units look
like the ones already there. A BatchNorm between the two layers is refused: it would have to
grow too, and it breaks the linearisation GradMax's derivation relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from edgeauto.errors import ConfigError
from edgeauto.registry import Registry

#: ``init(M, k, c, generator) -> (k, D)`` incoming rows, ``M`` the gradient product (out, D).
GrowthInit = Callable[[torch.Tensor, int, float, torch.Generator], torch.Tensor]
GROWTH_INITS: Registry[GrowthInit] = Registry("growth init")
_GROWABLE = (nn.Linear, nn.Conv2d)


@GROWTH_INITS.register("gradmax")
def gradmax_init(m: torch.Tensor, k: int, c: float, gen: torch.Generator) -> torch.Tensor:
    """Top-``k`` right singular vectors of ``M``, each scaled to norm ``c``."""
    _, _, vh = torch.linalg.svd(m.double(), full_matrices=False)
    rows = vh[:k].float()
    if len(rows) < k:  # more units than M's rank: fill the rest at random, same norm
        rows = torch.cat([rows, random_init(m, k - len(rows), 1.0, gen)])
    return c * rows


@GROWTH_INITS.register("random")
def random_init(m: torch.Tensor, k: int, c: float, gen: torch.Generator) -> torch.Tensor:
    """Gaussian rows scaled to norm ``c``."""
    rows = torch.randn(k, m.shape[1], generator=gen)
    return c * rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)


@GROWTH_INITS.register("zero")
def zero_init(m: torch.Tensor, k: int, c: float, gen: torch.Generator) -> torch.Tensor:
    """Zero incoming weights."""
    return torch.zeros(k, m.shape[1])


@dataclass(frozen=True)
class LayerPair:
    """The layer that grows (``first``) and the next layer that reads its outputs."""

    first: nn.Linear | nn.Conv2d
    second: nn.Linear | nn.Conv2d
    name: str


def find_pair(model: nn.Module, name: str) -> LayerPair:
    """The module ``name`` and the next Linear/Conv2d in module order, of the same kind."""
    mods = list(model.named_modules())
    names = [n for n, m in mods if isinstance(m, _GROWABLE)]
    if name not in names:
        raise ConfigError(
            f"growth layer {name!r} is not a Linear or Conv2d of the model; pick one of "
            f"{', '.join(names[:-1]) or '(none)'}"
        )
    at = [n for n, _ in mods].index(name)
    first = mods[at][1]
    rest = [m for _, m in mods[at + 1 :]]
    second = next((m for m in rest if isinstance(m, _GROWABLE)), None)
    between = rest[: rest.index(second)] if second is not None else []
    if second is None or type(second) is not type(first):
        raise ConfigError(
            f"growth layer {name!r} must be followed by a layer of the same kind "
            f"({type(first).__name__}); pick an earlier layer"
        )
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in between):
        raise ConfigError(f"growth layer {name!r} is followed by BatchNorm; grow a pair without BN")
    if isinstance(first, nn.Conv2d):
        _check_convs(first, second, name)
    return LayerPair(first, second, name)


def _check_convs(first: nn.Conv2d, second: nn.Conv2d, name: str) -> None:
    """The gradient product is derived for plain, zero-padded, ungrouped convolutions."""
    for conv in (first, second):
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ConfigError(
                f"growth layer {name!r}: only groups=1 convolutions with numeric zero padding "
                f"can grow (got groups={conv.groups}, padding={conv.padding!r}, "
                f"padding_mode={conv.padding_mode!r}); change the layer or grow another"
            )


def _probe(
    model: nn.Module, pair: LayerPair, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input of ``first`` and the loss gradient at the output of ``second`` on (x, y)."""
    seen: dict[str, torch.Tensor] = {}
    h1 = pair.first.register_forward_hook(lambda _m, i, _o: seen.__setitem__("x", i[0].detach()))
    h2 = pair.second.register_forward_hook(lambda _m, _i, o: seen.__setitem__("out", o))
    was_training = model.training
    try:
        model.train(False)  # the probe must not move BN running statistics elsewhere
        loss = F.cross_entropy(model(x), y)
        (delta,) = torch.autograd.grad(loss, seen["out"])
    finally:
        h1.remove()
        h2.remove()
        model.train(was_training)
    return seen["x"], delta.detach()


def gradient_product(
    model: nn.Module, pair: LayerPair, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """``M`` (out, D): column ``i`` is the gradient of the new outgoing weights of one unit
    whose incoming weights are the ``i``-th basis vector, with the activation linearised."""
    inp, delta = _probe(model, pair, x, y)
    first, second = pair.first, pair.second
    if isinstance(first, nn.Linear):
        return delta.T @ inp  # E[δ xᵀ] (the loss is already a batch mean)
    d = first.in_channels * first.kernel_size[0] * first.kernel_size[1]
    basis = torch.eye(d).reshape(d, first.in_channels, *first.kernel_size)
    act = F.conv2d(inp, basis, None, first.stride, first.padding, first.dilation)
    shape = (second.out_channels, d, *second.kernel_size)
    grad = torch.nn.grad.conv2d_weight(
        act, shape, delta, second.stride, second.padding, second.dilation
    )
    return grad.permute(0, 2, 3, 1).reshape(-1, d)


def _cat_param(param: nn.Parameter, extra: torch.Tensor, dim: int) -> None:
    """Append ``extra`` along ``dim`` in place: the Parameter object stays the same, so an
    optimizer keeps tracking it (``fit`` pads its state to the new shape)."""
    param.data = torch.cat([param.data, extra.to(param.dtype)], dim=dim)
    param.grad = None


def incoming_norm(layer: nn.Linear | nn.Conv2d) -> float:
    """Median norm of the layer's incoming weight rows (one row per output unit)."""
    return float(layer.weight.detach().reshape(layer.weight.shape[0], -1).norm(dim=1).median())


def add_units(pair: LayerPair, incoming: torch.Tensor) -> None:
    """Grow ``pair`` by ``len(incoming)`` units: rows ``incoming`` (k, D) in, zeros out."""
    first, second = pair.first, pair.second
    k = len(incoming)
    _cat_param(first.weight, incoming.reshape(k, *first.weight.shape[1:]), 0)
    if first.bias is not None:
        _cat_param(first.bias, torch.zeros(k), 0)
    out_shape = list(second.weight.shape)
    out_shape[1] = k
    _cat_param(second.weight, torch.zeros(out_shape), 1)
    if isinstance(first, nn.Linear):
        first.out_features += k
        second.in_features += k
    else:
        first.out_channels += k
        second.in_channels += k


def grow(
    model: nn.Module,
    layer: str,
    k: int,
    batch: tuple[torch.Tensor, torch.Tensor],
    init: str = "gradmax",
    seed: int = 0,
) -> LayerPair:
    """Add ``k`` units to ``layer`` of ``model`` without changing its function.

    ``batch`` (inputs, labels) is the data the gradient product is estimated on; ``init``
    names a :data:`GROWTH_INITS` entry.

    Example:
        >>> grow(mlp, "0", 8, (x[:256], y[:256]), init="gradmax")
    """
    if k < 1:
        raise ConfigError(f"growth units must be >= 1, got {k}; fix units")
    make = GROWTH_INITS.get(init)
    pair = find_pair(model, layer)
    m = gradient_product(model, pair, *batch)
    gen = torch.Generator().manual_seed(seed)
    add_units(pair, make(m, k, incoming_norm(pair.first), gen))
    return pair


def new_weight_grad_norm(
    model: nn.Module, pair: LayerPair, k: int, x: torch.Tensor, y: torch.Tensor
) -> float:
    """Norm of the loss gradient w.r.t. the last ``k`` outgoing columns (the grown ones),
    with the real activation: what GradMax tries to make large."""
    was_training = model.training
    model.train(False)
    try:
        loss = F.cross_entropy(model(x), y)
        (grad,) = torch.autograd.grad(loss, pair.second.weight)
    finally:
        model.train(was_training)
    return float(grad[:, -k:].norm())


@dataclass(frozen=True)
class GrowthSchedule:
    """When, where and how much to grow: ``units`` units on ``layer`` every ``every``
    optimizer steps (first at step ``every``), until ``max_units`` were added."""

    layer: str
    every: int
    units: int
    max_units: int
    init: str = "gradmax"

    def __post_init__(self) -> None:
        for name in ("every", "units", "max_units"):
            if getattr(self, name) < 1:
                raise ConfigError(f"GrowthSchedule.{name} must be >= 1, got {getattr(self, name)}")
        GROWTH_INITS.get(self.init)  # unknown names fail here, not mid-training


@dataclass
class Grower:
    """An ``on_step`` hook for :func:`edgeauto.train.fit` that grows on a schedule.

    Each growth estimates the gradient product on a fresh batch of ``batch_size`` training
    samples. ``events`` records ``(step, units added, width after)``.
    """

    model: nn.Module
    schedule: GrowthSchedule
    x: torch.Tensor
    y: torch.Tensor
    batch_size: int = 256
    seed: int = 0
    added: int = 0
    events: list[tuple[int, int, int]] = field(default_factory=list)

    def __call__(self, step: int) -> None:
        s = self.schedule
        if step % s.every or self.added >= s.max_units:
            return
        k = min(s.units, s.max_units - self.added)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + step)
        idx = torch.randperm(len(self.x), generator=gen)[: self.batch_size]
        pair = grow(self.model, s.layer, k, (self.x[idx], self.y[idx]), s.init, self.seed + step)
        self.added += k
        self.events.append((step, k, pair.first.weight.shape[0]))
