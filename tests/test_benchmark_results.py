"""Every figure's source: each JSON under ``benchmarks/results/`` names the command, commit and
date that produced it, and the sparse benchmark's FLOPs matching lands on its reference."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from edgeauto.data import Dataset
from edgeauto.sparse import SparseConfig
from edgeauto.sparse.base import steps_per_epoch

ROOT = Path(__file__).parents[1]
RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))


def test_results_are_there() -> None:
    assert RESULTS, "benchmarks/results/ holds no JSON"


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_result_names_command_commit_and_date(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert isinstance(doc.get("command"), str) and doc["command"].strip(), f"{path.name}: command"
    assert re.fullmatch(r"[0-9a-f]{40}", str(doc.get("commit"))), f"{path.name}: commit"
    dt.datetime.fromisoformat(str(doc.get("date")))  # raises on a missing or malformed date


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """``benchmarks/sparse.py`` as a module, loaded by path (it imports ``_stamp`` from its
    own folder; a package named ``sparse`` may be installed)."""
    path = ROOT / "benchmarks" / "sparse.py"
    spec = importlib.util.spec_from_file_location("bench_sparse", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(path.parent))
        mp.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return module


def _flops(bench: ModuleType, method: str, cfg: SparseConfig, data: Dataset) -> float:
    torch.manual_seed(0)
    return bench.train_sparse(method, bench.MODELS["mlp"](data), data, cfg)


@pytest.mark.parametrize("method", ["snip", "static", "imp-finetune", "lottery", "colt"])
def test_flops_matched_schedule_lands_on_the_reference(
    bench: ModuleType, digits: Dataset, method: str
) -> None:
    """Sized from the method's cost at the base schedule alone (no extra run), the matched
    schedule's counted FLOPs come within 15% of a reference 3x that cost."""
    cfg = SparseConfig(sparsity=0.8, epochs=2, batch_size=32, max_batches=6, rounds=2,
                       delta_t=2)  # fmt: skip
    base = _flops(bench, method, cfg, digits)
    dense_epoch = bench.dense_epoch_flops(bench.MODELS["mlp"](digits), digits, cfg)
    steps = steps_per_epoch(cfg, digits)
    matched = bench.matched_config(method, cfg, base, 3 * base, dense_epoch, steps)
    assert dataclasses.replace(matched, epochs=2, retrain_epochs=1) == cfg  # one knob moved
    got = _flops(bench, method, matched, digits)
    assert 0.85 < got / (3 * base) < 1.15, (matched, got / base)
