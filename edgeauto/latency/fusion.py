"""Latency predictors over a measured table, behind one interface and registered by name.

What the runtime fuses, and so what a key stands for: every table entry is a whole block
exported and timed alone (:mod:`edgeauto.latency.builder`), so the fusions a runtime
applies *inside* a block are already in its number. conv + batch norm + activation is one
conv with a fused activation in both runtimes (the ONNX export folds BN into the conv
weights; LiteRT runs ``CONV_2D`` with a fused ReLU6, ONNX Runtime fuses Conv + Clip), and the
inverted residual (pointwise expand, depthwise, pointwise project, residual add) is one key:
one ``OpKey("mbconv", ...)``, timed as its three convs and the add together
(``tests/test_predictor.py`` checks the exported ops). What a block timed alone pays and the
same block inside a network does not is left: one model invocation (setting the input,
invoking, copying the output out), which the table measures on a trivial model
(``LatencyTable.overhead``), and layout changes at the block's boundary that a network does
once: ONNX Runtime wraps every standalone block in ``ReorderInput`` / ``ReorderOutput``
(its NCHWc layout), and a standalone residual block's TFLite graph ends in a ``TRANSPOSE``.
Their cost grows with the block's input and output sizes, so it is learned, not subtracted
(the residual's ``io_kvalues`` and ``residual_out_kvalues`` features). The predictors:

- ``naive``: the sum of the blocks' medians, each counting its own invocation.
- ``fusion``: per block, its median minus the measured invocation overhead, plus one overhead
  per model (:meth:`LatencyTable.predict`).
- ``fusion+residual``: ``fusion`` times ``exp(r)``, where ``r`` is a ridge regression on
  per-network features predicting ``log(measured / fusion)``, trained on whole networks
  measured end to end (``edgeauto profile --validate N``, the table's ``validation``).
- ``flops``: total FLOPs times a fitted ms per FLOP; a rank proxy only.

Example:
    >>> predictor = get_predictor("fusion+residual", table, table.validation)
    >>> predictor.predict(space.blocks(arch))  # ms
"""

from __future__ import annotations

import abc
import hashlib
import json
import math
import random
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgeauto.errors import ConfigError
from edgeauto.latency.model import LATENCY_MODELS, LatencyModel
from edgeauto.latency.roofline import work
from edgeauto.latency.table import LatencyTable, WholeModelRun
from edgeauto.spaces.key import OpKey

#: Whole-network runs a residual model needs before it is trusted over plain ``fusion``.
MIN_TRAIN = 8
#: Ridge penalties tried; the one with the smallest leave-one-out error is kept.
ALPHAS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
FEATURES: tuple[str, ...] = (
    "log_fusion_ms",  # the prediction being corrected (errors grow or shrink with size)
    "blocks",  # each block timed alone paid invocation costs the network pays once
    "distinct_keys",
    "residual_blocks",  # a standalone residual block's TFLite graph carries an extra TRANSPOSE
    "overhead_share",  # how much of the prediction is the subtracted per-block overhead
    "mflops",
    "mbytes",  # fp32 weights + activations read and written (roofline counting)
    "io_kvalues",  # activations each block copies in and out when timed alone
    "residual_out_kvalues",
    "input_kvalues",  # the network's own input copy
)


def _io_values(key: OpKey) -> int:
    """Values a block reads and writes at its boundary (its input and output tensors)."""
    oh, ow = key.out_hw
    return key.cin * key.h * key.w + key.cout * (1 if key.kind == "head" else oh * ow)


