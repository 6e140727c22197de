"""Counting a model: parameters and multiply-accumulates, one convention for the whole package."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (every tensor in ``model.parameters()``, BatchNorm included)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of the Conv2d and Linear layers for one sample (``input_shape``
    without the batch), counted by forward hooks: each output element costs its fan-in
    (groups included). Activations, norms, pooling and adds are not counted."""
    total = 0

    def hook(m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        total += m.weight[0].numel() * out[0].numel()

    kinds = (nn.Conv2d, nn.Linear)
    probe(
        model,
        input_shape,
        [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)],
    )
    return total


def probe(
    model: nn.Module, input_shape: tuple[int, ...], handles: list[torch.utils.hooks.RemovableHandle]
) -> None:
    """One batch-1 forward of zeros with the hooks in ``handles`` on, then remove them;
    the model's training mode is restored."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.train(False)(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
