"""The training loop's options (optimiser, label smoothing, augmentation, device), its resume,
its throughput report and its data-access contract, on tiny real-torch problems."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.train import (
    EpochCheckpoint,
    FitStats,
    TrainConfig,
    accuracy,
    augment,
    fit,
    make_optimizer,
    one_cycle,
    plain_throughput,
    resolve_device,
    train_threads,
)


def _sign_data(n: int = 512, shape: tuple[int, int, int] = (1, 8, 8), seed: int = 0) -> Dataset:
    """Random images whose class is the sign of their mean pixel (learnable, chance 1/2)."""
    g = torch.Generator().manual_seed(seed)
    shift = torch.randint(0, 2, (2 * n, 1, 1, 1), generator=g).float() * 0.6 - 0.3
    x = torch.randn(2 * n, *shape, generator=g) + shift
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return Dataset("sign", x[:n], y[:n], x[n:], y[n:], ["neg", "pos"])


def _mlp(shape: tuple[int, int, int] = (1, 8, 8)) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(shape[0] * shape[1] * shape[2], 16), nn.ReLU(),
                         nn.Linear(16, 2))  # fmt: skip


def _cnn(seed: int = 0) -> nn.Module:
    """Convolution with BatchNorm, so resumes must also restore running statistics."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))  # fmt: skip


class _OnlyIndexable:
    """An image array that supports nothing but ``len`` and indexing (the data contract)."""

    def __init__(self, x: torch.Tensor) -> None:
        self._x = x

    def __len__(self) -> int:
        return len(self._x)

    def __getitem__(self, idx: Any) -> torch.Tensor:
        return self._x[idx].clone()


@pytest.mark.parametrize(("optimizer", "smoothing"), [("sgd", 0.0), ("sgd", 0.1), ("adamw", 0.1)])
def test_optimizers_and_label_smoothing_learn(optimizer: str, smoothing: float) -> None:
    data = _sign_data()
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.05 if optimizer == "sgd" else 3e-3,
                      optimizer=optimizer, label_smoothing=smoothing)  # fmt: skip
    model = fit(_mlp(), data, cfg, seed=0)
    assert accuracy(model, data.x_val, data.y_val) > 0.8  # chance is about 0.5


def test_fit_and_accuracy_only_index_the_images() -> None:
    data = _sign_data(256)
    wrapped = types.SimpleNamespace(
        x_train=_OnlyIndexable(data.x_train), y_train=data.y_train
    )  # anything beyond len() and [idx] on x_train fails here
    cfg = TrainConfig(epochs=2, batch_size=32, augment=True)
    model = fit(_mlp(), wrapped, cfg, seed=0)  # type: ignore[arg-type]
    x_val = _OnlyIndexable(data.x_val)
    assert accuracy(model, x_val, data.y_val, 50) == accuracy(model, data.x_val, data.y_val)


def test_augment_keeps_shape_and_is_seeded() -> None:
    x = torch.rand(16, 3, 8, 8)
    a = augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(1)))


def _candidates(img: torch.Tensor, pad: int) -> dict[tuple[int, int, bool], torch.Tensor]:
    """Every crop of ``img`` zero-padded by ``pad``, flipped or not, by (dy, dx, flip)."""
    _, h, w = img.shape
    padded = F.pad(img, (pad, pad, pad, pad))
    out = {}
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            out[(dy, dx, False)], out[(dy, dx, True)] = crop, crop.flip(-1)
    return out


def test_augment_is_a_shifted_and_flipped_copy() -> None:
    img = torch.arange(1, 2 * 8 * 8 + 1, dtype=torch.float32).reshape(2, 8, 8)  # all distinct
    batch = augment(img.expand(64, -1, -1, -1), torch.Generator().manual_seed(3))
    candidates = _candidates(img, 4)
    seen = set()
    for out in batch:
        match = [k for k, c in candidates.items() if torch.equal(out, c)]
        assert len(match) == 1, "each output must be exactly one padded crop, maybe flipped"
        seen.add(match[0])
    assert {flip for _, _, flip in seen} == {False, True}
    assert len({(dy, dx) for dy, dx, _ in seen}) > 10  # offsets vary per image
    assert any(dy != 4 or dx != 4 for dy, dx, _ in seen)  # and really shift


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_cuda_without_cuda_is_a_config_error() -> None:
    data = _sign_data(64)
    with pytest.raises(ConfigError, match="train_device") as err:
        fit(_mlp(), data, TrainConfig(epochs=1, device="cuda"), seed=0)
    assert "\n" not in str(err.value) and "cpu" in str(err.value)
    with pytest.raises(ConfigError, match="train_device"):
        resolve_device("cuda:0")
    assert fit(_mlp(), data, TrainConfig(epochs=1, device="auto"), seed=0) is not None
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(
    ("field", "value"),
    [("optimizer", "adam"), ("label_smoothing", 1.0), ("label_smoothing", -0.1),
     ("label_smoothing", float("nan")), ("device", "tpu"), ("batch_size", 0), ("epochs", -1),
     ("lr", 0.0), ("weight_decay", -1e-4), ("augment", "yes"), ("augment", 1), ("max_batches", 1.5)],
)  # fmt: skip
def test_bad_values_name_their_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"train_{field}") as err:
        TrainConfig(**{field: value})  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


