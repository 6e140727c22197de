"""NOISY: heuristic morphism NAS on an MLP (issue 10).

The network is :class:`NoisyMLP`: flatten, hidden ``Linear`` layers each followed by a ReLU
or by nothing (the identity), and a ``Linear`` classifier. NOISY grows it from a small seed by
random *morphisms* (:data:`OPS`), keeping whatever fits best:

- ``add``: ``k`` hidden neurons with random incoming weights (GradMax's ``random`` init,
  :mod:`edgeauto.grow.gradmax`) and zero outgoing weights, so the function is unchanged;
- ``prune``: the ``k`` least fit neurons of a layer go, fitness being what a neuron sends on,
  ``mean |activation| * ||outgoing weights||`` on a batch (a neuron with zero outgoing weights
  or that never fires has fitness 0 and goes first, changing nothing);
- ``insert``: a new hidden layer after layer ``i``, initialised to the identity with ``i``'s
  own non-linearity: after a ReLU its inputs are non-negative, so ``relu(I x) = x`` and the
  function is unchanged;
- ``remove``: hidden layer ``i`` folded into the next one (``W' = W_next W_i``), exact when
  ``i`` has no ReLU and a linear approximation when it has;
- ``relu``: switch a layer's non-linearity on or off (non-linearity goes up or down).

Depth follows the relation of a layer's hidden units to its connections: with
``ratio = width / sqrt(fan_in * fan_out)`` (``fan_in`` the units feeding it, ``fan_out`` the
units it feeds), a layer wider than ``split_ratio`` may get a layer inserted after it, and one
narrower than ``merge_ratio`` may be removed (never the last hidden layer). Width itself goes
up and down through ``add`` and ``prune``.

A step (:func:`noisy_search`) makes ``candidates`` copies of the current model, applies one
random eligible morphism to each, trains them and the unchanged model on the same
``train_batches`` batches, and keeps the one with the lowest held-out loss plus
``param_penalty`` per 10,000 parameters. The held-out images are the last ``holdout`` share of
the training split, so the validation split stays unseen until the final accuracy.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from edgeauto.counting import count_params
from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.grow.gradmax import LayerPair, add_units, incoming_norm, random_init
from edgeauto.train import accuracy

OPS = ("add", "prune", "insert", "remove", "relu")
_FITNESS_SAMPLES = 256  # training images the prune fitness is measured on
_MIN_LR_SHARE = 0.05  # the cosine learning rate ends here, not at 0: late growth still learns


def _linear(fan_in: int, fan_out: int, gen: torch.Generator) -> nn.Linear:
    """PyTorch's default ``Linear`` init, drawn from ``gen`` instead of the global stream."""
    layer = nn.utils.skip_init(nn.Linear, fan_in, fan_out)
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        layer.weight.copy_((torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(fan_out, generator=gen) * 2 - 1) * bound)
    return layer


