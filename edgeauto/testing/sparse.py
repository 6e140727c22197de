"""The conformance suite every registered sparse training method must pass."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from edgeauto.data import Dataset
from edgeauto.errors import ConfigError
from edgeauto.sparse import SPARSE_METHODS, Masks, SparseConfig, SparseResult
from edgeauto.sparse.models import small_cnn

#: small and quick: two epochs of eight batches, two IMP rounds, a RigL update every 3 steps
CHECK_CONFIG = SparseConfig(
    sparsity=0.8, epochs=2, batch_size=32, max_batches=8, rounds=2, retrain_epochs=1, delta_t=3
)


def _run(name: str, data: Dataset, cfg: SparseConfig) -> tuple[torch.nn.Module, SparseResult]:
    torch.manual_seed(0)  # the same initial weights for every run
    model = small_cnn(data.input_shape, data.num_classes, width=8)
    return model, SPARSE_METHODS.get(name)(cfg).run(model, data)


def check_sparse_method(name: str, data: Dataset) -> None:
    """Exact target sparsity, masks that survive training, seeded replay, typed config errors."""
    model, result = _run(name, data, CHECK_CONFIG)
    masks = result.masks
    want = round(CHECK_CONFIG.sparsity * masks.numel)
    # methods that round per layer may miss the exact total by one weight per layer
    assert abs(masks.zeros - want) <= len(masks.masks), f"{masks.zeros} zeros, want {want}"
    params = dict(model.named_parameters())
    for k, m in masks.masks.items():
        w = params[k].detach()
        assert torch.count_nonzero(w[~m]) == 0, f"{k}: masked weights are not zero after training"
        assert torch.count_nonzero(w[m]) >= 0.9 * int(m.sum()), f"{k}: kept weights are zero"
    doc = json.loads(json.dumps(result.to_json()))  # the record is plain JSON
    assert doc["masks"]["zeros"] == masks.zeros and doc["method"] == name, "record disagrees"
    twin, again = _run(doc["method"], data, SparseConfig.from_json(doc["config"]))
    assert again.masks == masks, "the same config and seed gave other masks"
    for k, v in model.state_dict().items():
        assert torch.equal(v, twin.state_dict()[k]), f"{k}: the same seed gave other weights"
    with tempfile.TemporaryDirectory() as tmp:
        loaded = Masks.load(masks.save(Path(tmp) / "masks.pt"), model)
    assert loaded == masks, "masks .pt round trip changed them"
    _check_bad_config(name)


def _check_bad_config(name: str) -> None:
    cls = SPARSE_METHODS.get(name)
    for bad in ({"sparsity": 1.0}, {"sparsity": -0.1}, {"epochs": 0}, {"scope": "row"}):
        try:
            cls(SparseConfig(**bad))  # type: ignore[arg-type]
        except ConfigError as exc:
            field = next(iter(bad))
            assert field in str(exc) and "\n" not in str(exc), f"unclear message: {exc}"
        else:
            raise AssertionError(f"SparseConfig({bad}) must raise ConfigError")
    try:
        cls({"sparsity": 0.5})  # type: ignore[arg-type]
    except ConfigError:
        pass
    else:
        raise AssertionError(
            "a method given a dict instead of a SparseConfig must raise ConfigError"
        )
