"""The conformance suite of growth initialisations (:data:`edgeauto.grow.GROWTH_INITS`)."""

from __future__ import annotations

import torch
from torch import nn

from edgeauto.grow import GROWTH_INITS, grow

NORM = 2.0


def check_growth_init(name: str) -> None:
    """``init(M, k, c, gen)`` returns ``k`` finite rows of ``M``'s width with norms at most
    ``c``, the same for the same generator seed; growing with it keeps the network's function
    (the new outgoing weights are zero) for linear and conv pairs."""
    init = GROWTH_INITS.get(name)
    m = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    for k in (1, 3, 9):  # fewer, and more, units than the rank of M
        rows = init(m, k, NORM, torch.Generator().manual_seed(1))
        assert rows.shape == (k, 7), f"k={k}: rows of shape {tuple(rows.shape)}"
        assert torch.isfinite(rows).all(), f"k={k}: non-finite rows"
        assert (rows.norm(dim=1) <= NORM * (1 + 1e-5)).all(), f"k={k}: a row longer than c"
        again = init(m, k, NORM, torch.Generator().manual_seed(1))
        assert torch.equal(rows, again), f"k={k}: not reproducible from the generator"
    for build, layer, width in ((_mlp, "1", 6), (_cnn, "0", 4)):
        _check_preserves(name, build(), layer, width)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 3),
    )  # fmt: skip


def _check_preserves(name: str, model: nn.Module, layer: str, width: int) -> None:
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(32, 1, 4, 4, generator=gen), torch.randint(0, 3, (32,), generator=gen)
    with torch.no_grad():
        before = model(x)
    pair = grow(model, layer, 3, (x, y), init=name, seed=0)
    with torch.no_grad():
        after = model(x)
    assert pair.first.weight.shape[0] == width + 3, "the layer did not grow by k units"
    assert torch.allclose(before, after, atol=1e-6, rtol=0), "growth changed the function"
