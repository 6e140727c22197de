"""``hessian-spectral``: neuron pruning while training towards a flat minimum, after
Ebrahimi & Klabjan, "Neuron-based pruning of deep neural networks with better generalization
using Kronecker factored curvature approximation" (2021, arXiv:2111.08577).

The spectral radius of the Hessian (its largest ``|eigenvalue|``) is used twice: the
network's, over all conv / linear weights, is pushed down while training (a step along
``-grad rho``, its eigenvector held fixed); each neuron's own block scores it for removal.
Both by power iteration on exact double-backward Hessian-vector products.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import ClassVar

import torch
from torch import nn

from edgeauto.data import Dataset
from edgeauto.sparse.base import SPARSE_METHODS, SparseConfig
from edgeauto.sparse.masks import Masks, maskable
from edgeauto.sparse.scored import HessianNeuron, classifier, kept_buffers, seeded_loss

#: power-iteration steps per Hessian block, and the relative change of every block's
#: eigenvalue estimate under which they stop early (1% is ample for a ranking)
POWER_ITERS, POWER_TOL = 8, 1e-2
#: training samples the spectral radius is taken on: every power step costs one product per
#: neuron (small_cnn at width 8: 56 a step), so fewer than Hutchinson's (4 products a round)
SPECTRAL_SAMPLES = 64
#: output channels whose Hessian blocks one batched product carries (bounds its memory)
POWER_CHUNK = 64
#: training steps between two steps down the network's spectral radius, and how far each
#: moves the live weights (root mean square, in units of the learning rate)
FLAT_EVERY, FLATNESS = 10, 0.5


def power_iteration(
    hvp: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, iters: int, tol: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Dominant eigenvalue of ``G`` symmetric blocks at once: ``v`` is ``(G, n)``, ``hvp``
    maps it to the rows ``H_g v_g``. Returns the Rayleigh quotients ``v_g^T H_g v_g`` (unit
    ``v_g``, signed: the eigenvalue of largest magnitude, so ``abs`` is the spectral radius)
    the unit vectors reached and the products used; stops once no estimate moved by more than
    ``tol`` (relative)."""
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)
    lam = torch.full((len(v),), math.inf, device=v.device)
    for step in range(1, iters + 1):
        hv = hvp(v)
        new = (v * hv).sum(1)
        norm = hv.norm(dim=1, keepdim=True)
        v = torch.where(norm > 0, hv / norm.clamp_min(1e-30), v)  # a zero block stays put
        moved = (new - lam).abs() > tol * new.abs()
        lam = new
        if not bool(moved.any()):
            return lam, v, step
    return lam, v, iters


def neuron_spectral_radius(
    model: nn.Module, loss_fn: Callable[[], torch.Tensor], gen: torch.Generator,
    skip: Collection[str] = (), alive: Mapping[str, torch.Tensor] | None = None,
    iters: int = POWER_ITERS, tol: float = POWER_TOL,
) -> tuple[dict[str, torch.Tensor], int]:  # fmt: skip
    """Spectral radius ``rho(H_pp)`` of the Hessian block of every output channel ``p`` of
    the maskable layers but ``skip``: the block over that channel's own (``alive``) weights,
    by :func:`power_iteration` on exact double-backward products, one batched product per
    ``POWER_CHUNK`` channels (``V[g]`` holds channel ``g``'s vector, the rest zero, so row
    ``g`` of ``H V[g]`` is ``H_gg v_g``). Also returns the Hessian-vector products used."""
    params = {k: p for k, p in maskable(model).items() if k not in skip}
    grads = torch.autograd.grad(loss_fn(), list(params.values()), create_graph=True)
    out, used = {}, 0
    for (k, p), g in zip(params.items(), grads):
        keep = (alive[k] if alive else torch.ones_like(p, dtype=torch.bool)).flatten(1)
        rho = torch.zeros(p.shape[0])
        for lo in range(0, p.shape[0], POWER_CHUNK):
            rows = torch.arange(lo, min(lo + POWER_CHUNK, p.shape[0]))
            v0 = torch.randn(len(rows), keep.shape[1], generator=gen) * keep[rows]
            lam, _, steps = power_iteration(_block_hvp(g, p, rows, keep[rows]), v0, iters, tol)
            rho[rows], used = lam.abs().detach(), used + steps * len(rows)
        out[k] = rho
    return out, used


