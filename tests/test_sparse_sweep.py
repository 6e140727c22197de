"""Sparse double descent tooling: label noise, learning distance, the sweep and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import assert_one_line_error

from edgeauto.data import Dataset
from edgeauto.sparse import SparseConfig
from edgeauto.sparse.models import mlp
from edgeauto.sparse.sweep import learning_distance, sparsity_sweep, with_label_noise


def test_label_noise_flips_exactly_the_fraction_never_to_the_true_class(digits: Dataset) -> None:
    noisy = with_label_noise(digits, 0.2, seed=3)
    flipped = noisy.y_train != digits.y_train
    assert int(flipped.sum()) == round(0.2 * len(digits.y_train))
    assert torch.equal(noisy.y_val, digits.y_val) and torch.equal(
        noisy.x_train[:], digits.x_train[:]
    )
    assert torch.equal(with_label_noise(digits, 0.2, seed=3).y_train, noisy.y_train)
    assert torch.equal(with_label_noise(digits, 0.0, seed=3).y_train, digits.y_train)


def test_learning_distance() -> None:
    model = torch.nn.Linear(3, 2)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert learning_distance(model, start) == 0.0
    with torch.no_grad():
        model.weight[0, 0] += 3.0
        model.bias[1] -= 4.0
    assert learning_distance(model, start) == pytest.approx(5.0)


def test_sweep_reaches_each_sparsity_from_one_init(digits: Dataset) -> None:
    cfg = SparseConfig(epochs=2, max_batches=10, rounds=2, retrain_epochs=1)
    inits: list[torch.Tensor] = []

    def build() -> torch.nn.Module:
        m = mlp(digits.input_shape, digits.num_classes, hidden=32)
        inits.append(m[1].weight.detach().clone())
        return m

    points = sparsity_sweep(build, digits, [0.0, 0.5, 0.9], "imp", cfg)
    assert [round(p.sparsity, 3) for p in points] == [0.0, 0.5, 0.9]
    assert all(torch.equal(inits[0], w) for w in inits[1:]), "points started from other weights"
    assert all(0.1 < p.accuracy <= 1.0 and p.distance > 0 for p in points)
    # retraining a sparser net costs fewer FLOPs; the dense phase is the same for all
    assert points[0].train_flops > points[1].train_flops > points[2].train_flops


def test_sparsity_sweep_cli(cli, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    r = cli("analyze", "sparsity-sweep", "--dataset", "digits", "--sparsities", "0,0.8",
            "--epochs", "1", "--label-noise", "0.1", "--out", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert [round(p["sparsity"], 3) for p in doc["points"]] == [0.0, 0.8]
    assert doc["settings"]["label_noise"] == 0.1 and (out / "sweep.png").stat().st_size > 1000
    r = cli("analyze", "sparsity-sweep", "--sparsities", "0,x", "--out", str(out))
    assert_one_line_error(r, "ConfigError", "fix --sparsities")
    r = cli("analyze", "sparsity-sweep", "--sparsities", "0,1.0", "--dataset", "digits",
            "--out", str(out))  # fmt: skip
    assert_one_line_error(r, "ConfigError", "in [0, 1), got '0,1.0'; fix --sparsities")
    r = cli("analyze", "sparsity-sweep", "--method", "rigll", "--out", str(out))
    assert_one_line_error(r, "UnknownComponent", "rigl")