def _set_linear(layer: nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


class NoisyMLP(nn.Module):
    """flatten, hidden ``Linear`` layers (``relu[i]``: ReLU after layer ``i`` or not), classifier.

    The morphisms edit ``linears`` and ``relu`` in place.
    """

    def __init__(self, linears: list[nn.Linear], relu: list[bool]) -> None:
        super().__init__()
        if len(relu) != len(linears) - 1:
            raise ConfigError(f"NoisyMLP needs one relu flag per hidden layer, got {len(relu)}")
        self.linears = nn.ModuleList(linears)
        self.relu = list(relu)

    @classmethod
    def create(cls, n_in: int, widths: list[int], n_out: int, gen: torch.Generator) -> NoisyMLP:
        """A ReLU MLP ``n_in -> widths... -> n_out`` initialised from ``gen``."""
        sizes = [n_in, *widths, n_out]
        layers = [_linear(a, b, gen) for a, b in itertools.pairwise(sizes)]
        return cls(layers, [True] * len(widths))

    @property
    def widths(self) -> list[int]:
        """Units of each hidden layer."""
        return [int(layer.out_features) for layer in self.linears[:-1]]

    def hidden(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """The output of hidden layer ``layer`` after its non-linearity."""
        x = x.flatten(1)
        for lin, act in zip(self.linears[: layer + 1], self.relu):
            x = lin(x)
            x = F.relu(x) if act else x
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linears[-1](self.hidden(x, len(self.relu) - 1) if self.relu else x.flatten(1))


def add_neurons(model: NoisyMLP, layer: int, k: int, gen: torch.Generator) -> None:
    """``k`` new neurons in hidden layer ``layer``: random incoming weights with the layer's
    median row norm, zero outgoing weights, so the outputs do not change."""
    first, second = model.linears[layer], model.linears[layer + 1]
    shape_only = torch.empty(0, first.in_features)  # the random init reads only the width
    rows = random_init(shape_only, k, incoming_norm(first), gen)
    add_units(LayerPair(first, second, str(layer)), rows)


@torch.no_grad()
def neuron_fitness(model: NoisyMLP, layer: int, x: torch.Tensor) -> torch.Tensor:
    """Per neuron of ``layer``: mean ``|activation|`` on ``x`` times its outgoing weight norm,
    the size of what it contributes to the next layer."""
    act = model.hidden(x, layer).abs().mean(0)
    return act * model.linears[layer + 1].weight.norm(dim=0)


def _keep_units(first: nn.Linear, second: nn.Linear, keep: torch.Tensor) -> None:
    """Keep only the units ``keep`` of ``first`` (rows) and ``second`` (input columns)."""
    first.weight.data = first.weight.data[keep]
    first.bias.data = first.bias.data[keep]
    second.weight.data = second.weight.data[:, keep]
    for p in (first.weight, first.bias, second.weight):
        p.grad = None
    first.out_features = second.in_features = len(keep)


def prune_neurons(model: NoisyMLP, layer: int, k: int, x: torch.Tensor) -> list[int]:
    """Remove the ``k`` least fit neurons of ``layer`` (at least one neuron stays); returns
    the removed indices. Ties go to the lower index, so pruning is deterministic."""
    width = model.widths[layer]
    k = min(k, width - 1)
    if k < 1:
        return []
    order = torch.argsort(neuron_fitness(model, layer, x), stable=True)
    drop = sorted(order[:k].tolist())
    keep = torch.tensor(sorted(set(range(width)) - set(drop)))
    _keep_units(model.linears[layer], model.linears[layer + 1], keep)
    return drop


def insert_layer(model: NoisyMLP, layer: int) -> None:
    """A new identity-initialised hidden layer after ``layer``, with ``layer``'s own
    non-linearity: exact, since a ReLU's outputs are non-negative and ``relu(x) = x`` there."""
    width = model.widths[layer]
    new = _set_linear(nn.utils.skip_init(nn.Linear, width, width), torch.eye(width),
                      torch.zeros(width))  # fmt: skip
    model.linears.insert(layer + 1, new)
    model.relu.insert(layer + 1, model.relu[layer])


def remove_layer(model: NoisyMLP, layer: int) -> None:
    """Fold hidden layer ``layer`` into the next: ``W = W_next W``, ``b = W_next b + b_next``.

    Exact when ``layer`` has no ReLU; with one, the fold treats it as the identity."""
    if len(model.widths) < 2:
        raise ConfigError("NOISY keeps at least one hidden layer; cannot remove the only one")
    first, second = model.linears[layer], model.linears[layer + 1]
    weight = second.weight.detach() @ first.weight.detach()
    bias = second.weight.detach() @ first.bias.detach() + second.bias.detach()
    merged = nn.utils.skip_init(nn.Linear, first.in_features, second.out_features)
    del model.linears[layer]
    model.linears[layer] = _set_linear(merged, weight, bias)
    del model.relu[layer]


def width_ratio(model: NoisyMLP, layer: int) -> float:
    """Hidden units of ``layer`` over the geometric mean of the units around it."""
    fan_in, fan_out = model.linears[layer].in_features, model.linears[layer + 1].out_features
    return model.widths[layer] / math.sqrt(fan_in * fan_out)


@dataclass(frozen=True)
class NoisyConfig:
    """NOISY's meta-parameters.

    ``steps`` selection rounds of ``candidates`` morphed copies each, trained for
    ``train_batches`` batches of 64 at a learning rate annealed from ``lr``; ``neurons`` added
    or pruned per op; ``start_width`` the seed's single hidden layer; ``split_ratio`` and
    ``merge_ratio`` the width ratios that allow inserting and removing a layer;
    ``param_penalty`` the held-out loss charged per 10,000 parameters; ``max_params`` a hard
    cap (``None``: none); ``holdout`` the share of the training split used for selection.
    """

    steps: int = 20
    candidates: int = 4
    neurons: int = 8
    start_width: int = 8
    split_ratio: float = 0.5
    merge_ratio: float = 0.1
    train_batches: int = 20
    lr: float = 3e-3
    param_penalty: float = 0.0
    max_params: int | None = None
    holdout: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "candidates", "neurons", "start_width", "train_batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"NoisyConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.merge_ratio < self.split_ratio < math.inf:
            raise ConfigError(
                f"NoisyConfig.merge_ratio and split_ratio need 0 < merge_ratio < split_ratio, got "
                f"{self.merge_ratio} and {self.split_ratio}; fix merge_ratio or split_ratio"
            )
        if not (0 < self.lr < math.inf and 0 <= self.param_penalty < math.inf):
            raise ConfigError(
                f"NoisyConfig.lr must be > 0 and param_penalty >= 0 (finite), got lr={self.lr}, "
                f"param_penalty={self.param_penalty}"
            )
        if self.max_params is not None and self.max_params < 1:
            raise ConfigError(f"NoisyConfig.max_params must be >= 1, got {self.max_params}")
        if not 0 < self.holdout < 1:
            raise ConfigError(f"NoisyConfig.holdout must be in (0, 1), got {self.holdout}")


@dataclass(frozen=True)
class Move:
    """One morphism: an op of :data:`OPS` on hidden layer ``layer``."""

    op: str
    layer: int

    def describe(self) -> str:
        return f"{self.op}@{self.layer}"


def depth_moves(model: NoisyMLP, cfg: NoisyConfig) -> list[Move]:
    """The ``insert`` and ``remove`` moves the width ratios allow now."""
    moves = []
    for i in range(len(model.widths)):
        ratio = width_ratio(model, i)
        if ratio > cfg.split_ratio:
            moves.append(Move("insert", i))
        elif ratio < cfg.merge_ratio and len(model.widths) > 1:
            moves.append(Move("remove", i))
    return moves


def eligible_moves(model: NoisyMLP, cfg: NoisyConfig) -> dict[str, list[Move]]:
    """Every move allowed on ``model``, by op (ops with none are left out)."""
    layers = range(len(model.widths))
    moves = {
        "add": [Move("add", i) for i in layers],
        "prune": [Move("prune", i) for i in layers if model.widths[i] > 1],
        "relu": [Move("relu", i) for i in layers],
    }
    for move in depth_moves(model, cfg):
        moves.setdefault(move.op, []).append(move)
    return {op: found for op, found in moves.items() if found}


def apply_move(
    model: NoisyMLP, move: Move, cfg: NoisyConfig, x: torch.Tensor, gen: torch.Generator
) -> None:
    """Apply ``move`` in place; ``x`` is the batch ``prune`` measures fitness on."""
    if move.op == "add":
        add_neurons(model, move.layer, cfg.neurons, gen)
    elif move.op == "prune":
        prune_neurons(model, move.layer, cfg.neurons, x)
    elif move.op == "insert":
        insert_layer(model, move.layer)
    elif move.op == "remove":
        remove_layer(model, move.layer)
    elif move.op == "relu":
        model.relu[move.layer] = not model.relu[move.layer]
    else:
        raise ConfigError(f"unknown NOISY op {move.op!r}; pick one of {', '.join(OPS)}")


@dataclass(frozen=True)
class StepRecord:
    """One NOISY step: the kept move (``None``: the unchanged model won) and the result."""

    step: int
    move: str | None
    widths: tuple[int, ...]
    relu: tuple[bool, ...]
    params: int
    score: float


@dataclass
class NoisyResult:
    """The grown model, its history, and validation accuracy before and after."""

    model: NoisyMLP
    history: list[StepRecord]
    start_accuracy: float
    accuracy: float
    train_steps: int

    @property
    def params(self) -> int:
        return count_params(self.model)


@dataclass
class _Split:
    """Training images, the held-out selection images, and NOISY's random streams."""

    x: torch.Tensor
    y: torch.Tensor
    x_hold: torch.Tensor
    y_hold: torch.Tensor
    rng: random.Random
    gen: torch.Generator


def _split(data: Dataset, cfg: NoisyConfig) -> _Split:
    n_hold = max(1, int(len(data.x_train) * cfg.holdout))
    if n_hold >= len(data.x_train):
        raise ConfigError(f"NoisyConfig.holdout {cfg.holdout} leaves no training images")
    x, y = data.x_train, data.y_train
    gen = torch.Generator().manual_seed(cfg.seed)
    return _Split(x[:-n_hold], y[:-n_hold], x[-n_hold:], y[-n_hold:], random.Random(cfg.seed), gen)


def _lr(cfg: NoisyConfig, step: int) -> float:
    """Cosine annealing over the steps: early steps explore, late ones fine-tune."""
    share = 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
    return cfg.lr * (_MIN_LR_SHARE + (1 - _MIN_LR_SHARE) * share)


def _train(model: NoisyMLP, s: _Split, batches: list[torch.Tensor], lr: float) -> None:
    """A few AdamW steps; every candidate of a step sees the same ``batches``."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    for idx in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(s.x[idx]), s.y[idx]).backward()
        opt.step()
    model.train(False)


@torch.no_grad()
def _score(model: NoisyMLP, s: _Split, cfg: NoisyConfig) -> float:
    """Held-out loss plus the parameter penalty: lower fits better."""
    loss = float(F.cross_entropy(model(s.x_hold), s.y_hold))
    return loss + cfg.param_penalty * count_params(model) / 10_000


def _candidate(
    model: NoisyMLP, cfg: NoisyConfig, s: _Split, tries: int = 8
) -> tuple[Move, NoisyMLP] | None:
    """A copy of ``model`` with one random eligible move, within ``max_params``."""
    x = s.x[:_FITNESS_SAMPLES]
    for _ in range(tries):
        moves = eligible_moves(model, cfg)
        move = s.rng.choice(moves[s.rng.choice(sorted(moves))])  # op first: fair across ops
        child = copy.deepcopy(model)
        apply_move(child, move, cfg, x, s.gen)
        if cfg.max_params is None or count_params(child) <= cfg.max_params:
            return move, child
    return None


def _step(model: NoisyMLP, cfg: NoisyConfig, s: _Split, step: int) -> tuple[NoisyMLP, StepRecord]:
    """Train the model and its noisy candidates on the same batches; keep the best fitting."""
    pool: list[tuple[Move | None, NoisyMLP]] = [(None, copy.deepcopy(model))]
    pool += [c for _ in range(cfg.candidates) if (c := _candidate(model, cfg, s)) is not None]
    order = torch.randperm(len(s.x), generator=s.gen)
    batches = [
        order[torch.arange(b * 64, b * 64 + 64) % len(s.x)] for b in range(cfg.train_batches)
    ]
    best: tuple[float, Move | None, NoisyMLP] | None = None
    for move, cand in pool:
        _train(cand, s, batches, _lr(cfg, step))
        score = _score(cand, s, cfg)
        if best is None or score < best[0]:  # ties keep the earlier: the unchanged model first
            best = (score, move, cand)
    assert best is not None  # the pool always holds the unchanged model
    score, move, kept = best
    record = StepRecord(step, move.describe() if move else None, tuple(kept.widths),
                        tuple(kept.relu), count_params(kept), score)  # fmt: skip
    return kept, record


def noisy_search(data: Dataset, cfg: NoisyConfig) -> NoisyResult:
    """Grow an MLP on ``data`` with NOISY from a ``start_width`` single-hidden-layer seed.

    Example:
        >>> result = noisy_search(load_dataset("digits"), NoisyConfig(steps=10))
        >>> result.model.widths, result.accuracy
    """
    s = _split(data, cfg)
    n_in = math.prod(data.input_shape)
    model = NoisyMLP.create(n_in, [cfg.start_width], data.num_classes, s.gen)
    start = accuracy(model, data.x_val, data.y_val)
    history = []
    for step in range(cfg.steps):
        model, record = _step(model, cfg, s, step)
        history.append(record)
    final = accuracy(model, data.x_val, data.y_val)
    return NoisyResult(model, history, start, final, cfg.steps * cfg.train_batches)
