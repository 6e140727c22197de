"""Differentiable hardware-aware NAS (FBNet) with PruNet's three pruning techniques.

One supernet (:mod:`edgeauto.search.supernet`) is trained instead of many archs: the weights
warm up first, then weight steps (cross-entropy on 80% of the training split) alternate with
architecture steps (cross-entropy plus a latency-budget term, on the other 20%) while the
Gumbel-softmax temperature anneals. The budget term (``budget_term``) is either

- ``hinge`` (default): a two-sided hinge on the log of expected latency, zero inside a target
  band ``[floor, target] x budget``, ``strength x (relu(log(E / (B x target))) +
  relu(log(B x floor / E)))``. Scale-free, so one strength suits any device. The lower side
  matters: Adam's steps have about the same size whatever the gradient's scale, so once a
  one-sided hinge goes quiet under the budget only the noisy cross-entropy moves the logits
  and the latency the budget pressure overshot is never won back (``floor=0`` is one-sided);
- ``fbnet``: FBNet's loss (Wu et al. 2019, eq. 2), ``CE x alpha x log(LAT)^beta``: the
  cross-entropy *multiplied* by the latency factor, ``LAT`` the expected latency in
  microseconds (the paper's unit), defaults ``alpha=0.2``, ``beta=0.6`` as in the paper;
- ``fbnet-additive``: ``strength x log(1 + E / B)^beta`` *added* to the cross-entropy (this
  module's older reading of FBNet), latency in units of the budget plus one so the log stays
  positive and scale-free.

After every search epoch the derived arch is priced with the problem's predictor: over the
budget the strength doubles (and the band moves down when the expectation already sits in
it); well under the budget a two-sided hinge doubles its strength or moves its band up, a
one-sided term halves its strength. ``fbnet`` adapts its exponent ``beta`` instead (double
over, halve well under): its ``alpha`` only rescales the whole loss, which Adam ignores. The term prices E[lat] under the softmax of the logits,
not the Gumbel sample (see :meth:`SupernetSearch._arch_step`). Pruning is irreversible, so
it only happens while E[lat] lies in ``[floor, 1] x budget`` (the budget term has settled). Finally the
derived arch is filled greedily up to the budget (``fill``), the mirror of the over-budget
repair, so it lands at or just under the budget.

PruNet's techniques, each switchable (:class:`DNASConfig`): ``bipath`` (one stochastic bi-path
block per kernel searches the hidden width with two paths), ``block_pruning`` (candidates
whose probability falls below ``block_threshold`` are deleted) and ``layer_pruning`` (a layer
whose ``skip`` probability reaches ``layer_threshold`` is removed).

As a :class:`~edgeauto.search.base.Strategy`: the first :meth:`DNAS.ask` runs the search and
proposes the derived arch (the strongest candidate per remaining layer, repaired greedily to
the budget if its argmax exceeds it, else filled greedily up to it); later asks draw archs from the learned distribution, as
FBNet samples a few archs to train. The per-epoch curve is :attr:`DNAS.curve`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from edgeauto.counting import count_params
from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.search.base import STRATEGIES, SearchProblem, Strategy
from edgeauto.search.supernet import SuperNet, SupernetLatency
from edgeauto.spaces.base import Arch, Choice
from edgeauto.spaces.layerwise import LayerwiseSpace
from edgeauto.train import accuracy

#: the budget term's names, each with a line for ``--help`` (module doc: the formulas)
BUDGET_TERMS = {
    "hinge": "two-sided hinge on log E[lat] around a band under the budget (default)",
    "fbnet": "FBNet eq. 2: cross-entropy x alpha x log(E[lat] in us)^beta",
    "fbnet-additive": "cross-entropy + strength x log(1 + E[lat]/budget)^beta",
}
#: FBNet prices latency in microseconds, where ``log LAT`` is positive for any real network;
#: in our milliseconds (tables hold 0.04-2 ms) it would be negative and ``log^beta`` undefined
US_PER_MS = 1000.0


@dataclass(frozen=True)
class DNASConfig:
    """Settings of the supernet search. Epochs count passes over the weight split.

    ``max_batches`` caps the weight steps per epoch; ``budget_term`` is one of
    :data:`BUDGET_TERMS` (module doc); ``strength`` is the additive terms' initial weight,
    ``target`` and ``floor`` the band (as fractions of the budget) the hinge aims at
    (``floor=0``: one-sided), ``alpha`` and ``beta`` FBNet's factor and exponent (``beta``
    also the ``fbnet-additive`` exponent); ``adapt`` lets strength, band and the ``fbnet``
    exponent move after each search epoch (off: they stay fixed). ``fill`` upgrades the derived arch greedily while it stays within the budget. ``step`` is how far (in expansion
    units) a bi-path's split moves; ``prune_every`` is how many architecture steps pass
    between pruning checks, the first after ``prune_start`` of the search phase (a fraction:
    pruning is irreversible, so the logits get time to settle first); ``prune_when_settled``
    also holds pruning back while E[lat] is outside ``[floor, 1] x budget``.
    """

    warmup_epochs: int = 1
    search_epochs: int = 3
    batch_size: int = 64
    max_batches: int | None = None
    lr: float = 3e-3
    weight_decay: float = 1e-4
    arch_lr: float = 0.05
    tau_start: float = 5.0
    tau_end: float = 0.5
    budget_term: str = "hinge"
    strength: float = 2.0
    target: float = 0.95
    floor: float = 0.85
    alpha: float = 0.2
    beta: float = 0.6
    adapt: bool = True
    fill: bool = True
    val_fraction: float = 0.2
    bipath: bool = True
    step: float = 1.0
    bipath_threshold: float = 0.6
    block_pruning: bool = True
    block_threshold: float = 0.05
    layer_pruning: bool = True
    layer_threshold: float = 0.6
    prune_every: int = 10
    prune_start: float = 0.3
    prune_when_settled: bool = True

    def __post_init__(self) -> None:
        if self.budget_term not in BUDGET_TERMS:
            raise ConfigError(
                f"dnas budget_term must be one of {', '.join(BUDGET_TERMS)}, got "
                f"{self.budget_term!r}"
            )
        if not 0.0 <= self.floor < self.target:
            raise ConfigError(
                f"dnas floor must be in [0, target={self.target}), got {self.floor}; "
                "0 makes the hinge one-sided"
            )
        ints = ("warmup_epochs", "search_epochs", "batch_size", "prune_every")
        for name in ints:
            if getattr(self, name) < (0 if name == "warmup_epochs" else 1):
                raise ConfigError(
                    f"dnas {name} must be >= 1 (warmup >= 0), got {getattr(self, name)}"
                )
        probs = (
            "target",
            "val_fraction",
            "prune_start",
            "block_threshold",
            "bipath_threshold",
            "layer_threshold",
        )
        for name in probs:
            if not 0.0 < getattr(self, name) < 1.0 + (name == "target"):
                raise ConfigError(f"dnas {name} must be in (0, 1), got {getattr(self, name)}")
        positive = ("lr", "arch_lr", "tau_start", "tau_end", "step", "alpha", "beta")
        if any(not getattr(self, n) > 0 for n in positive) or self.strength < 0:
            raise ConfigError(
                f"dnas {', '.join(positive)} must be > 0 and strength >= 0; got "
                + ", ".join(f"{n}={getattr(self, n)}" for n in (*positive, "strength"))
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CurvePoint:
    """One epoch of the search: what the supernet derives and what it costs to train."""

    epoch: int
    phase: str
    accuracy: float  # the derived arch through the supernet's weights, on the arch split
    expected_ms: float  # E[latency] under softmax(logits), on the predictor's scale
    derived_ms: float  # the problem's prediction of the derived (argmax) arch
    params: int
    step_ms: float  # mean wall time of one weight (+ architecture) step
    memory_mb: float  # tensors saved for backward in one step + 4 x parameter bytes
    strength: float
    beta: float  # the fbnet exponent (adapted); the configured one for the other terms
    target: float
    floor: float
    tau: float
    removed_blocks: int
    removed_layers: int
    bipath_moves: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SavedBytes:
    """Bytes of the distinct tensors autograd saves for backward inside the context."""

    def __init__(self) -> None:
        self.total = 0
        self._seen: set[int] = set()
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self._seen:
            self._seen.add(storage.data_ptr())
            self.total += storage.nbytes()
        return t

    def __enter__(self) -> SavedBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


@dataclass
class _Split:
    """The training split cut in two: weights train on ``w``, architecture logits on ``a``."""

    xw: torch.Tensor
    yw: torch.Tensor
    xa: torch.Tensor
    ya: torch.Tensor

    @classmethod
    def of(cls, data: Dataset, fraction: float, gen: torch.Generator) -> _Split:
        n = len(data.x_train)
        order = torch.randperm(n, generator=gen)
        n_a = min(n - 1, max(1, round(n * fraction)))
        a, w = order[:n_a], order[n_a:]
        return cls(data.x_train[w], data.y_train[w], data.x_train[a], data.y_train[a])


@dataclass
class _Counters:
    arch_steps: int = 0
    removed_blocks: list[str] = field(default_factory=list)
    removed_layers: list[str] = field(default_factory=list)
    bipath_moves: int = 0


class SupernetSearch:
    """Trains a :class:`SuperNet` for one :class:`SearchProblem` (see the module doc)."""

    def __init__(self, problem: SearchProblem, config: DNASConfig) -> None:
        space, data = check_problem(problem)
        self.problem, self.cfg, self.space = problem, config, space
        self.gen = torch.Generator().manual_seed(problem.seed)
        self.split = _Split.of(data, config.val_fraction, self.gen)
        self.net = SuperNet(self.space, config.bipath, config.step)
        self.latency = SupernetLatency(self.space, problem.latency)
        self.strength, self.target, self.tau = config.strength, config.target, config.tau_start
        self.floor, self.beta = config.floor, config.beta
        self.scale = 1.0  # predictor ms / LUT-sum ms of the derived arch, updated per epoch
        self.counters = _Counters()
        self.curve: list[CurvePoint] = []
        self.w_opt = self._w_optimizer()
        self.a_opt = torch.optim.Adam(
            self.net.arch_parameters(), lr=config.arch_lr, betas=(0.5, 0.999)
        )
        self._per_epoch = self._batches_per_epoch()
        self._total_w = max(1, (config.warmup_epochs + config.search_epochs) * self._per_epoch)
        self._w_steps = 0

    def _batches_per_epoch(self) -> int:
        n = -(-len(self.split.xw) // self.cfg.batch_size)
        return min(n, self.cfg.max_batches) if self.cfg.max_batches else n

    def _w_optimizer(self, old: torch.optim.Optimizer | None = None) -> torch.optim.Optimizer:
        """AdamW over the current weights, keeping the state of weights that survived."""
        params = self.net.weight_parameters()
        opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        if old is not None:
            for p in params:
                if p in old.state:
                    opt.state[p] = old.state[p]
        return opt

    def _rebuild_optimizers(self) -> None:
        """After pruning: the deleted tensors leave the optimizers (and memory)."""
        self.w_opt = self._w_optimizer(self.w_opt)
        old = self.a_opt
        self.a_opt = torch.optim.Adam(
            self.net.arch_parameters(), lr=self.cfg.arch_lr, betas=(0.5, 0.999)
        )
        for p in self.net.arch_parameters():
            if p in old.state:
                self.a_opt.state[p] = old.state[p]

    # -- steps ------------------------------------------------------------------------------
    def _weight_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        lr = 0.5 * self.cfg.lr * (1 + math.cos(math.pi * self._w_steps / self._total_w))
        for group in self.w_opt.param_groups:
            group["lr"] = lr
        self.net.sample("gumbel", self.tau, self.gen)
        loss = F.cross_entropy(self.net(x), y)
        params = self.w_opt.param_groups[0]["params"]
        for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True)):
            p.grad = g
        self.w_opt.step()
        self._w_steps += 1

    def arch_loss(self, ce: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        """The architecture step's loss from its cross-entropy and E[lat] (ms, predictor's
        scale): ``ce x`` :meth:`latency_factor` for ``fbnet``, else ``ce +``
        :meth:`budget_term`."""
        if self.cfg.budget_term == "fbnet":
            return ce * self.latency_factor(expected)
        return ce + self.budget_term(expected)

    def latency_factor(self, expected: torch.Tensor) -> torch.Tensor:
        """FBNet's ``alpha x log(LAT)^beta`` (Wu et al. 2019, eq. 2), ``LAT`` = ``expected``
        in microseconds as in the paper, so ``log LAT > 0`` for every real network. A
        sub-e-microsecond expectation (only a synthetic cost model gets there) is clamped to
        e: ``log^beta`` of a number near or under 1 would be 0 or undefined."""
        us = (expected * US_PER_MS).clamp_min(math.e)
        return self.cfg.alpha * torch.log(us) ** self.beta

    def budget_term(self, expected: torch.Tensor) -> torch.Tensor:
        """The additive budget term (module doc) of ``hinge`` or ``fbnet-additive``; zero for
        ``fbnet``, which multiplies instead (:meth:`latency_factor`). ``expected`` in ms."""
        budget = self.problem.budget_ms
        if self.cfg.budget_term == "fbnet":
            return torch.zeros(())
        if self.cfg.budget_term == "fbnet-additive":
            return self.strength * torch.log1p(expected / budget) ** self.beta
        over = torch.relu(torch.log(expected / (budget * self.target)))
        if self.floor <= 0:
            return self.strength * over
        return self.strength * (over + torch.relu(torch.log(budget * self.floor / expected)))

    def _arch_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # The budget term prices the distribution itself (softmax of the logits), not the
        # Gumbel sample: at a high temperature a sample is near uniform, its latency far above
        # E[lat], and a term on it keeps pushing the logits down long after E[lat] is under.
        self.net.sample("mean")
        expected = self.latency.expected(self.net) * self.scale
        self.net.sample("gumbel", self.tau, self.gen)
        loss = self.arch_loss(F.cross_entropy(self.net(x), y), expected)
        params = self.net.arch_parameters()
        self.a_opt.zero_grad(set_to_none=True)
        for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True)):
            p.grad = g
        self.a_opt.step()
        self.counters.arch_steps += 1
        c = self.counters
        start = self.cfg.prune_start * self.cfg.search_epochs * self._per_epoch
        due = c.arch_steps >= start and c.arch_steps % self.cfg.prune_every == 0
        if due and (not self.cfg.prune_when_settled or self._settled()):
            self._prune()

    def _settled(self) -> bool:
        """Whether E[lat] (what the budget term steers) lies in ``[floor, 1] x budget``:
        pruning is irreversible, and while the term still pushes the logits hard it would cut
        what the push overshot."""
        expected, budget = self.expected_ms(), self.problem.budget_ms
        return self.cfg.floor * budget <= expected <= budget

    def _prune(self) -> None:
        """PruNet's three techniques, each as configured; optimizers follow any change."""
        cfg, c = self.cfg, self.counters
        changed = 0
        if cfg.block_pruning:
            removed = self.net.prune_blocks(cfg.block_threshold)
            c.removed_blocks += removed
            changed += len(removed)
        if cfg.layer_pruning:
            removed = self.net.prune_layers(cfg.layer_threshold)
            c.removed_layers += removed
            changed += len(removed)
        if cfg.bipath:
            moved = self.net.shrink_bipaths(cfg.bipath_threshold)
            c.bipath_moves += moved
            changed += moved
        if changed:
            self._rebuild_optimizers()

    # -- epochs -----------------------------------------------------------------------------
    def run(self) -> SuperNet:
        """Warm up, then search; returns the trained (and pruned) supernet."""
        self._update_scale()
        for epoch in range(self.cfg.warmup_epochs):
            self._epoch(epoch, "warmup")
        steps = self.cfg.search_epochs * self._per_epoch
        decay = (self.cfg.tau_end / self.cfg.tau_start) ** (1 / max(1, steps))
        for epoch in range(self.cfg.search_epochs):
            self._epoch(self.cfg.warmup_epochs + epoch, "search", decay)
            self._adapt()
        return self.net

    def _epoch(self, epoch: int, phase: str, decay: float = 1.0) -> None:
        self.net.train()
        xw, yw, xa, ya = self.split.xw, self.split.yw, self.split.xa, self.split.ya
        order = torch.randperm(len(xw), generator=self.gen)
        bs, times, memory = self.cfg.batch_size, [], 0.0
        for b in range(self._per_epoch):
            idx = order[b * bs : (b + 1) * bs]
            start = time.perf_counter()
            with SavedBytes() as saved:
                self._weight_step(xw[idx], yw[idx])
            if phase == "search":
                a_idx = torch.randint(len(xa), (min(bs, len(xa)),), generator=self.gen)
                self._arch_step(xa[a_idx], ya[a_idx])
                self.tau *= decay
            times.append(time.perf_counter() - start)
            memory = max(memory, saved.total + 16 * count_params(self.net))
        self._record(epoch, phase, 1000 * sum(times) / len(times), memory / 1e6)

    def _update_scale(self) -> None:
        """Relate the LUT sum to the problem's predictor at the current derived arch."""
        arch = self.net.derive()
        self.scale = self.problem.predict(arch) / max(1e-12, self.latency.naive(arch))

    def _adapt(self) -> None:
        """Move the budget term so the derived arch lands at or just under the budget."""
        self._update_scale()
        if not self.cfg.adapt:
            return
        last, budget = self.curve[-1], self.problem.budget_ms
        if self.cfg.budget_term == "fbnet":  # alpha only rescales the loss: move the exponent
            if last.derived_ms > budget:
                self.beta *= 2
            elif last.derived_ms < 0.9 * budget:
                self.beta /= 2
            return
        if last.derived_ms > budget:
            self.strength = max(2 * self.strength, 0.5)
            if last.expected_ms <= budget * self.target:  # the argmax is dearer than E[lat]
                self._move_band(0.9)
        elif last.derived_ms < 0.9 * budget:
            if self.cfg.budget_term == "fbnet-additive" or self.floor <= 0:  # one-sided
                self.strength /= 2
                self._move_band(1 / 0.9)
            elif last.expected_ms >= budget * self.floor:  # the argmax is cheaper than E[lat]
                self._move_band(1 / 0.9)
            else:  # E[lat] under the band: its lower side pulls too weakly
                self.strength = max(2 * self.strength, 0.5)

    def _move_band(self, factor: float) -> None:
        """Scale the hinge's band, its top kept at or under the budget."""
        factor = min(factor, 1.0 / self.target)
        self.target *= factor
        self.floor *= factor

    @torch.no_grad()
    def expected_ms(self) -> float:
        """Expected latency (ms, predictor's scale) under the softmax of the logits."""
        self.net.sample("mean")
        return float(self.latency.expected(self.net)) * self.scale

    def derived_accuracy(self) -> float:
        """Accuracy of the derived arch, run through the supernet's weights, on the arch split."""
        self.net.sample("hard")
        return accuracy(self.net, self.split.xa, self.split.ya)

    def _record(self, epoch: int, phase: str, step_ms: float, memory_mb: float) -> None:
        arch, c = self.net.derive(), self.counters
        self.curve.append(
            CurvePoint(
                epoch, phase, self.derived_accuracy(), self.expected_ms(),
                self.problem.predict(arch), count_params(self.net), step_ms, memory_mb,
                self.strength, self.beta, self.target, self.floor, self.tau, len(c.removed_blocks),
                len(c.removed_layers), c.bipath_moves,
            )
        )  # fmt: skip


