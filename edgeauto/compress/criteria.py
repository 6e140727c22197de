"""Channel-importance criteria: one small class per criterion, selected by name.

A criterion scores every channel of a Torch-Pruning :class:`Group` (a set of coupled tensors
that must lose the same channels); higher means keep. Criteria that need data (Taylor,
Hessian, i-SpaSP) gather it in :meth:`Criterion.prepare`, which pruners call on the current
model before each pruning decision, because scores go stale once the model changes.

- ``l1``: Li et al., "Pruning Filters for Efficient ConvNets": a filter's score is the L1 norm
  of its own kernel weights, ``sum |W[j]|`` over out-channel ``j`` of the conv (or linear) the
  group is rooted at, nothing else (an inverted-residual group that Torch-Pruning roots at
  its depthwise conv is scored by the expansion conv's filters: see :func:`_filter_entry`).
- ``group-l1`` / ``l2``: Torch-Pruning's group norms: the L1 norm (``l2``: the squared L2 norm)
  of every tensor slice the channel owns: the root's filter, the coupled BatchNorm weights, the
  next layer's input slices and any residual-coupled layer.
- ``taylor`` / ``taylor2``: Molchanov et al., "Importance Estimation for Neural Network
  Pruning": a gate ``m = 1`` after every BN / conv output; the loss change of removing a
  channel (``m: 1 -> 0``) to first order is ``-dL/dm``, accumulated as ``(dL/dm)^2`` over
  minibatches; the second-order estimate adds ``0.5 d2L/dm2`` (Hutchinson estimate of the
  gates' Hessian diagonal) and scores ``|-dL/dm + 0.5 d2L/dm2|``.
- ``hessian``: OBD saliency ``0.5 h_ii w_i^2`` per weight, ``h`` the Hutchinson estimate of the
  Hessian diagonal, summed over every tensor slice the channel owns.
- ``ispasp``: i-SpaSP (Wolfe & Kyrillidis): each consuming layer's output is a sum of per-input-
  channel contributions; supports of decreasing size are recovered by the paper's
  merge-and-prune iteration (the ``2k`` channels most correlated with the residual merged
  with the support, a least-squares fit, the best ``k`` kept), each within the last; a
  channel in more supports is more important.
- ``random``: the control.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator
from typing import ClassVar

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function as tpf

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.registry import Registry

Group = tp.dependency.Group
OUT_FNS = (tpf.prune_conv_out_channels, tpf.prune_linear_out_channels)
IN_FNS = (tpf.prune_conv_in_channels, tpf.prune_linear_in_channels)
BN_FN = tpf.prune_batchnorm_out_channels
# a group's root prunes out-channels of a conv (depthwise included) or a linear layer
ROOT_OUT_FNS = (*OUT_FNS, tpf.prune_depthwise_conv_out_channels)
CHANNEL_OWNERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


class Criterion(abc.ABC):
    """Scores the channels of a pruning group; higher is more important."""

    name: ClassVar[str] = "abstract"
    needs_data: ClassVar[bool] = False

    def __init__(self, batches: int = 4, batch_size: int = 64, seed: int = 0) -> None:
        if batches < 1 or batch_size < 1:
            raise ConfigError(
                f"criterion {self.name}: batches and batch_size must be >= 1, got "
                f"{batches} and {batch_size}"
            )
        self.batches, self.batch_size, self.seed = batches, batch_size, seed
        self._names: dict[nn.Module, str] = {}

    def prepare(self, model: nn.Module, data: Dataset | None) -> None:
        """Gather what scoring needs from ``model`` (called before every pruning decision)."""
        self.bind(model)

    def bind(self, model: nn.Module) -> None:
        """Score the groups of ``model`` (a copy of the prepared one) by module name."""
        self._names = {m: n for n, m in model.named_modules()}

    def name_of(self, layer: nn.Module) -> str:
        """Name of ``layer`` in the bound model."""
        return self._names.get(layer, "")

    @abc.abstractmethod
    def group_scores(self, group: Group) -> torch.Tensor | None:
        """One score per channel of ``group``'s root, or None when it has no scored tensor."""

    def as_importance(self) -> tp.importance.Importance:
        """This criterion as a Torch-Pruning importance (mean-normalised per group)."""
        return _Adapter(self)

    def _require(self, data: Dataset | None) -> Dataset:
        if data is None:
            raise ConfigError(
                f"criterion {self.name!r} needs calibration data; pass a dataset or pick l1/l2"
            )
        return data

    def _data_batches(self, data: Dataset) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(data.x_train), generator=gen)
        for b in range(self.batches):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if len(idx):
                yield data.x_train[idx], data.y_train[idx]


class _Adapter(tp.importance.Importance):
    def __init__(self, criterion: Criterion) -> None:
        self.criterion = criterion

    @torch.no_grad()
    def __call__(self, group: Group) -> torch.Tensor | None:
        scores = self.criterion.group_scores(group)
        if scores is None:
            return None
        return scores / scores.abs().mean().clamp_min(1e-12)