def arch_features(table: LatencyTable, keys: Sequence[OpKey]) -> list[float]:
    """The :data:`FEATURES` of a network made of ``keys`` (all in ``table``), in order."""
    if not keys:
        raise ConfigError("a network needs at least one block key to be predicted; got none")
    fusion = table.predict(keys)
    flops_bytes = [work(k) for k in keys]
    values = {
        "log_fusion_ms": math.log(fusion),
        "blocks": float(len(keys)),
        "distinct_keys": float(len(set(keys))),
        "residual_blocks": float(sum(k.residual for k in keys)),
        "overhead_share": len(keys) * table.overhead_ms() / fusion,
        "mflops": sum(f for f, _ in flops_bytes) / 1e6,
        "mbytes": sum(b for _, b in flops_bytes) / 1e6,
        "io_kvalues": sum(_io_values(k) for k in keys) / 1e3,
        "residual_out_kvalues": sum(_io_values(k) for k in keys if k.residual) / 1e3,
        "input_kvalues": keys[0].cin * keys[0].h * keys[0].w / 1e3,
    }
    return [values[name] for name in FEATURES]


# -- ridge regression, stored as JSON ---------------------------------------------------------


@dataclass(frozen=True)
class Ridge:
    """Ridge regression on standardised features, fitted in closed form (numpy only).

    ``alpha`` is chosen by exact leave-one-out error among :data:`ALPHAS`; predictions are
    clipped to the range of the training targets, so the correction never exceeds what
    was seen. Plain data with a JSON round trip (no pickle).
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    alpha: float
    clip: tuple[float, float]
    loo_rmse: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, alphas: Sequence[float] = ALPHAS) -> Ridge:
        """Fit ``y ~ x`` (rows are samples)."""
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)  # a constant feature carries nothing
        z = np.c_[np.ones(len(y)), (x - mean) / scale]
        best: tuple[float, float, np.ndarray] | None = None
        for alpha in alphas:
            penalty = alpha * np.diag([0.0] + [1.0] * x.shape[1])  # the intercept is free
            inv = np.linalg.inv(z.T @ z + penalty)
            beta = inv @ z.T @ y
            hat = np.einsum("ij,jk,ik->i", z, inv, z)  # leverages, for exact LOO residuals
            loo = (y - z @ beta) / np.maximum(1.0 - hat, 1e-9)
            rmse = float(np.sqrt(np.mean(loo**2)))
            if best is None or rmse < best[0]:
                best = (rmse, alpha, beta)
        assert best is not None  # alphas is never empty
        rmse, alpha, beta = best
        return cls(
            tuple(mean.tolist()), tuple(scale.tolist()), tuple(beta[1:].tolist()),
            float(beta[0]), alpha, (float(y.min()), float(y.max())), rmse,
        )  # fmt: skip

    def predict(self, x: Sequence[float]) -> float:
        """The fitted value for one feature row, clipped to the training targets' range."""
        z = (np.asarray(x) - np.asarray(self.mean)) / np.asarray(self.scale)
        return float(np.clip(self.intercept + z @ np.asarray(self.coef), *self.clip))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: standardisation, coefficients, penalty, clip range, LOO error."""
        return {
            "mean": list(self.mean), "scale": list(self.scale), "coef": list(self.coef),
            "intercept": self.intercept, "alpha": self.alpha, "clip": list(self.clip),
            "loo_rmse": self.loo_rmse,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ridge:
        """Inverse of :meth:`to_json`; malformed input raises :class:`ConfigError`."""
        try:
            return cls(
                tuple(data["mean"]), tuple(data["scale"]), tuple(data["coef"]),
                float(data["intercept"]), float(data["alpha"]), tuple(data["clip"]),
                float(data["loo_rmse"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"ridge model JSON is malformed ({exc}); refit it") from None


# -- predictors -------------------------------------------------------------------------------


class Predictor(LatencyModel[OpKey]):
    """A :class:`~edgeauto.latency.model.LatencyModel` over a measured table: predicts a
    network's latency (ms) from its block keys.

    Registered in :data:`~edgeauto.latency.model.LATENCY_MODELS` (:func:`list_predictors`
    names this family); ``rank_only`` ones are compared by rank correlation only. :meth:`fit`
    trains on whole networks measured end to end (a no-op for most). :meth:`block_ms` is the
    table's block without the invocation overhead unless a subclass says otherwise.
    """

    name: ClassVar[str]
    rank_only: ClassVar[bool] = False

    def __init__(self, table: LatencyTable) -> None:
        self.table = table

    def fit(self, runs: Sequence[WholeModelRun]) -> Predictor:
        """Train on ``runs``; returns ``self``."""
        return self

    def block_ms(self, key: OpKey) -> float:
        """The block's median in the table, invocation overhead removed (ms)."""
        return self.table.block_ms(key)

    @abc.abstractmethod
    def predict(self, keys: Iterable[OpKey]) -> float:
        """Predicted latency in ms of the network made of ``keys``."""

    def to_json(self) -> dict[str, Any]:
        """What this predictor is, for manifests (learned coefficients included)."""
        return {"name": self.name}

    def signature(self) -> str:
        """``name``, plus a hash of what it learned: predictions with equal signatures are
        comparable (calibration mixes only those)."""
        learned = {k: v for k, v in self.to_json().items() if k != "name"}
        if not learned:
            return self.name
        digest = hashlib.sha256(json.dumps(learned, sort_keys=True).encode()).hexdigest()
        return f"{self.name}:{digest[:12]}"