class _Killed(Exception):
    pass


def _kill_after_first(epoch: int) -> None:
    if epoch == 1:
        raise _Killed


def test_resume_gives_identical_weights_with_sgd_and_augmentation(tmp_path: Path) -> None:
    data = _sign_data(192, (3, 8, 8))
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, optimizer="sgd", augment=True,
                      label_smoothing=0.1)  # fmt: skip
    whole = fit(_cnn(), data, cfg, seed=5, checkpoint=EpochCheckpoint(tmp_path / "a.pt"))
    killed = EpochCheckpoint(tmp_path / "b.pt", on_saved=_kill_after_first)
    with pytest.raises(_Killed):
        fit(_cnn(), data, cfg, seed=5, checkpoint=killed)
    # another initialisation: everything must come from the checkpoint
    resumed = fit(_cnn(seed=9), data, cfg, seed=5, checkpoint=EpochCheckpoint(tmp_path / "b.pt"))
    want, got = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want), "resume changed the weights"
    saved = torch.load(tmp_path / "b.pt", weights_only=True)
    assert saved["epoch"] == 3 and all(v.device.type == "cpu" for v in saved["model"].values())


def test_fit_stats_and_plain_throughput() -> None:
    data = _sign_data(256)
    stats = FitStats()
    model = fit(_mlp(), data, TrainConfig(epochs=2, batch_size=32, max_batches=3), 0, stats=stats)
    assert stats.images == 2 * 3 * 32 and stats.seconds > 0 and stats.images_per_s > 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert plain_throughput(model, data, batch_size=32, steps=12, seed=0) > 0  # 1.5 passes
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"


def test_fit_trains_on_every_allowed_core_and_restores_threads() -> None:
    seen: list[int] = []
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(_mlp(), _sign_data(64), TrainConfig(epochs=1, batch_size=32), 0,
            on_step=lambda _: seen.append(torch.get_num_threads()))  # fmt: skip
        assert seen == [train_threads()] * 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)
    assert train_threads() >= 1


def test_sgd_is_nesterov_with_momentum_0_9_under_the_one_cycle_schedule() -> None:
    model, seen = _mlp(), []
    cfg = TrainConfig(epochs=2, batch_size=32, optimizer="sgd")

    def schedule(opt: torch.optim.Optimizer, total: int) -> Any:
        seen.append(opt)  # fit's default schedule, with a look at fit's own optimiser
        return one_cycle(cfg)(opt, total)

    fit(model, _sign_data(64), cfg, 0, schedule=schedule)
    group = seen[0].param_groups[0]
    assert isinstance(seen[0], torch.optim.SGD)
    assert (group["momentum"], group["nesterov"]) == (0.9, True)  # not cycled by one-cycle
    assert group["lr"] < cfg.lr / 2  # and the schedule moved the rate off its peak
    assert isinstance(make_optimizer(model.parameters(), TrainConfig()), torch.optim.AdamW)


@pytest.mark.parametrize(("channels", "augmented"), [(3, True), (1, False)])
def test_augment_none_means_rgb_only(channels: int, augmented: bool) -> None:
    """``augment=None`` (the run config's default) augments RGB images and leaves gray ones."""
    data = _sign_data(96, (channels, 8, 8))

    def weights(augment: bool | None) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(channels * 64, 2))
        cfg = TrainConfig(epochs=1, batch_size=32, augment=augment)
        return fit(net, data, cfg, seed=0).state_dict()

    auto, same, other = weights(None), weights(augmented), weights(not augmented)
    assert all(torch.equal(auto[k], same[k]) for k in auto)
    assert not all(torch.equal(auto[k], other[k]) for k in auto)