def check_problem(problem: SearchProblem) -> tuple[LayerwiseSpace, Dataset]:
    """The problem's space and data; :class:`ConfigError` unless ``dnas`` can search it."""
    if not isinstance(problem.space, LayerwiseSpace):
        raise ConfigError(
            f"strategy dnas searches layer-wise spaces (fbnet-lite, fbnet-micro), not "
            f"{problem.space.name}; pick one with --space or another --strategy"
        )
    data = problem.data
    if data is None:
        raise ConfigError(
            "strategy dnas trains a supernet and needs SearchProblem.data (the run job passes "
            "the run's dataset); set data= or pick another strategy"
        )
    space = problem.space
    if data.input_shape != space.input_shape or data.num_classes != space.num_classes:
        raise ConfigError(
            f"dnas data is {data.input_shape} with {data.num_classes} classes but space "
            f"{space.name} was built for {space.input_shape} with {space.num_classes}; build the "
            "space for the dataset"
        )
    return space, data


@STRATEGIES.register("dnas")
class DNAS(Strategy):
    """Differentiable search of one supernet under the latency budget (see the module doc).

    Example:
        >>> dnas = DNAS(SearchProblem(space, table, 0.05, evaluate, trials=1, data=data))
        >>> arch = dnas.ask()  # trains the supernet, then derives
        >>> dnas.curve[-1].derived_ms <= 0.05
        True
    """

    def __init__(self, problem: SearchProblem, config: DNASConfig | None = None) -> None:
        super().__init__(problem)
        check_problem(problem)
        self.config = config or DNASConfig()
        self.search_run: SupernetSearch | None = None
        self.derived: Arch | None = None  # the argmax arch, before any repair to the budget
        self.asked: list[Arch] = []

    @property
    def curve(self) -> list[CurvePoint]:
        return self.search_run.curve if self.search_run else []

    @property
    def supernet(self) -> SuperNet:
        return self._searched().net

    def _searched(self) -> SupernetSearch:
        if self.search_run is None:
            with torch.random.fork_rng(devices=[]):  # seeded init, caller's RNG untouched
                torch.manual_seed(self.problem.seed)
                run = SupernetSearch(self.problem, self.config)
                run.run()
            self.search_run = run
            self.derived = run.net.derive()
        return self.search_run

    def ask(self) -> Arch:
        """The derived arch first, then distinct archs drawn from the learned distribution."""
        net = self._searched().net
        if not self.asked:
            assert self.derived is not None
            arch = self.fit_budget(self.derived)
            arch = self.fill_budget(arch) if self.config.fill else arch
        else:
            arch = self._draw(net)
        self.asked.append(arch)
        return arch

    def _draw(self, net: SuperNet) -> Arch:
        seen = set(self.asked)
        for _ in range(200):
            arch = net.sample_arch(self.rng)
            if arch not in seen and self.problem.fits(arch):
                return arch
        arch = self.mutate_feasible(self.asked[0])
        for _ in range(200):  # the learned distribution is peaked: fall back to the space
            if arch not in seen:
                return arch
            arch = self.sample_feasible()
        return arch  # a space with fewer feasible archs than trials: a repeat is all there is

    def weights_for(self, arch: Arch) -> dict[str, torch.Tensor]:
        """Supernet weights for ``space.build(arch)`` (the "inherit" option of training)."""
        return self.supernet.weights_for(arch)

    def fit_budget(self, arch: Arch) -> Arch:
        """``arch``, or its greedy repair: one decision at a time, the change that saves the
        most latency weighted by its probability in the supernet, until it fits."""
        for _ in range(100):
            if self.problem.fits(arch):
                return arch
            ms = self.problem.predict(arch)
            moves = [(ms - self.problem.predict(a), p, a) for a, p in self._moves(arch)]
            moves = [m for m in moves if m[0] > 0]
            if not moves:
                break
            arch = max(moves, key=lambda m: m[0] * (m[1] + 0.05))[2]
        return arch if self.problem.fits(arch) else self.cheapest

    def fill_budget(self, arch: Arch) -> Arch:
        """``arch`` upgraded greedily while it fits: one decision at a time (a wider stage, a
        larger kernel or expansion, a skipped layer back), the upgrade with the most supernet
        probability per ms it adds, until none fits. The mirror of :meth:`fit_budget`: the
        search's irreversible cuts may leave budget unused, and unused budget is capacity."""
        for _ in range(100):
            ms = self.problem.predict(arch)
            moves = [
                ((p + 0.05) / max(self.problem.predict(a) - ms, 1e-9), a)
                for a, p in self._moves(arch)
                if _is_upgrade(arch, a) and self.problem.fits(a)
            ]
            if not moves:
                break
            arch = max(moves, key=lambda m: m[0])[1]
        return arch

    def _moves(self, arch: Arch) -> list[tuple[Arch, float]]:
        """Every one-decision change of ``arch`` with the supernet's probability of it."""
        net, space = self.supernet, self.problem.space
        assert isinstance(space, LayerwiseSpace)
        out: list[tuple[Arch, float]] = []
        for i, (spec, alpha) in enumerate(zip(space.config.stages, net.width_alpha)):
            p = torch.softmax(alpha.detach(), 0).tolist()
            for w, q in zip(spec.widths, p):
                if w != arch.widths[i]:
                    out.append((Arch(_set(arch.widths, i, w), arch.layers), q))
        probs = _choice_probs(net)
        for i, stage in enumerate(arch.layers):
            for j, current in enumerate(stage):
                for c in space.layer_choices(i, j):
                    if c != current:
                        layers = _set(arch.layers, i, _set(stage, j, c))
                        out.append((Arch(arch.widths, layers), probs.get((i, j, c), 0.0)))
        return out


