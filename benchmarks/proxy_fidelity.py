"""Does the search's proxy rank archs as their final training does? CIFAR-10, cifar-mbv2.

    python benchmarks/proxy_fidelity.py [--json PATH] [--archs 12] [--budget 0.404]
        [--train-images 6000] [--final-epochs 4] [--proxies 30b,1e,2e]

Archs are drawn from the space among those the search would compare: predicted latency in
[0.7, 1.0] x budget (the host's table). Each is trained under every proxy (``30b``: one epoch
capped at 30 batches; ``2e``: two full epochs; each with its own one-cycle schedule, as a
search trial has) and once under the final recipe; the Spearman of each proxy's validation
accuracy with the final one is printed beside two free foils, MACs and parameters, and the
zero-cost score (TE-NAS ranks) that ``--warm-start`` uses. Validation only: this chooses the
search's defaults, so the test split stays unread. Each arch is written as it finishes; a
rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import torch
from _stamp import stamp
from real_task import dataset_spec

from edgeauto.counting import count_macs
from edgeauto.data import Dataset, DataSpec
from edgeauto.devices.profile import load_profile
from edgeauto.fileio import write_json
from edgeauto.latency.device import open_table
from edgeauto.latency.fusion import spearman
from edgeauto.progress import NullReporter
from edgeauto.search.zero_cost import ZeroCostScore, ZeroCostScorer
from edgeauto.spaces import get_space
from edgeauto.spaces.base import Arch
from edgeauto.train import TrainConfig, accuracy, fit

ROOT = Path(__file__).resolve().parents[1]
SPACE = "cifar-mbv2"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" /
                    "proxy_fidelity.json")  # fmt: skip
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-real-task")
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--budget", type=float, default=0.404)
    ap.add_argument("--train-images", type=int, default=6000)
    ap.add_argument("--final-epochs", type=int, default=4)
    ap.add_argument("--proxies", default="30b,1e,2e")
    return ap.parse_args(argv)


def proxy_config(name: str) -> TrainConfig:
    """``30b``: 1 epoch of at most 30 batches; ``2e``: 2 full epochs (augmented, as runs)."""
    if name.endswith("b"):
        return TrainConfig(epochs=1, max_batches=int(name[:-1]), augment=True)
    return TrainConfig(epochs=int(name[:-1]), augment=True)


def draw_archs(spec: str, budget: float, n: int) -> list[dict[str, Any]]:
    """``n`` archs whose predicted latency lies in [0.7, 1.0] x ``budget`` (seeded)."""
    data = DataSpec(spec).load()
    space = get_space(SPACE, data.input_shape, data.num_classes)
    _, lat = open_table(load_profile("host"), space, NullReporter())
    rng, out = random.Random(0), []
    while len(out) < n:
        arch = space.sample(rng)
        ms = lat.predict(space.blocks(arch))
        if 0.7 * budget <= ms <= budget:
            out.append({"arch": arch.to_json(), "predicted_ms": ms})
    return out


def score_arch(data: Dataset, entry: dict[str, Any], proxies: list[str], final: int) -> dict:
    """Every proxy's and the final recipe's val accuracy, MACs, params, zero-cost scores."""
    space = get_space(SPACE, data.input_shape, data.num_classes)
    arch = Arch.from_json(entry["arch"])
    out: dict[str, Any] = {"proxy": {}, "seconds": {}}
    scorer = ZeroCostScorer(space, data.x_train[:64], 0)
    out["zero_cost"] = scorer.score(arch).to_json()
    for name in [*proxies, "final"]:
        torch.manual_seed(0)
        model = space.build(arch)
        cfg = TrainConfig(epochs=final, augment=True) if name == "final" else proxy_config(name)
        t0 = time.perf_counter()
        fit(model, data, cfg, 0)
        out["seconds"][name] = round(time.perf_counter() - t0, 1)
        acc = accuracy(model, data.x_val, data.y_val)
        if name == "final":
            out["final_val"] = acc
            out["macs"] = count_macs(model, data.input_shape)
            out["params"] = sum(p.numel() for p in model.parameters())
        else:
            out["proxy"][name] = acc
    return entry | out


def correlations(rows: list[dict[str, Any]], proxies: list[str]) -> dict[str, float]:
    """Spearman of each proxy (and each foil) with the final validation accuracy."""
    final = [r["final_val"] for r in rows]
    out = {p: spearman([r["proxy"][p] for r in rows], final) for p in proxies}
    out["macs"] = spearman([r["macs"] for r in rows], final)
    out["params"] = spearman([r["params"] for r in rows], final)
    out["predicted_ms"] = spearman([r["predicted_ms"] for r in rows], final)
    ranks = ZeroCostScorer.rank_scores([_zc(r["zero_cost"]) for r in rows])
    out["zero_cost"] = spearman(ranks, final)
    return {k: round(v, 3) for k, v in out.items()}


def _zc(doc: dict[str, Any]) -> ZeroCostScore:
    cond = doc["ntk_cond"]
    return ZeroCostScore(float("inf") if cond is None else cond, doc["linear_regions"],
                         doc.get("gsnr"))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = dataset_spec(args)
    proxies = [p for p in args.proxies.split(",") if p]
    doc = json.loads(args.json.read_text()) if args.json.exists() else {}
    if not doc.get("archs"):
        doc = {"budget_ms": args.budget, "space": SPACE, "dataset": spec,
               "final_epochs": args.final_epochs, "proxies": proxies,
               "archs": draw_archs(spec, args.budget, args.archs), "rows": []}  # fmt: skip
    data = DataSpec(spec).load()  # once: every arch trains on the same split
    for entry in doc["archs"][len(doc["rows"]) :]:
        row = score_arch(data, entry, proxies, args.final_epochs)
        print({k: row[k] for k in ("predicted_ms", "proxy", "final_val", "macs")}, flush=True)
        doc["rows"].append(row)
        write_json(args.json, doc)
    doc |= {"spearman_with_final": correlations(doc["rows"], proxies), **stamp()}
    write_json(args.json, doc)
    print("Spearman with the final val accuracy:", doc["spearman_with_final"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
