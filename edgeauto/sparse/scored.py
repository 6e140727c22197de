"""Sparse training methods that score weights or neurons while they train.

- ``gibbs``: Gibbs pruning (Labach & Valaee, "Neural network sparsification using Gibbs
  measures"): every step a mask is drawn from a Gibbs measure over the layer's weights whose
  energy favours large magnitudes, the temperature annealed geometrically towards 0 until
  ``end_fraction`` of training; then the exact top-k by the final energy, trained on fixed.
- ``gibbs-filter``: the same with one mask variable per filter (conv output channel, linear
  row); the classifier layer stays per weight and the boundary filter is trimmed by magnitude.
- ``hessian``: Hessian-aware neuron pruning while training (after HAP, Yu et al.): ``rounds``
  prune steps spread over ``end_fraction`` of training remove the output channels of least
  second-order saliency ``1/2 w^T H w`` (Hutchinson, neuron-level probes); the last step
  trims the boundary neuron by magnitude to hit the target exactly (``hessian-spectral``,
  in :mod:`edgeauto.sparse.spectral`, shares these rounds).
- ``activation``: activation-based iterative deactivation (synaptic pruning): every
  ``delta_t`` steps the active connections of least ``E|x_in| * |w|`` are switched off until
  the target is reached at ``end_fraction`` of training; then the mask stays fixed.

All four prune each layer to the same sparsity (per-layer counts rounded so the total is
exactly ``config.sparsity``) and count training FLOPs step by step at the density each step
really trained with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import nn

from edgeauto.data import Dataset
from edgeauto.sparse.base import SPARSE_METHODS, SparseMethod, steps_per_epoch
from edgeauto.sparse.masks import Masks, keep_counts, keep_per_layer, maskable
from edgeauto.train import StepHook, accuracy

#: Gibbs temperatures, relative to the layer's mean energy: near-uniform start, near-step end
T_START, T_END = 1.0, 1e-3
#: Rademacher probes per Hessian estimate, and training samples it is averaged over
HUTCHINSON_SAMPLES, SCORE_SAMPLES = 4, 256


def uniform_keep(
    params: Mapping[str, torch.Tensor], sparsity: float, alive: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Kept weights per layer, every layer at ``sparsity``, the total exact. With ``alive``
    (live weights per layer) no layer is asked to keep more than it has: rounding may give a
    layer one more than last time, and pruned weights must not come back."""
    numel = {k: p.numel() for k, p in params.items()}
    counts = keep_counts(numel, dict.fromkeys(numel, 1.0 - sparsity), sparsity)
    if alive is None:
        return counts
    want = sum(counts.values())
    capped = {k: min(c, alive[k]) for k, c in counts.items()}
    for k in sorted(capped, key=lambda k: capped[k] - alive[k]):  # most room first
        capped[k] = min(alive[k], capped[k] + want - sum(capped.values()))
    return capped


def live(masks: Masks) -> dict[str, int]:
    """Live weights per layer."""
    return {k: int(m.sum()) for k, m in masks.masks.items()}


def classifier(params: Mapping[str, torch.Tensor]) -> str:
    """The last maskable layer in module order: its output rows are classes, never neurons."""
    return list(params)[-1]