def _is_upgrade(old: Arch, new: Arch) -> bool:
    """Whether ``new`` (one decision away from ``old``) has at least ``old``'s capacity in
    every respect: a wider stage, or a block whose kernel and expansion are no smaller (and
    groups no more), or any block where ``old`` skips."""
    if old.widths != new.widths:
        return all(b >= a for a, b in zip(old.widths, new.widths))
    for a, b in zip(_flat(old), _flat(new)):
        if a != b:
            if b.is_skip or a.is_skip:
                return not b.is_skip
            return b.kernel >= a.kernel and b.expansion >= a.expansion and b.groups <= a.groups
    return False


def _flat(arch: Arch) -> list[Choice]:
    return [c for stage in arch.layers for c in stage]


def _set(seq: tuple[Any, ...], i: int, value: Any) -> tuple[Any, ...]:
    return (*seq[:i], value, *seq[i + 1 :])


def _choice_probs(net: SuperNet) -> dict[tuple[int, int, Choice], float]:
    """Probability of each (stage, layer, choice) the supernet still holds."""
    out: dict[tuple[int, int, Choice], float] = {}
    for layer in net.layers:
        if not hasattr(layer, "alpha"):
            out[(layer.stage, layer.layer, Choice(0, 0))] = 1.0  # removed: skip for sure
            continue
        for name, p in zip(layer.names, layer.probs().tolist()):
            out[(layer.stage, layer.layer, layer.choice(name))] = p
    return out