@LATENCY_MODELS.register("naive")
class NaiveSum(Predictor):
    """The sum of the blocks' medians (each block counts its own invocation overhead)."""

    name = "naive"

    def block_ms(self, key: OpKey) -> float:
        """The block's median as timed alone (its own invocation included)."""
        return self.table.lookup(key).median_ms

    def predict(self, keys: Iterable[OpKey]) -> float:
        return sum(self.block_ms(k) for k in keys)


@LATENCY_MODELS.register("fusion")
class FusionAware(Predictor):
    """Blocks are fused units; their overhead is removed and counted once per model."""

    name = "fusion"

    def predict(self, keys: Iterable[OpKey]) -> float:
        return self.table.predict(keys)


@LATENCY_MODELS.register("fusion+residual")
class FusionResidual(FusionAware):
    """``fusion`` corrected by a ridge regression of ``log(measured / fusion)``.

    Not additive: the correction is a factor of the whole network (an empty network gets
    none: it is the invocation overhead). :meth:`block_ms` is ``fusion``'s.
    """

    name = "fusion+residual"
    additive = False

    def __init__(self, table: LatencyTable, ridge: Ridge | None = None) -> None:
        super().__init__(table)
        self.ridge = ridge
        self.trained_on = 0

    def fit(self, runs: Sequence[WholeModelRun]) -> FusionResidual:
        usable = [r for r in runs if not self.table.missing(r.keys)]
        if len(usable) < MIN_TRAIN:
            p = self.table.provenance
            raise ConfigError(
                f"the residual correction needs >= {MIN_TRAIN} whole networks measured end to "
                f"end with every block in the table, got {len(usable)}; run edgeauto profile "
                f"--device {p.device} --space {p.space} --validate {2 * MIN_TRAIN}"
            )
        x = np.array([arch_features(self.table, r.keys) for r in usable])
        fusion = np.array([self.table.predict(r.keys) for r in usable])
        y = np.log(np.array([r.measured_ms for r in usable]) / fusion)
        self.ridge, self.trained_on = Ridge.fit(x, y), len(usable)
        return self

    def correction(self, keys: Sequence[OpKey]) -> float:
        """The learned factor ``measured / fusion`` for ``keys``."""
        if self.ridge is None:
            raise ConfigError("fusion+residual is not trained; call fit(table.validation) first")
        return math.exp(self.ridge.predict(arch_features(self.table, keys)))

    def predict(self, keys: Iterable[OpKey]) -> float:
        keys = list(keys)
        if not keys:
            return super().predict(keys)
        return super().predict(keys) * self.correction(keys)

    def to_json(self) -> dict[str, Any]:
        ridge = self.ridge.to_json() if self.ridge else None
        return {"name": self.name, "features": list(FEATURES), "ridge": ridge}


