"""The "Rethinking the Value of Network Pruning" baselines (Liu et al.): same architecture as
the pruned model, fresh weights, trained from scratch. Scratch-E trains the same epochs as the
unpruned model; Scratch-B the same training FLOPs, so more epochs (:func:`scratch_b_epochs`).
"""

from __future__ import annotations

import torch
from torch import nn

# Scratch-B trains at most this many times Scratch-E's epochs. Uncapped, a model pruned to a
# tenth of the MACs would train ten times as long; past the cap Scratch-B gets less compute
# than the unpruned model did, which can only flatter pruning, never the scratch baseline.
SCRATCH_B_MAX_FACTOR = 4.0


def scratch_b_epochs(
    epochs: int, unpruned_macs: int, pruned_macs: int, max_factor: float = SCRATCH_B_MAX_FACTOR
) -> int:
    """Scratch-B's epochs: ``epochs`` x ``unpruned_macs / pruned_macs``, rounded, so that the
    pruned model trains on the FLOPs the unpruned one got; never fewer than ``epochs``, at most
    ``max_factor`` x ``epochs``.

    Example:
        >>> scratch_b_epochs(10, 3_000_000, 2_000_000)
        15
    """
    ratio = unpruned_macs / pruned_macs if pruned_macs > 0 else max_factor
    return max(epochs, round(epochs * min(ratio, max_factor)))


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