def rows_to_weights(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-output-channel tensor broadcast to the layout of the weight ``like``."""
    return rows.view(-1, *([1] * (like.ndim - 1))).expand_as(like).clone()


def keep_rows(
    row_score: torch.Tensor, alive: torch.Tensor, magnitude: torch.Tensor, keep: int,
    exact: bool = True,
) -> torch.Tensor:  # fmt: skip
    """Keep whole output channels of ``alive`` by descending ``row_score`` while they fit in
    ``keep`` weights. The boundary channel then keeps its largest-``magnitude`` live weights
    so exactly ``keep`` survive (``exact``), or is kept whole (at least ``keep`` survive)."""
    rows, mag = alive.flatten(1), magnitude.flatten(1)
    counts = rows.sum(1)
    score = torch.where(counts > 0, row_score.float(), -math.inf)  # dead rows never return
    order = torch.argsort(score, descending=True, stable=True)
    whole = int((torch.cumsum(counts[order], 0) <= keep).sum())  # a prefix: counts >= 0
    out = torch.zeros_like(rows)
    out[order[:whole]] = rows[order[:whole]]
    left = keep - int(counts[order[:whole]].sum())
    if left > 0 and whole < len(order):
        b = int(order[whole])
        if exact:
            cand = torch.where(rows[b], mag[b].float(), -math.inf)
            out[b, torch.argsort(cand, descending=True, stable=True)[:left]] = True
        else:
            out[b] = rows[b]
    return out.view_as(alive)


def gibbs_threshold(energy: torch.Tensor, expected: float, temp: float) -> float:
    """The field ``theta`` at which ``sum sigmoid((energy - theta) / temp) = expected``: the
    Gibbs measure then keeps the budget on average (the paper's sparsity constraint, solved
    by bisection instead of a penalty term); it tends to the top-k cut as ``temp -> 0``."""
    lo, hi = float(energy.min()) - 40 * temp, float(energy.max()) + 40 * temp
    for _ in range(30):  # the bracket shrinks a billion-fold
        mid = (lo + hi) / 2
        if float(torch.sigmoid((energy - mid) / temp).sum()) > expected:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def neuron_saliency(
    model: nn.Module, loss_fn: Callable[[], torch.Tensor], samples: int, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Second-order saliency ``1/2 w_p^T H_pp w_p`` of every output channel ``p`` of the
    maskable layers: the loss increase of zeroing that neuron, to second order. Hutchinson
    with neuron-level probes: ``v = z * w``, one seeded Rademacher sign ``z`` per neuron,
    and ``1/2 sum_{j in p} v_j (Hv)_j`` is unbiased for it (cross-neuron terms cancel on
    average), averaged over ``samples`` double-backward Hessian-vector products ``Hv``."""
    params = maskable(model)
    names, ps = list(params), list(params.values())
    grads = torch.autograd.grad(loss_fn(), ps, create_graph=True)
    out = [torch.zeros(p.shape[0]) for p in ps]
    for _ in range(samples):
        zs = [torch.randint(0, 2, p.shape[:1], generator=gen).float() * 2 - 1 for p in ps]
        vs = [rows_to_weights(z.to(p.dtype), p) * p.detach() for z, p in zip(zs, ps)]
        hvs = torch.autograd.grad(grads, ps, grad_outputs=vs, retain_graph=True, allow_unused=True)
        for acc, v, hv in zip(out, vs, hvs):
            if hv is not None:  # a weight the gradient does not depend on has no curvature
                acc.add_((v * hv.detach()).flatten(1).sum(1).float(), alpha=0.5 / samples)
    return dict(zip(names, out))


def seeded_loss(
    model: nn.Module, data: Dataset, samples: int, gen: torch.Generator
) -> tuple[Callable[[], torch.Tensor], int]:
    """The cross-entropy of ``model`` on ``samples`` seeded training images (on the model's
    device, as the training steps see them), as a closure, and the images it uses."""
    idx = torch.randperm(len(data.x_train), generator=gen)[:samples]
    dev = next(model.parameters()).device
    x, y = data.x_train[idx].to(dev), data.y_train[idx].to(dev)
    return lambda: nn.functional.cross_entropy(model(x), y), len(idx)


@contextmanager
def kept_buffers(model: nn.Module) -> Iterator[None]:
    """Restore the model's buffers afterwards: a scoring pass must not train BatchNorm."""
    saved = [b.clone() for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(model.buffers(), saved):
                b.copy_(s)


class _StepCounted(SparseMethod):
    """Shared by the methods below: training whose masks change inside ``on_step``."""

    def train_counted(
        self, model: nn.Module, data: Dataset, masks: Masks, on_step: StepHook
    ) -> None:
        """``self.train`` over all epochs, the FLOPs counted per step at the masks that step
        used (``train`` alone would count every step at the final density)."""
        start, counted = self._flops, []

        def step(i: int) -> None:
            self.count_flops(masks, self.config.batch_size)
            on_step(i)
            counted.append(self._flops)  # includes any scoring cost on_step adds

        self.train(model, data, masks, self.config.epochs, on_step=step)
        self._flops = counted[-1] if counted else start

    def end_step(self, data: Dataset) -> int:
        """The step at ``end_fraction`` of training, where the target is reached."""
        total = self.config.epochs * steps_per_epoch(self.config, data)
        return max(1, int(self.config.end_fraction * total))

    def log_final(self, model: nn.Module, data: Dataset, masks: Masks) -> None:
        self.history.append({"round": "final", "sparsity": masks.sparsity,
                             "val_acc": accuracy(model, data.x_val, data.y_val)})  # fmt: skip


@SPARSE_METHODS.register("gibbs")
class Gibbs(_StepCounted):
    """Gibbs pruning, unstructured: per weight, ``p(keep) = sigmoid((w^2/s - theta) / T)``.

    Choices: the energy is the layer's ``w^2`` over its mean ``s`` (so one temperature scale
    suits every layer); ``theta`` makes the expected kept count the layer's budget; ``T``
    goes geometrically from ``T_START`` to ``T_END`` by ``end_fraction`` of training, where
    the mask becomes the exact top-k of the energy and stays fixed. As in the paper a dropped
    weight keeps its value (in a shadow copy) and returns when it is sampled again. History:
    every ``delta_t`` steps the temperature, the sampled sparsity, its ``agreement`` with the
    current top-k and, after training, its ``final_agreement`` with the final mask.
    """

    name: ClassVar[str] = "gibbs"
    per_filter: ClassVar[bool] = False

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        cfg, params = self.config, maskable(model)
        counts, end = uniform_keep(params, cfg.sparsity), self.end_step(data)
        shadow = {k: p.detach().clone() for k, p in params.items()}  # dense values kept aside
        gen = torch.Generator().manual_seed(cfg.seed)
        masks, samples = self.sample(shadow, counts, T_START, gen), []

        @torch.no_grad()
        def update(step: int) -> None:
            if step > end:
                return
            for k, p in params.items():  # kept weights took the step; dropped ones wait
                shadow[k] = torch.where(masks.masks[k], p, shadow[k])
            temp = T_START * (T_END / T_START) ** (step / end)
            if step == end:
                masks.masks.update(self.top_k(shadow, counts).masks)
            else:
                masks.masks.update(self.sample(shadow, counts, temp, gen).masks)
            for k, p in params.items():
                p.copy_(shadow[k] * masks.masks[k])
            if step % cfg.delta_t == 0 and step < end:
                samples.append(self._flat(masks))
                self._log(step, temp, masks, self.top_k(shadow, counts))

        self.train_counted(model, data, masks, update)
        final = self._flat(masks)
        for rec, s in zip(self.history, samples):
            rec["final_agreement"] = float((s == final).float().mean())
        self.log_final(model, data, masks)
        return masks

    def by_filter(self, name: str, shadow: Mapping[str, torch.Tensor]) -> bool:
        """Whether layer ``name`` has one variable per filter (never the classifier)."""
        return self.per_filter and name != classifier(shadow)

    @staticmethod
    def energy(w: torch.Tensor, by_filter: bool) -> torch.Tensor:
        """Normalised energy per mask variable: ``w^2`` (or its filter mean) over the mean."""
        sq = w.detach().float() ** 2
        scale = sq.mean().clamp_min(1e-12)
        return sq.flatten(1).mean(1) / scale if by_filter else sq / scale

    def sample(
        self, shadow: dict[str, torch.Tensor], counts: dict[str, int], temp: float,
        gen: torch.Generator,
    ) -> Masks:  # fmt: skip
        """One draw from the Gibbs measure of every layer at temperature ``temp``."""
        out = {}
        for k, w in shadow.items():
            u = self.energy(w, self.by_filter(k, shadow))
            per = w.numel() // u.numel()  # weights sharing one variable
            theta = gibbs_threshold(u, counts[k] / per, temp)
            keep = torch.bernoulli(torch.sigmoid((u - theta) / temp), generator=gen).bool()
            out[k] = keep if per == 1 else rows_to_weights(keep, w)
        return Masks(out)

    def top_k(self, shadow: dict[str, torch.Tensor], counts: dict[str, int]) -> Masks:
        """The zero-temperature mask: the exact top-k variables of the energy."""
        out = {}
        for k, w in shadow.items():
            if self.by_filter(k, shadow):
                alive = torch.ones_like(w, dtype=torch.bool)
                out[k] = keep_rows(self.energy(w, True), alive, w.abs(), counts[k])
            else:
                out[k] = keep_per_layer({k: self.energy(w, False)}, counts).masks[k]
        return Masks(out)

    @staticmethod
    def _flat(masks: Masks) -> torch.Tensor:
        return torch.cat([m.flatten() for m in masks.masks.values()])

    def _log(self, step: int, temp: float, sampled: Masks, best: Masks) -> None:
        agree = float((self._flat(sampled) == self._flat(best)).float().mean())
        self.history.append({"step": step, "temperature": temp, "sparsity": sampled.sparsity,
                             "agreement": agree})  # fmt: skip


@SPARSE_METHODS.register("gibbs-filter")
class GibbsFilter(Gibbs):
    """Gibbs pruning per filter: each conv output channel / linear row is one mask variable
    with energy ``mean(w^2)`` of the filter, as the paper's structured variant (its
    interaction term left out: the field ``theta`` holds the budget). The final mask keeps
    whole filters by energy; the boundary filter keeps its largest weights so the layer hits
    its count exactly, so one filter per layer may be partial. The classifier layer (the
    last one) is sampled per weight: its rows are classes, dropping them drops classes.
    """

    name: ClassVar[str] = "gibbs-filter"
    per_filter: ClassVar[bool] = True


@SPARSE_METHODS.register("hessian")
class HessianNeuron(_StepCounted):
    """Hessian-aware neuron pruning while training (after HAP, Yu et al.).

    A neuron's (output channel's) score is ``1/2 w^T H w`` over its weights, the loss
    increase of removing it to second order (HAP approximates it by ``Tr(H)/n ||w||^2``),
    estimated by Hutchinson (:func:`neuron_saliency`) with ``HUTCHINSON_SAMPLES`` seeded
    probes on ``SCORE_SAMPLES`` training images, BatchNorm statistics restored afterwards.
    Probes carry one sign per neuron: per-weight probes (a diagonal estimate summed over the
    neuron) were far too noisy at a few samples (digits MLP at 0.8 sparsity: 0.49-0.56
    accuracy against 0.88-0.92). ``rounds`` prune steps are spread evenly over
    ``end_fraction`` of training, round ``r`` at sparsity ``1 - (1 - s)^(r/rounds)`` per
    layer. Earlier rounds remove whole neurons only (the boundary neuron stays whole, so
    sparsity lands just under the schedule); the last trims the boundary neuron by magnitude
    so the target is exact. The classifier's rows are classes, not neurons to remove: it is
    pruned per weight by magnitude (per-weight Optimal Brain Damage estimates were too noisy
    there too: 0.67-0.74). History: per round the sparsity and the dead neurons.
    """

    name: ClassVar[str] = "hessian"
    score_samples: ClassVar[int] = SCORE_SAMPLES

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        cfg, end = self.config, self.end_step(data)
        # a later round landing on the same step wins, so the last round is never skipped
        rounds = {max(1, round(r * end / cfg.rounds)): r for r in range(1, cfg.rounds + 1)}
        masks = Masks.dense(model)
        gen = torch.Generator().manual_seed(cfg.seed)

        def update(step: int) -> None:
            self.between_rounds(model, data, masks, step, gen)
            if step in rounds:
                self.prune(model, data, masks, rounds[step], gen)
                self.history[-1]["step"] = step

        self.train_counted(model, data, masks, update)
        self.log_final(model, data, masks)
        return masks

    def prune(
        self, model: nn.Module, data: Dataset, masks: Masks, r: int, gen: torch.Generator
    ) -> None:
        """Round ``r``: prune every layer to the schedule by saliency (in place)."""
        cfg, params = self.config, maskable(model)
        last = r == cfg.rounds
        target = cfg.sparsity if last else 1 - (1 - cfg.sparsity) ** (r / cfg.rounds)
        counts = uniform_keep(params, target, live(masks))
        scores = self.saliency(model, data, masks, gen)
        for k, p in params.items():
            alive, mag = masks.masks[k], p.detach().abs()
            if k == classifier(params):
                s = torch.where(alive, mag, -1.0)
                masks.masks[k] = keep_per_layer({k: s}, counts).masks[k] & alive
            else:
                masks.masks[k] = keep_rows(scores[k], alive, mag, counts[k], exact=last)
        masks.apply(model)
        dead = sum(int((~m.flatten(1).any(1)).sum()) for m in masks.masks.values())
        self.history.append({"round": r, "sparsity": masks.sparsity, "dead_neurons": dead})

    def between_rounds(
        self, model: nn.Module, data: Dataset, masks: Masks, step: int, gen: torch.Generator
    ) -> None:
        """What every training step does besides the prune rounds: nothing here."""

    def saliency(
        self, model: nn.Module, data: Dataset, masks: Masks, gen: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Hutchinson saliency on a seeded batch, in training mode as the steps see it."""
        loss, n = seeded_loss(model, data, self.score_samples, gen)
        with kept_buffers(model):
            scores, products = self.score(model, loss, masks, gen)
        # the gradient and each Hessian-vector product cost about one training step each
        self.count_flops(masks, (1 + products) * n)
        return scores

    def score(
        self, model: nn.Module, loss: Callable[[], torch.Tensor], masks: Masks,
        gen: torch.Generator,
    ) -> tuple[dict[str, torch.Tensor], int]:  # fmt: skip
        """Per-output-channel scores of the maskable layers, and the Hessian-vector products
        they cost: here the Hutchinson estimate of ``1/2 w_p^T H_pp w_p``."""
        return neuron_saliency(model, loss, HUTCHINSON_SAMPLES, gen), HUTCHINSON_SAMPLES


class InputMeter:
    """Mean ``|x|`` per input channel of every conv / linear layer, from forward pre-hooks,
    averaged over the training steps since the last :meth:`reset`."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = {f"{n}.weight" if n else "weight": m for n, m in model.named_modules()
                        if isinstance(m, (nn.Conv2d, nn.Linear))}  # fmt: skip
        self.sums: dict[str, torch.Tensor] = {}
        self.seen: dict[str, int] = {}

    @contextmanager
    def recording(self) -> Iterator[InputMeter]:
        handles = [m.register_forward_pre_hook(self._hook(k)) for k, m in self.modules.items()]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def _hook(self, name: str) -> Callable[[nn.Module, Any], None]:
        def hook(mod: nn.Module, inp: Any) -> None:
            x = inp[0].detach().abs()
            ch = 1 if isinstance(mod, nn.Conv2d) else x.ndim - 1  # linear: features last
            dims = [d for d in range(x.ndim) if d != ch]
            self.sums[name] = self.sums.get(name, 0) + x.mean(dims)
            self.seen[name] = self.seen.get(name, 0) + 1

        return hook

    def importance(self, name: str, w: torch.Tensor) -> torch.Tensor:
        """``E|x_in| * |w|`` per connection (plain ``|w|`` before any step was seen)."""
        mod = self.modules[name]
        act = self.sums[name] / self.seen[name] if self.seen.get(name) else None
        if act is None:
            return w.detach().abs()
        groups = mod.groups if isinstance(mod, nn.Conv2d) else 1
        return expand_inputs(act, w, groups) * w.detach().abs()

    def reset(self) -> None:
        self.sums, self.seen = {}, {}


def expand_inputs(act: torch.Tensor, w: torch.Tensor, groups: int) -> torch.Tensor:
    """Per-input-channel ``act`` laid out like ``w`` (out, in/groups, ...): ``w[o, c]`` reads
    input channel ``(o // (out/groups)) * (in/groups) + c``."""
    out, per = w.shape[0], w.shape[1]
    lay = act.view(groups, 1, per).expand(groups, out // groups, per).reshape(out, per)
    return lay.view(out, per, *([1] * (w.ndim - 2))).expand_as(w)


@SPARSE_METHODS.register("activation")
class ActivationImportance(_StepCounted):
    """Activation-based iterative deactivation, after synaptic pruning in the brain.

    A connection's importance is its activity contribution ``E|x_in| * |w|``: the mean
    absolute input (per input channel for convs, over batch and positions) since the last
    update, times the weight's magnitude. Every ``delta_t`` steps, and at the step at
    ``end_fraction`` of training, each layer's least important active connections are
    switched off, to sparsity ``1 - (1 - s)^(t / end)`` at step ``t`` (exact at the end);
    switched-off connections never return, and the mask stays fixed after ``end``. History:
    per update the step and the sparsity.
    """

    name: ClassVar[str] = "activation"

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        cfg, params = self.config, maskable(model)
        end, masks, meter = self.end_step(data), Masks.dense(model), InputMeter(model)

        def update(step: int) -> None:
            if step > end or (step % cfg.delta_t and step != end):
                return
            target = cfg.sparsity if step == end else 1 - (1 - cfg.sparsity) ** (step / end)
            scores = {k: torch.where(masks.masks[k], meter.importance(k, p), -1.0)
                      for k, p in params.items()}  # fmt: skip
            counts = uniform_keep(params, target, live(masks))
            masks.masks.update(keep_per_layer(scores, counts).masks)
            masks.apply(model)
            meter.reset()
            self.history.append({"step": step, "sparsity": masks.sparsity})

        with meter.recording():
            self.train_counted(model, data, masks, update)
        self.log_final(model, data, masks)
        return masks