@LATENCY_MODELS.register("flops")
class FlopsProxy(Predictor):
    """Total FLOPs (roofline counting) times a fitted ms per FLOP: ranks, not milliseconds."""

    name = "flops"
    rank_only = True

    def __init__(self, table: LatencyTable) -> None:
        super().__init__(table)
        self.ms_per_mflop = 1.0

    def fit(self, runs: Sequence[WholeModelRun]) -> FlopsProxy:
        if runs:
            self.ms_per_mflop = statistics.median(r.measured_ms / _mflops(r.keys) for r in runs)
        return self

    def block_ms(self, key: OpKey) -> float:
        """The block's FLOPs times the fitted ms per FLOP."""
        return _mflops([key]) * self.ms_per_mflop

    def predict(self, keys: Iterable[OpKey]) -> float:
        return _mflops(keys) * self.ms_per_mflop


def _mflops(keys: Iterable[OpKey]) -> float:
    return sum(work(k)[0] for k in keys) / 1e6


def get_predictor(
    name: str, table: LatencyTable, runs: Sequence[WholeModelRun] | None = None
) -> Predictor:
    """The registered predictor ``name`` over ``table``, fitted on ``runs`` when given."""
    cls = LATENCY_MODELS.get(name)
    if not issubclass(cls, Predictor):
        raise ConfigError(
            f"latency model {name!r} is not fitted from a table; pick one of "
            f"{', '.join(list_predictors())}"
        )
    predictor = cls(table)
    return predictor.fit(runs) if runs is not None else predictor


def list_predictors() -> list[str]:
    """Names of the registered latency models fitted from a table (:class:`Predictor`)."""
    return [n for n in LATENCY_MODELS.names() if issubclass(LATENCY_MODELS.get(n), Predictor)]


def best_predictor(table: LatencyTable) -> Predictor:
    """``fusion+residual`` trained on the table's validation runs when there are enough of
    them (:data:`MIN_TRAIN`), else ``fusion``."""
    usable = [r for r in table.validation if not table.missing(r.keys)]
    if len(usable) >= MIN_TRAIN:
        return FusionResidual(table).fit(usable)
    return FusionAware(table)


# -- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """How well predictions match measurements: shares within ±5% / ±10%, RMSPE, Spearman."""

    within_5pct: float
    within_10pct: float
    rmspe: float
    spearman: float

    @classmethod
    def of(cls, predicted: Sequence[float], measured: Sequence[float]) -> Score:
        p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
        if len(p) != len(m) or len(m) < 2:
            raise ConfigError(f"scoring needs >= 2 paired values, got {len(p)} and {len(m)}")
        err = np.abs(p - m) / m
        return cls(
            float(np.mean(err <= 0.05)), float(np.mean(err <= 0.10)),
            float(np.sqrt(np.mean(err**2))), spearman(p, m),
        )  # fmt: skip

    def to_json(self) -> dict[str, float]:
        return {
            "within_5pct": self.within_5pct, "within_10pct": self.within_10pct,
            "rmspe": self.rmspe, "spearman": self.spearman,
        }  # fmt: skip


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (ties get their average rank)."""
    from scipy.stats import spearmanr  # scipy comes with scikit-learn; imported on use

    rho = spearmanr(a, b).statistic
    return float(rho) if math.isfinite(rho) else 0.0


def cross_validated(
    make: Callable[[], Predictor], runs: Sequence[WholeModelRun], folds: int = 5, seed: int = 0
) -> list[float]:
    """Out-of-fold predictions: each run is predicted by a predictor fitted on the other
    folds only (``make()`` builds a fresh, unfitted one per fold)."""
    if not 2 <= folds <= len(runs):
        raise ConfigError(f"folds must be in [2, {len(runs)}] for {len(runs)} runs, got {folds}")
    order = list(range(len(runs)))
    random.Random(seed).shuffle(order)
    out = [0.0] * len(runs)
    for f in range(folds):
        held = set(order[f::folds])
        model = make().fit([r for i, r in enumerate(runs) if i not in held])
        for i in held:
            out[i] = model.predict(runs[i].keys)
    return out