def _block_hvp(
    grad: torch.Tensor, p: torch.Tensor, rows: torch.Tensor, keep: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> (H_gg v_g)_g`` for the channels ``rows`` of weight ``p``, restricted to the
    weights in ``keep`` (``P H P``: a pruned weight is no direction to move in)."""
    idx = torch.arange(len(rows))

    def hvp(v: torch.Tensor) -> torch.Tensor:
        if not grad.requires_grad:  # the loss is linear in p: no curvature at all
            return torch.zeros_like(v)
        vs = torch.zeros(len(rows), p.shape[0], keep.shape[1], dtype=p.dtype)
        vs[idx, rows] = (v * keep).to(p.dtype)
        (hv,) = torch.autograd.grad(
            grad, p, grad_outputs=vs.view(len(rows), *p.shape), retain_graph=True,
            is_grads_batched=True,
        )  # fmt: skip
        return hv.detach().flatten(2)[idx, rows].float() * keep

    return hvp


def _split(flat: torch.Tensor, ps: list[torch.Tensor]) -> list[torch.Tensor]:
    """A flat vector over the weights ``ps`` cut into tensors shaped like them."""
    return [u.view_as(p).to(p.dtype) for u, p in zip(flat.split([p.numel() for p in ps]), ps)]


def _flat_hvp(
    grads: tuple[torch.Tensor, ...], ps: list[torch.Tensor], keep: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> P H P v`` for one flat ``(1, n)`` vector over all of ``ps`` (``P``: the live
    weights ``keep``), by one double-backward product."""

    def hvp(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(grads, ps, _split(v[0] * keep, ps), retain_graph=True,
                                 allow_unused=True)  # fmt: skip
        parts = [torch.zeros_like(p) if h is None else h for h, p in zip(hv, ps)]
        return (torch.cat([h.detach().flatten() for h in parts]).float() * keep).unsqueeze(0)

    return hvp


def flatten_step(
    model: nn.Module, loss_fn: Callable[[], torch.Tensor], masks: Masks, v: torch.Tensor,
    step: float, iters: int = POWER_ITERS, tol: float = POWER_TOL,
) -> tuple[float, torch.Tensor, int]:  # fmt: skip
    """One step down the spectral radius ``rho = |lambda_max|`` of the Hessian of
    ``loss_fn`` over the live conv / linear weights, in place: power iteration from ``v``
    (warm start) finds the top eigenpair, ``grad rho = sign(lambda) grad(v^T H v)`` with
    ``v`` held fixed (the eigenvalue's derivative, a third-order product), and the live
    weights move against it by ``step`` in root mean square. Returns ``rho`` before the
    step, the eigenvector (the next warm start) and the Hessian-vector products used."""
    ps = list(maskable(model).values())
    keep = torch.cat([masks.masks[k].flatten() for k in maskable(model)]).float()
    grads = torch.autograd.grad(loss_fn(), ps, create_graph=True)
    lam, v, used = power_iteration(_flat_hvp(grads, ps, keep), v.view(1, -1) * keep, iters, tol)
    parts = _split(v[0] * keep, ps)
    hv = torch.autograd.grad(grads, ps, parts, create_graph=True, allow_unused=True)
    quad = sum(((u * h).sum() for u, h in zip(parts, hv) if h is not None), torch.zeros(()))
    if not quad.requires_grad:  # the loss is quadratic or linear here: nothing to flatten
        return float(lam.abs()[0]), v[0], used
    slope = torch.autograd.grad(quad, ps, allow_unused=True)
    d = torch.cat([torch.zeros_like(p).flatten() if s is None else s.flatten()
                   for s, p in zip(slope, ps)]) * keep * torch.sign(lam[0])  # fmt: skip
    rms = (d.pow(2).sum() / keep.sum().clamp_min(1)).sqrt()
    if float(rms) > 0:
        with torch.no_grad():
            for p, u in zip(ps, _split(d * (step / rms), ps)):
                p.sub_(u)
    return float(lam.abs()[0]), v[0].detach(), used + 2  # the third-order pass: about two


@SPARSE_METHODS.register("hessian-spectral")
class HessianSpectral(HessianNeuron):
    """Neurons pruned while training, the network steered to a small Hessian spectral radius.

    The seed method (Ebrahimi & Klabjan 2021, arXiv:2111.08577) trains from scratch and
    prunes neurons at once, no pre-training, and "directs the parameters of the compressed
    model toward a flatter solution by exploring the spectral radius of Hessian"; the
    spectral-radius regulariser it builds on (Sandler, Klabjan & Luo 2021, arXiv:2102.11210)
    minimises the loss plus the Hessian's spectral radius. Only the paper's abstract and
    first paragraph could be read here, so its equation and algorithm numbers are not cited
    and the following is built from those sentences, not transcribed:

    1. Flatness while training: every :data:`FLAT_EVERY` steps, :func:`flatten_step` takes
       one step down ``rho(H)`` of the network (all live conv / linear weights, on
       :data:`SPECTRAL_SAMPLES` seeded training images, the eigenvector warm-started from the
       last step) of root-mean-square size ``flatness x lr`` (:data:`FLATNESS`): an
       alternating, normalised form of minimising ``L + mu rho(H)``.
    2. Pruning: :class:`HessianNeuron`'s ``rounds`` over ``end_fraction`` of training, each
       neuron ``p`` scored by ``1/2 rho(H_pp) ||w_p||^2``, its Hessian block's spectral
       radius (:func:`neuron_spectral_radius`) times its squared norm: an upper bound on the
       second-order loss increase ``1/2 w_p^T H_pp w_p`` of removing it.

    The paper approximates the Hessian by K-FAC (a layer's block ``A (x) G``, so a neuron's
    block is ``G_pp A`` and its radius ``G_pp lambda_max(A)``); here exact double-backward
    products are used instead, affordable at MNIST MLP / small-CNN scale. Biases and
    BatchNorm parameters are outside the Hessian. History: each round also records the
    last measured ``spectral_radius``. FLOPs count each Hessian-vector product as a step.
    """

    name: ClassVar[str] = "hessian-spectral"
    score_samples: ClassVar[int] = SPECTRAL_SAMPLES

    def __init__(self, config: SparseConfig) -> None:
        super().__init__(config)
        #: the flattening step's size in learning rates; 0 turns the flattening off
        self.flatness = FLATNESS
        self._v: torch.Tensor | None = None
        self._rho = math.nan

    def _run(self, model: nn.Module, data: Dataset) -> Masks:
        self._v, self._rho = None, math.nan
        return super()._run(model, data)

    def between_rounds(
        self, model: nn.Module, data: Dataset, masks: Masks, step: int, gen: torch.Generator
    ) -> None:
        """Every ``FLAT_EVERY`` steps, one :func:`flatten_step` on a seeded batch."""
        if self.flatness <= 0 or step % FLAT_EVERY:
            return
        loss, n = seeded_loss(model, data, SPECTRAL_SAMPLES, gen)
        if self._v is None:
            size = sum(p.numel() for p in maskable(model).values())
            self._v = torch.randn(size, generator=gen).to(next(model.parameters()).device)
        with kept_buffers(model):
            self._rho, self._v, products = flatten_step(
                model, loss, masks, self._v, self.flatness * self.config.lr
            )
        self.count_flops(masks, (1 + products) * n)

    def prune(
        self, model: nn.Module, data: Dataset, masks: Masks, r: int, gen: torch.Generator
    ) -> None:
        super().prune(model, data, masks, r, gen)
        self.history[-1]["spectral_radius"] = self._rho

    def score(
        self, model: nn.Module, loss: Callable[[], torch.Tensor], masks: Masks,
        gen: torch.Generator,
    ) -> tuple[dict[str, torch.Tensor], int]:  # fmt: skip
        """``1/2 rho(H_pp) ||w_p||^2`` per channel of every layer but the classifier."""
        params = maskable(model)
        rho, products = neuron_spectral_radius(
            model, loss, gen, skip={classifier(params)}, alive=masks.masks
        )
        return {k: 0.5 * r * params[k].detach().flatten(1).float().pow(2).sum(1)
                for k, r in rho.items()}, products  # fmt: skip
