"""The "Rethinking the Value of Network Pruning" baseline (Liu et al.): same architecture as
the pruned model, fresh weights, trained from scratch with the same epochs."""

from __future__ import annotations

import torch
from torch import nn


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """Reset every parameter and buffer of ``model`` in place (seeded); returns it."""
    torch.manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()
    return model


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> nn.Module:
    """Re-estimate BatchNorm running statistics on ``x`` (EagleEye's adaptive BN).

    Removing channels shifts the statistics the next layers see; with the stale ones a
    pruned model looks far worse than it is after even a short fine-tune, which misleads any
    comparison made before fine-tuning. Returns ``model`` in inference mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.train(False)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train(True)
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.train(False)
