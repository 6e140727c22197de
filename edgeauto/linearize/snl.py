"""Selective network linearization (SNL; Cho et al., ICML 2022) for private inference.

Under two-party private inference a ReLU costs a garbled circuit while a linear layer is
almost free, so latency is counted in ReLUs: one per activation element (channel x pixel).
SNL replaces each ReLU by ``y = m * relu(x) + (1 - m) * x`` with a learnable mask ``m`` per
channel (or per pixel), trains with a cost-weighted L1 penalty on ``m`` whose strength grows
every epoch until the ReLUs still on fit the budget, then makes the masks binary (greedily,
most confident first, never above the budget) and fine-tunes the weights. A ReLU6 keeps its
clip: it becomes ``m * relu6(x) + (1 - m) * x``, so a kept unit is still the trained one.

:func:`drop_relu_layers` is the coarse baseline: whole ReLU layers become the identity, the
least important first (accuracy lost when that layer alone is removed), to the same budget.

Only ``nn.ReLU`` and ``nn.ReLU6`` modules are seen; a ``torch.relu`` call in ``forward`` is
not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from edgeauto.counting import count_macs, probe
from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.train import TrainConfig, accuracy, fit

# The function each kept unit computes, by the kind of module it replaced: a kept ReLU6 must
# still clip at 6, or the linearized net is not the trained one even with every mask at 1.
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "relu6": F.relu6,
}
_KINDS: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.ReLU6: "relu6"}


def _check_kind(kind: str) -> str:
    if kind not in _ACTIVATIONS:
        raise ConfigError(f"unknown activation {kind!r}; use one of {sorted(_ACTIVATIONS)}")
    return kind


class MaskedReLU(nn.Module):
    """``m * act(x) + (1 - m) * x`` with ``m = sigmoid(logits)``, one per channel or pixel;
    ``act`` is the replaced module's own function (``kind``: ``"relu"`` or ``"relu6"``)."""

    def __init__(
        self,
        shape: tuple[int, ...],
        per_pixel: bool = False,
        init: float = 3.0,
        kind: str = "relu",
    ) -> None:
        super().__init__()
        mask_shape = shape if per_pixel else (shape[0],) + (1,) * (len(shape) - 1)
        self.logits = nn.Parameter(torch.full(mask_shape, init))
        self.shape = tuple(shape)
        self.kind = _check_kind(kind)  # a string, not a module: named_modules must not see it

    def mask(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mask()
        return m * _ACTIVATIONS[self.kind](x) + (1 - m) * x

    def cost(self) -> torch.Tensor:
        """Expected ReLUs: each mask entry weighs the activation elements it covers."""
        return self.mask().sum() * (_numel(self.shape) / self.logits.numel())

    def relu_count(self) -> int:
        """ReLUs on if the mask were thresholded at 0.5."""
        return int((self.logits > 0).sum()) * (_numel(self.shape) // self.logits.numel())


class FixedMaskReLU(nn.Module):
    """A binary mask: the activation (``kind``) where ``mask`` is 1, identity where it is 0
    (exports as Mul/Add around a Relu or Clip)."""

    def __init__(self, mask: torch.Tensor, shape: tuple[int, ...], kind: str = "relu") -> None:
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.shape = tuple(shape)
        self.kind = _check_kind(kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mask * (_ACTIVATIONS[self.kind](x) - x)

    def relu_count(self) -> int:
        return int(self.mask.sum()) * (_numel(self.shape) // self.mask.numel())


def activation_kind(module: nn.Module) -> str:
    """The activation ``module`` computes (``"relu"`` or ``"relu6"``), masked or not."""
    if isinstance(module, MaskedReLU | FixedMaskReLU):
        return module.kind
    for cls, kind in _KINDS.items():
        if isinstance(module, cls):
            return kind
    raise ConfigError(f"{type(module).__name__} is not a ReLU-like module SNL can linearize")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def relu_sites(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Per ReLU-like module name, the activation shape (without batch) it sees.

    A module called twice would need one mask per call: it is refused."""
    kinds = (*_KINDS, MaskedReLU, FixedMaskReLU)
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}

    def hook(name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def record(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
            shapes[name] = tuple(out.shape[1:])
            calls[name] = calls.get(name, 0) + 1

        return record

    handles = [
        m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, kinds)
    ]
    probe(model, input_shape, handles)
    if reused := [n for n, c in calls.items() if c > 1]:
        raise ConfigError(
            f"ReLU module {reused[0]!r} is called {calls[reused[0]]} times per forward; give "
            "each call its own nn.ReLU so each can be linearized"
        )
    return shapes


def count_relus(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """ReLUs one sample costs (activation elements through a ReLU), via forward hooks."""
    modules = dict(model.named_modules())
    total = 0
    for name, shape in relu_sites(model, input_shape).items():
        module = modules[name]
        has_count = isinstance(module, MaskedReLU | FixedMaskReLU)
        total += module.relu_count() if has_count else _numel(shape)
    return total


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


@dataclass(frozen=True)
class SNLConfig:
    """SNL's knobs: penalty start and growth per epoch, mask learning rate, epoch caps."""

    per_pixel: bool = False
    penalty: float = 0.05
    penalty_growth: float = 2.0
    mask_lr: float = 0.05
    max_epochs: int = 12
    finetune_epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-3


@dataclass(frozen=True)
class LinearizeResult:
    """ReLUs before and after, the budget, and how many mask-training epochs it took."""

    relus_before: int
    relus_after: int
    budget: int
    mask_epochs: int
    accuracy: float


def add_masks(model: nn.Module, input_shape: tuple[int, ...], per_pixel: bool) -> list[MaskedReLU]:
    """Replace every ReLU (or ReLU6) of ``model`` by a :class:`MaskedReLU` of the same
    activation, starting near 1 (the activation itself)."""
    masks = []
    modules = dict(model.named_modules())
    for name, shape in relu_sites(model, input_shape).items():
        masked = MaskedReLU(shape, per_pixel, kind=activation_kind(modules[name]))
        _set(model, name, masked)
        masks.append(masked)
    if not masks:
        raise ConfigError("the model has no nn.ReLU module to linearize; use nn.ReLU layers")
    return masks


def _batches(data: Dataset, size: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
    order = torch.randperm(len(data.x_train), generator=gen)
    for i in range(0, len(order), size):
        idx = order[i : i + size]
        yield data.x_train[idx], data.y_train[idx]


def train_masks(
    model: nn.Module, masks: list[MaskedReLU], data: Dataset, budget: int, cfg: SNLConfig, seed: int
) -> int:
    """Cross-entropy + ``penalty x expected ReLUs / total`` until the thresholded masks fit
    ``budget``; the penalty grows by ``penalty_growth`` after every epoch still over it.
    Returns the epochs run."""
    total = sum(_numel(m.shape) for m in masks)
    logits = [m.logits for m in masks]
    weights = [p for p in model.parameters() if all(p is not q for q in logits)]
    opt = torch.optim.AdamW([{"params": weights}, {"params": logits, "lr": cfg.mask_lr, "weight_decay": 0.0}], lr=cfg.lr)  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    penalty = cfg.penalty
    model.train(True)
    for epoch in range(1, cfg.max_epochs + 1):
        for x, y in _batches(data, cfg.batch_size, gen):
            cost = sum(m.cost() for m in masks) / total
            loss = F.cross_entropy(model(x), y) + penalty * cost
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sum(m.relu_count() for m in masks) <= budget:
                return epoch  # stop at once: more penalty would only cut below the budget
        penalty *= cfg.penalty_growth  # not there yet: linear units must get cheaper
    return cfg.max_epochs


def binarize(model: nn.Module, masks: list[MaskedReLU], budget: int) -> None:
    """Keep ReLUs by mask logit, highest first, while the count stays <= ``budget`` (the
    masks rank the ReLUs, the budget says how many: a budget left unused would be accuracy
    given away); each :class:`MaskedReLU` becomes a :class:`FixedMaskReLU`."""
    entries = []
    for i, m in enumerate(masks):
        per = _numel(m.shape) // m.logits.numel()
        entries += [(float(v), i, j, per) for j, v in enumerate(m.logits.detach().reshape(-1))]
    keep = [torch.zeros(m.logits.numel()) for m in masks]
    used = 0
    for _, i, j, per in sorted(entries, reverse=True):
        if used + per <= budget:
            keep[i][j], used = 1.0, used + per
    names = {id(m): n for n, m in model.named_modules()}
    for m, k in zip(masks, keep):
        _set(model, names[id(m)], FixedMaskReLU(k.reshape(m.logits.shape), m.shape, m.kind))


def linearize(
    model: nn.Module, data: Dataset, budget: int, cfg: SNLConfig | None = None, seed: int = 0
) -> LinearizeResult:
    """SNL on a trained ``model`` in place: masks, penalty until ``budget``, binary, fine-tune.

    Example:
        >>> result = linearize(trained_cnn, load_dataset("digits"), budget=300)
        >>> count_relus(trained_cnn, (1, 8, 8)) <= 300
        True
    """
    cfg = cfg or SNLConfig()
    before = count_relus(model, data.input_shape)
    if budget < 0:
        raise ConfigError(f"relu budget must be >= 0, got {budget}; fix --relu-budget")
    masks = add_masks(model, data.input_shape, cfg.per_pixel)
    epochs = train_masks(model, masks, data, budget, cfg, seed)
    binarize(model, masks, budget)
    _finetune(model, data, cfg, seed)
    after = count_relus(model, data.input_shape)
    acc = accuracy(model, data.x_val, data.y_val)
    return LinearizeResult(before, after, budget, epochs, acc)


def _finetune(model: nn.Module, data: Dataset, cfg: SNLConfig, seed: int) -> None:
    if cfg.finetune_epochs > 0:
        tc = TrainConfig(epochs=cfg.finetune_epochs, batch_size=cfg.batch_size, lr=cfg.lr)
        fit(model, data, tc, seed=seed + 1)
    model.train(False)


def drop_relu_layers(
    model: nn.Module, data: Dataset, budget: int, cfg: SNLConfig | None = None, seed: int = 0
) -> LinearizeResult:
    """Baseline: whole ReLU layers become identities until the count is <= ``budget``, the
    one whose removal alone costs the least validation accuracy first; then fine-tune."""
    cfg = cfg or SNLConfig()
    sites = relu_sites(model, data.input_shape)
    before = count_relus(model, data.input_shape)
    x, y = data.x_val[:512], data.y_val[:512]
    modules = dict(model.named_modules())
    loss = {}
    for name in sites:
        _set(model, name, nn.Identity())
        loss[name] = -accuracy(model, x, y)
        _set(model, name, modules[name])
    count, dropped = before, []
    for name in sorted(sites, key=loss.__getitem__):
        if count <= budget:
            break
        _set(model, name, nn.Identity())
        count, dropped = count - _numel(sites[name]), [*dropped, name]
    for name in reversed(dropped):  # the greedy may overshoot: restore what still fits
        if count + _numel(sites[name]) <= budget:
            _set(model, name, modules[name])
            count += _numel(sites[name])
    _finetune(model, data, cfg, seed)
    acc = accuracy(model, data.x_val, data.y_val)
    return LinearizeResult(before, count_relus(model, data.input_shape), budget, 0, acc)


def relu_cost(model: nn.Module, input_shape: tuple[int, ...], flop_weight: float) -> float:
    """A ``relu-count`` device's cost: ReLUs + ``flop_weight`` x MACs."""
    return count_relus(model, input_shape) + flop_weight * count_macs(model, input_shape)
