"""Sparse training: every registered method passes the conformance suite; the pieces behave."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError, UnknownComponent
from edgeauto.sparse import (
    Masks,
    SparseConfig,
    erk_densities,
    get_sparse_method,
    list_sparse_methods,
    random_masks,
)
from edgeauto.sparse.masks import keep_counts, keep_global
from edgeauto.sparse.models import mlp, small_cnn
from edgeauto.train import TrainConfig, fit

QUICK = SparseConfig(sparsity=0.9, epochs=2, batch_size=32, max_batches=6, rounds=2, delta_t=2)


def test_sparse_methods_registered() -> None:
    assert {"imp", "lottery", "snip", "rigl", "static"} <= set(list_sparse_methods())


def test_unknown_method_suggests() -> None:
    with pytest.raises(UnknownComponent, match="did you mean 'rigl'"):
        get_sparse_method("rigll", QUICK)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="retrain must be finetune, lrr, slr, rewind"):
        SparseConfig(retrain="cosine")
    with pytest.raises(ConfigError, match=r"rewind_epoch must be in \[0, epochs=2\)"):
        get_sparse_method("lottery", SparseConfig(epochs=2, rewind_epoch=2))
    with pytest.raises(ConfigError, match="unknown field 'sparsty'"):
        SparseConfig.from_json({"sparsty": 0.5})


def test_erk_densities_meet_the_budget_and_cap_at_one() -> None:
    shapes = {
        "a": torch.Size([4, 1, 3, 3]),
        "b": torch.Size([64, 32, 3, 3]),
        "c": torch.Size([10, 64]),
    }
    d = erk_densities(shapes, 0.2)
    numel = {k: math.prod(s) for k, s in shapes.items()}
    assert d["a"] == 1.0 and 0 < d["b"] < d["c"] <= 1.0  # small layers denser
    assert sum(d[k] * numel[k] for k in d) == pytest.approx(0.2 * sum(numel.values()))
    counts = keep_counts(numel, d, 0.8)
    assert sum(counts.values()) == sum(numel.values()) - round(0.8 * sum(numel.values()))
    assert all(abs(counts[k] - d[k] * numel[k]) <= 1 for k in d)


def test_keep_global_is_exact_with_ties() -> None:
    scores = {"x": torch.zeros(7, 3), "y": torch.ones(5)}  # ties everywhere
    masks = keep_global(scores, 0.5)
    assert masks.zeros == round(0.5 * 26) and int(masks.masks["y"].sum()) == 5
    assert keep_global(scores, 0.5) == masks


@pytest.mark.parametrize("retrain", ["finetune", "lrr", "slr"])
def test_imp_per_layer_hits_every_layer(retrain: str, digits: Dataset) -> None:
    cfg = SparseConfig(**{**QUICK.to_json(), "scope": "layer", "retrain": retrain})
    torch.manual_seed(0)
    model = mlp(digits.input_shape, digits.num_classes, hidden=32)
    result = get_sparse_method("imp", cfg).run(model, digits)
    for k, m in result.masks.masks.items():
        assert int((~m).sum()) == round(0.9 * m.numel()), k
    assert [h["round"] for h in result.history] == [0, 1, 2]
    assert result.history[1]["sparsity"] == pytest.approx(1 - math.sqrt(0.1), abs=0.01)


def test_rigl_moves_weights_at_fixed_count_static_does_not(digits: Dataset) -> None:
    torch.manual_seed(0)
    model = small_cnn(digits.input_shape, digits.num_classes, width=8)
    start = random_masks(model, QUICK.sparsity, "erk", QUICK.seed)
    rigl = get_sparse_method("rigl", QUICK).run(model, digits)
    assert sum(h["moved"] for h in rigl.history) > 0, "RigL never regrew a weight"
    assert rigl.masks != start
    for k, m in rigl.masks.masks.items():
        assert int(m.sum()) == int(start.masks[k].sum()), f"{k}: RigL changed the layer's count"
    torch.manual_seed(0)
    model = small_cnn(digits.input_shape, digits.num_classes, width=8)
    assert get_sparse_method("static", QUICK).run(model, digits).masks == start


def test_fit_calls_on_step_every_step_with_gradients(digits: Dataset) -> None:
    model = mlp(digits.input_shape, digits.num_classes, hidden=16)
    seen: list[int] = []

    def hook(step: int) -> None:
        assert all(p.grad is not None for p in model.parameters())
        seen.append(step)

    fit(model, digits, TrainConfig(epochs=2, max_batches=3), 0, on_step=hook)
    assert seen == [1, 2, 3, 4, 5, 6]


def test_masks_load_refuses_other_files_and_models(tmp_path: Path, digits: Dataset) -> None:
    model = mlp(digits.input_shape, digits.num_classes, hidden=16)
    other = mlp(digits.input_shape, digits.num_classes, hidden=8)
    path = Masks.dense(model).save(tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="does not fit the model"):
        Masks.load(path, other)
    torch.save({"w": torch.zeros(3)}, tmp_path / "f.pt")
    with pytest.raises(ConfigError, match="not a dict of bool tensors"):
        Masks.load(tmp_path / "f.pt")
    with pytest.raises(ConfigError, match="cannot read"):
        Masks.load(tmp_path / "missing.pt")


def test_sparse_tflite_runs_in_litert_and_is_smaller(tmp_path: Path, digits: Dataset) -> None:
    from edgeauto.export.onnx import export_onnx
    from edgeauto.export.parity import check_parity
    from edgeauto.export.runtimes import get_runtime
    from edgeauto.export.tflite import export_tflite

    torch.manual_seed(0)
    model = mlp(digits.input_shape, digits.num_classes, hidden=256).train(False)
    random_masks(model, 0.9, "uniform", 0).apply(model)
    onnx = export_onnx(model, digits.input_shape, tmp_path / "m.onnx")
    dense = export_tflite(onnx, tmp_path / "dense.tflite")
    sparse = export_tflite(onnx, tmp_path / "sparse.tflite", sparse=True)
    assert sparse.stat().st_size < 0.5 * dense.stat().st_size
    parity = check_parity(model, get_runtime("litert"), sparse, digits.x_val[:8])
    assert parity.top1_agreement == 1.0


def _compress(out: Path, *extra: str) -> list[str]:
    example = Path(__file__).parents[1] / "examples" / "custom_cnn.py"
    return ["compress", "--model", f"{example}:build", "--dataset", "digits", "--out", str(out),
            "--epochs", "1", "--finetune-epochs", "1", "--no-int8", *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "error", "fragment"),
    [
        (["--method", "rigll"], "UnknownComponent", "did you mean 'rigl'"),
        (["--method", "rigl", "--sparsity", "1.5"], "ConfigError", "--sparsity"),
    ],
)
def test_compress_method_bad_input_is_one_line(
    cli, tmp_path: Path, flags: list[str], error: str, fragment: str
) -> None:
    from helpers import assert_one_line_error

    result = cli(*_compress(tmp_path / "bad", "--latency-ms", "1", *flags))
    assert_one_line_error(result, error, fragment)


@pytest.mark.slow
def test_compress_method_rigl_end_to_end(cli, tmp_path: Path) -> None:
    import json

    out = tmp_path / "rigl"
    result = cli(*_compress(out, "--latency-ms", "1", "--method", "rigl", "--sparsity", "0.9"))
    assert result.exit_code in (0, 3), result.stdout + result.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["pruning"]["status"] == "skipped" and not m["pruning"]["ops"]
    sp = m["sparsity"]
    assert sp["method"] == "rigl" and sp["config"]["sparsity"] == 0.9
    assert abs(sp["masks"]["zeros"] - round(0.9 * sp["masks"]["numel"])) <= len(
        sp["masks"]["layers"]
    )
    assert sp["export"]["size_bytes"] < sp["export"]["dense_size_bytes"]
    assert sp["export"]["parity"]["top1_agreement"] == 1.0 and sp["export"]["note"]
    e = sp["export"]  # the faster file is recommended, and the note agrees with the timing
    faster = e["litert_ms"] < 0.9 * e["dense_litert_ms"]
    assert e["recommended"] == ("model_sparse.tflite" if faster else "model.tflite")
    assert ("deploy model_sparse.tflite" in e["note"]) == faster
    masks = Masks.load(out / "checkpoints" / "masks.pt")
    state = torch.load(out / "checkpoints" / "finetune.pt", weights_only=True)
    for k, mask in masks.masks.items():
        assert torch.count_nonzero(state[k][~mask]) == 0, k
    assert m["parity"]["litert"]["top1_agreement"] == 1.0


def test_rigl_regrowth_clears_the_optimizer_moments_of_grown_weights(digits: Dataset) -> None:
    torch.manual_seed(0)
    model = mlp(digits.input_shape, digits.num_classes, hidden=32)
    masks = random_masks(model, 0.8, "erk", seed=0)
    before = {k: m.clone() for k, m in masks.masks.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = digits.x_train[:64], digits.y_train[:64]
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()  # every weight, masked or not, now has moments
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()  # the dense gradient RigL grows by
    method = get_sparse_method("rigl", QUICK)
    method._optimizer = opt
    assert method.regrow(model, masks, 0.3) > 0
    for k, p in model.named_parameters():
        if k not in masks.masks:
            continue
        grown = (masks.masks[k] & ~before[k]).flatten()
        moments = opt.state[p]["exp_avg"].view(-1)
        assert grown.any() and not moments[grown].any(), f"{k}: grown weights kept moments"
        assert moments[~grown].any(), f"{k}: the other weights' moments were cleared too"