CRITERIA: Registry[type[Criterion]] = Registry("criterion")


def list_criteria() -> list[str]:
    """Names of the registered importance criteria."""
    return CRITERIA.names()


def get_criterion(name: str, **kwargs: int) -> Criterion:
    """Instantiate the criterion registered as ``name``."""
    return CRITERIA.get(name)(**kwargs)


def _scatter(total: torch.Tensor | None, n: int, local: torch.Tensor, root: list) -> torch.Tensor:
    total = torch.zeros(n) if total is None else total
    return total.index_add_(0, torch.as_tensor(root, dtype=torch.long), local.float())


def _root_count(group: Group) -> int:
    return len(group[0].root_idxs)


def _slice_scores(
    layer: nn.Module, fn: object, idxs: list[int], w: torch.Tensor, b: torch.Tensor | None
) -> torch.Tensor | None:
    """Sum of per-weight saliencies ``w`` (and bias ``b``) over the slice channels ``idxs`` own."""
    if fn in OUT_FNS or fn == BN_FN:
        local = w[idxs].flatten(1).sum(1) if w.dim() > 1 else w[idxs]
        return local + b[idxs] if b is not None else local
    if fn in IN_FNS:
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            return None  # depthwise: its channels are scored through its out-channel entry
        return w.transpose(0, 1).flatten(1).sum(1)[idxs]
    return None


class ParamSaliency(Criterion):
    """A criterion defined by a per-weight saliency, summed over each channel's slices."""

    use_bias: ClassVar[bool] = False  # filter norms count weights only (as Li et al.)

    @abc.abstractmethod
    def saliency(self, name: str, param: torch.Tensor) -> torch.Tensor:
        """Per-element saliency of parameter ``name`` (same shape as ``param``)."""

    def group_scores(self, group: Group) -> torch.Tensor | None:
        total = None
        for i, (dep, idxs) in enumerate(group):
            layer = dep.layer
            if not isinstance(layer, CHANNEL_OWNERS) or getattr(layer, "weight", None) is None:
                continue
            prefix = self.name_of(layer)
            w = self.saliency(f"{prefix}.weight", layer.weight.detach())
            bias = getattr(layer, "bias", None)
            b = None
            if self.use_bias and bias is not None:
                b = self.saliency(f"{prefix}.bias", bias.detach())
            local = _slice_scores(layer, dep.pruning_fn, list(idxs), w, b)
            if local is not None:
                total = _scatter(total, _root_count(group), local, group[i].root_idxs)
        return total


@CRITERIA.register("l1")
class L1(Criterion):
    """Li et al.'s filter L1 norm: ``sum |W[j]|`` over the kernel of the filter that computes
    channel ``j`` (the group's root conv or linear); BatchNorm and consuming layers are not
    counted (that is ``group-l1``)."""

    name = "l1"

    def group_scores(self, group: Group) -> torch.Tensor | None:
        found = _filter_entry(group)
        if found is None:
            return None
        i, layer, idxs = found
        local = layer.weight.detach()[idxs].abs().flatten(1).sum(1)
        return _scatter(None, _root_count(group), local, group[i].root_idxs)


def _filter_entry(group: Group) -> tuple[int, nn.Module, list[int]] | None:
    """The entry whose out-channels are the filters Li et al. score: the root when it is a
    full conv or linear layer, else the first such layer in the group. Torch-Pruning roots an
    inverted-residual group at its depthwise conv only because it meets it first; the
    channel's filter is the expansion conv that computes it, so that one is scored. A group
    with no full layer (a depthwise conv on the input) falls back to the depthwise kernel."""
    for i, (dep, idxs) in enumerate(group):
        if dep.pruning_fn in OUT_FNS:
            return i, dep.layer, list(idxs)
    dep, idxs = group[0]
    if dep.pruning_fn in ROOT_OUT_FNS and getattr(dep.layer, "weight", None) is not None:
        return 0, dep.layer, list(idxs)
    return None


@CRITERIA.register("group-l1")
class GroupL1(ParamSaliency):
    """Sum of absolute weights of every slice the channel owns (Torch-Pruning's group L1)."""

    name = "group-l1"

    def saliency(self, name: str, param: torch.Tensor) -> torch.Tensor:
        return param.abs()


@CRITERIA.register("l2")
class L2(ParamSaliency):
    """Sum of squared weights of every slice the channel owns (group L2 norm, squared)."""

    name = "l2"

    def saliency(self, name: str, param: torch.Tensor) -> torch.Tensor:
        return param.pow(2)


@CRITERIA.register("random")
class RandomCriterion(Criterion):
    """Uniform random scores: the control every criterion must beat."""

    name = "random"

    def group_scores(self, group: Group) -> torch.Tensor | None:
        # seeded per group, so the same group gets the same scores on every copy
        key = f"{self.seed}:{self.name_of(group[0].dep.target.module)}".encode()
        gen = torch.Generator().manual_seed(int(hashlib.sha256(key).hexdigest()[:15], 16))
        return torch.rand(_root_count(group), generator=gen)
