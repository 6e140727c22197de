"""``edgeauto run --device pi-relu --relu-budget N``: search, train, linearize, export.

On a private-inference device (``cost_model: relu-count``) a ReLU costs orders of magnitude
more than a multiply, so the budget is a ReLU count, not milliseconds. The job is the usual
search-then-compress with ReLUs in place of latency:

1. search the space with :class:`ReluCost` (each block built from its key once, its ReLUs
   and MACs counted) among archs up to ``SNL_HEADROOM`` x the budget, since SNL removes the
   rest far more cheaply in accuracy than a smaller arch would (SNL's own finding);
2. train the winner (resumable, like ``edgeauto run``);
3. SNL to the budget and fine-tune (:func:`edgeauto.linearize.snl.linearize`);
4. export ONNX and TFLite with parity checks; ``result.json`` and ``report.md`` give the
   ReLU count, MACs, cost and accuracy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from edgeauto.config import RunConfig
from edgeauto.devices.profile import load_profile
from edgeauto.fileio import write_json, write_text
from edgeauto.jobs.context import Context, check_cost_model, open_run
from edgeauto.jobs.linearize import export_checked
from edgeauto.jobs.stages import build_model, search_stage, train_stage
from edgeauto.latency.choose import for_profile
from edgeauto.linearize.snl import SNLConfig, count_macs, count_relus, linearize, relu_cost
from edgeauto.progress import NullReporter, Reporter
from edgeauto.rundir import release

#: the search may pick archs with up to this many times the budget's ReLUs; SNL cuts the rest
SNL_HEADROOM = 4.0


def run_private(cfg: RunConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """The whole job for ``cfg`` (``cfg.relu_budget`` set, ``cfg.device`` relu-count);
    returns what ``result.json`` holds."""
    profile = load_profile(cfg.device)
    check_cost_model(profile, cfg)
    assert cfg.relu_budget is not None  # check_cost_model: a relu-count device has one
    try:
        rd, data, space = open_run(cfg)  # records config.json
        ctx = Context(cfg, rd, reporter or NullReporter(), profile, data, space)
        cost = for_profile(profile)  # a relu-count device: ReLU-equivalents
        floor = cost.predict(space.blocks(space.cheapest(cost.block_ms)))
        arch = search_stage(ctx, cost, max(SNL_HEADROOM * cfg.relu_budget, floor))
        model = build_model(ctx, arch)
        trained = train_stage(ctx, model, "train", cfg.epochs)
        return _linearize_and_export(ctx, model, arch, trained)
    finally:
        release(cfg.out)


def _linearize_and_export(ctx: Any, model: nn.Module, arch: Any, trained: float) -> dict[str, Any]:
    cfg, data, profile = ctx.cfg, ctx.data, ctx.profile
    shape = data.input_shape
    snl = SNLConfig(finetune_epochs=cfg.finetune_epochs)
    macs_before = count_macs(model, shape)
    with ctx.reporter.task(f"SNL to {cfg.relu_budget} ReLUs", 1):
        result = linearize(model, data, cfg.relu_budget, snl, cfg.seed)
    doc = dataclasses.asdict(result) | {
        "device": profile.name, "arch": arch.to_json(), "trained_accuracy": trained,
        "macs": count_macs(model, shape), "macs_before": macs_before,
        "cost": relu_cost(model, shape, profile.flop_weight), "flop_weight": profile.flop_weight,
        "relus_counted": count_relus(model, shape),
    }  # fmt: skip
    doc |= export_checked(model, data, ctx.rd.root, profile.threads)
    write_json(ctx.rd.path("result.json"), doc)
    write_text(ctx.rd.path("report.md"), _report(doc))
    return doc


def _report(doc: dict[str, Any]) -> str:
    parity = ", ".join(
        f"{rt} top-1 agreement {p['top1_agreement']:.3f}" for rt, p in doc["parity"].items()
    )
    lines = [
        f"# edgeauto run on {doc['device']} (private inference, ReLU budget)",
        "",
        f"- ReLUs per inference: {doc['relus_before']:,} -> {doc['relus_after']:,} "
        f"(budget {doc['budget']:,})",
        f"- validation accuracy: {doc['trained_accuracy']:.4f} trained -> "
        f"{doc['accuracy']:.4f} linearized and fine-tuned",
        f"- cost: {doc['cost']:,.1f} ReLU-equivalents ({doc['macs']:,} MACs x "
        f"{doc['flop_weight']:g})",
        f"- parity: {parity}",
        f"- artifacts: `{Path(doc['onnx']).name}`, `{Path(doc['tflite']).name}`",
    ]
    return "\n".join(lines) + "\n"
