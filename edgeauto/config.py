"""The run configuration: one frozen object, validated field by field."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeauto.budget import HEADROOM, Budget
from edgeauto.data import TEST_FRACTION, VAL_FRACTION, DataSpec
from edgeauto.errors import ConfigError, RunDirError
from edgeauto.latency.store import PRECISIONS
from edgeauto.limits import Limits
from edgeauto.rundir import CONFIG_FILE, recorded_config
from edgeauto.search.dnas import BUDGET_TERMS
from edgeauto.train import TrainConfig


def _positive(name: str, value: float, integer: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0 or (integer and int(value) != value):
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}; fix --{name.replace('_', '-')}")


MODES = ("search-then-compress", "joint")
CALIBRATIONS = ("fresh", "history")  # where a run's latency calibration factor comes from


@dataclass(frozen=True)
class RunConfig:
    """Everything one ``edgeauto run`` needs. Defaults are the ``make run`` job.

    ``search_headroom`` lets the search consider archs up to that factor over the budget
    (sampling first in the band above the budget); compression then prunes the winner down
    to the budget, so both stages do work. That is
    ``mode="search-then-compress"``; ``mode="joint"`` searches at the budget itself, the
    per-stage widths (the channel counts pruning would choose) being choices of the search,
    and compression only corrects a model the device measures over budget.
    ``criterion`` ranks channels (``l1``, ``taylor2`` ...); ``allocation`` decides how many each
    layer loses (``netadapt``: latency-driven with depth pruning; ``uniform``: same share).
    ``scratch_baseline`` also trains the pruned architecture from scratch (Liu et al.): with the
    unpruned model's epochs (Scratch-E) and with its training FLOPs (Scratch-B).
    ``max_params``, ``max_size_kb`` (the float32 ``.tflite`` file) and ``max_activation_kb``
    (peak activation memory, estimated from the graph) bound the model besides latency.
    ``int8`` also writes a full-integer ``model_int8.tflite`` (post-training quantization
    calibrated on training inputs), checked against float32 and timed beside it.
    ``precision`` is what the model is deployed as: ``fp32`` (``model.tflite`` or the ONNX
    file) or ``int8`` (``model_int8.tflite``, a LiteRT device only): search and pruning price
    it with the device's table of that precision, and the verdict measures that artifact.
    ``calibration``: ``"fresh"`` times a few whole networks near the budget when the run
    starts (a local device), ``"history"`` uses earlier runs' verified artifacts.
    ``inherit_weights`` starts training from the supernet's weights (``dnas`` only) instead of
    from scratch.
    ``also`` lists further ``(device, latency_ms)`` pairs the same model must meet
    (``--one-model``): one arch, pruned until every device's budget holds, measured on each.
    """

    device: str = "host"
    latency_ms: float = 0.5
    dataset: str = "mnist5k"
    out: str = "runs/default"
    seed: int = 0
    epochs: int = 5
    space: str = "fbnet-lite"
    strategy: str = "capacity"  # benchmarks/results/proxy_fidelity.json: see search/capacity.py
    criterion: str = "l1"
    allocation: str = "netadapt"
    scratch_baseline: bool = False
    inherit_weights: bool = False
    int8: bool = True
    precision: str = "fp32"
    max_params: int | None = None
    max_size_kb: float | None = None
    max_activation_kb: float | None = None
    trials: int = 3  # the proxy only vetoes capacity's choice: see search/capacity.py
    search_epochs: int = 1
    search_batches: int = 60
    # smbo only: rank the first archs by zero-cost scores; archs trained per step (0: auto)
    warm_start: bool = False
    beam: int = 0
    # dnas only: the architecture step's latency price (search/dnas.py: BUDGET_TERMS)
    budget_term: str = "hinge"
    finetune_epochs: int = 2
    search_headroom: float = HEADROOM
    mode: str = "search-then-compress"
    # "fresh": a local device is timed on whole networks near the budget when the run starts;
    # "history": the factor of earlier runs' verified artifacts (what a remote device gets)
    calibration: str = "fresh"
    tolerance: float = 0.10
    parity_samples: int = 32
    measure_runs: int = 200
    tables: str | None = None
    resume: bool = False
    # edgeauto compress: the model to start from (exactly one of the two), and its weights
    model: str | None = None
    from_run: str | None = None
    weights: str | None = None
    # unstructured sparsity instead of structured pruning (edgeauto compress --method)
    sparse_method: str | None = None
    sparsity: float = 0.9
    also: tuple[tuple[str, float], ...] = ()
    # private inference (a device with cost_model: relu-count): the ReLU budget, not latency
    relu_budget: int | None = None
    # the splits: val steers every choice, test is read once at the end (or --test-dataset)
    val_fraction: float = VAL_FRACTION
    test_fraction: float = TEST_FRACTION
    test_dataset: str | None = None
    cache: bool = True  # keep decoded image folders in the user's cache
    # the training recipe of every stage; augment None: on for RGB images, off for grayscale
    augment: bool | None = None
    optimizer: str = "adamw"
    label_smoothing: float = 0.0
    train_device: str = "cpu"

    @property
    def data_spec(self) -> DataSpec:
        """The data and its split, as a worker process loads it."""
        return DataSpec(
            self.dataset, self.seed, self.val_fraction, self.test_fraction,
            self.test_dataset, self.cache,
        )  # fmt: skip

    def train_config(self, epochs: int, max_batches: int | None = None) -> TrainConfig:
        """The run's recipe for one training stage of ``epochs``."""
        return TrainConfig(
            epochs=epochs, max_batches=max_batches, augment=self.augment,
            optimizer=self.optimizer, label_smoothing=self.label_smoothing,
            device=self.train_device,
        )  # fmt: skip

    @property
    def headroom(self) -> float:
        """The factor over the budget the search may use: none when pruning is searched too."""
        return 1.0 if self.mode == "joint" else self.search_headroom

    @property
    def limits(self) -> Limits:
        return Limits(self.max_params, self.max_size_kb, self.max_activation_kb)

    @property
    def budget(self) -> Budget:
        """The run's :class:`Budget`: latency, tolerance, the search's headroom, the limits."""
        return Budget(self.latency_ms, self.tolerance, self.headroom, self.limits)

    def __post_init__(self) -> None:
        _positive("latency_ms", self.latency_ms)
        Limits(self.max_params, self.max_size_kb, self.max_activation_kb)  # validates each
        for name in (
            "epochs",
            "trials",
            "search_epochs",
            "search_batches",
            "parity_samples",
            "measure_runs",
        ):
            _positive(name, getattr(self, name), integer=True)
        self._check_search()
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}; fix --seed")
        if self.mode not in MODES:
            raise ConfigError(
                f"mode must be one of {', '.join(MODES)}, got {self.mode!r}; fix --mode"
            )
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(
                f"calibration must be one of {', '.join(CALIBRATIONS)}, got "
                f"{self.calibration!r}; fix --calibration"
            )
        Budget(self.latency_ms, self.tolerance, self.search_headroom)  # validates the bands
        self._check_precision()
        self._check_data()
        if self.finetune_epochs < 0:
            raise ConfigError(f"finetune_epochs must be >= 0, got {self.finetune_epochs}")
        if self.relu_budget is not None and not (
            isinstance(self.relu_budget, int) and self.relu_budget >= 0
        ):
            raise ConfigError(
                f"relu_budget must be an integer >= 0, got {self.relu_budget!r}; fix --relu-budget"
            )
        for device, budget in self.also:
            _positive("latency_ms", budget)
            if device == self.device:
                raise ConfigError(f"--device names {device} twice; name each device once")
        if not (isinstance(self.sparsity, int | float) and 0.0 <= self.sparsity < 1.0):
            raise ConfigError(f"sparsity must be in [0, 1), got {self.sparsity!r}; fix --sparsity")

    def _check_data(self) -> None:
        """The split leaves images to train on; the recipe's names are known."""
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(
                f"val_fraction must be in (0, 1), got {self.val_fraction!r}; fix --val-fraction"
            )
        if not 0.0 <= self.test_fraction < 1.0 or self.val_fraction + self.test_fraction >= 0.9:
            raise ConfigError(
                f"test_fraction must be in [0, 1) and leave >= 10% for training, got "
                f"{self.test_fraction!r} beside val_fraction {self.val_fraction}; fix --test-fraction"
            )
        self.train_config(1)  # validates optimizer, label_smoothing and train_device

    def _check_precision(self) -> None:
        """A known precision; int8 deploys model_int8.tflite, so it needs the int8 export."""
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}; "
                "fix --precision"
            )
        if self.precision == "int8" and not self.int8:
            raise ConfigError(
                "--precision int8 deploys and measures model_int8.tflite, which --no-int8 skips; "
                "drop --no-int8"
            )

    def _check_search(self) -> None:
        """The options of one strategy are not given to another."""
        if not isinstance(self.beam, int) or self.beam < 0:
            raise ConfigError(f"beam must be an integer >= 0, got {self.beam!r}; fix --beam")
        if self.strategy != "smbo" and (self.warm_start or self.beam):
            raise ConfigError(
                f"--warm-start and --beam belong to --strategy smbo, not {self.strategy}; drop them"
            )
        if self.budget_term not in BUDGET_TERMS:
            raise ConfigError(
                f"budget_term must be one of {', '.join(BUDGET_TERMS)}, got "
                f"{self.budget_term!r}; fix --budget-term"
            )
        if self.strategy != "dnas" and self.budget_term != "hinge":
            raise ConfigError(
                f"--budget-term belongs to --strategy dnas, not {self.strategy}; drop it"
            )

    def to_json(self) -> dict[str, Any]:
        """The config as plain JSON (``config.json`` of a run directory)."""
        doc = asdict(self)
        doc["also"] = [[device, budget] for device, budget in self.also]  # as JSON reads back
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunConfig:
        """The config :meth:`to_json` wrote. A field the record lacks (written before the
        field existed) takes its default; one this version does not know is dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in doc.items() if k in known}
        if "also" in kw:
            kw["also"] = tuple((str(device), budget) for device, budget in kw["also"])
        return cls(**kw)


def resume_config(run_dir: str | os.PathLike[str], given: dict[str, Any]) -> RunConfig:
    """The config recorded in ``run_dir`` with the ``given`` fields over it, resuming that run.

    A given field that differs from the record is refused when the run directory is opened
    (:meth:`edgeauto.rundir.RunDir.start` names it), so only fields left out may be omitted.
    """
    root = Path(run_dir).expanduser()
    out = given.get("out")
    if out is not None and Path(out).expanduser().resolve() != root.resolve():
        raise ConfigError(
            f"--out {out} and --resume {run_dir} name two directories; drop --out (a resumed "
            "run continues in its own directory)"
        )
    doc = recorded_config(root)
    try:
        recorded = RunConfig.from_json(doc)
    except (ConfigError, TypeError, ValueError) as exc:
        raise RunDirError(
            f"{root / CONFIG_FILE} holds no valid run config ({exc}); drop --resume to start over"
        ) from None
    return dataclasses.replace(recorded, **{**given, "out": str(run_dir), "resume": True})


def job_config(config: RunConfig | None, overrides: dict[str, Any], base: RunConfig) -> RunConfig:
    """The config of ``edgeauto.run``/``compress``: ``config`` (else ``base``) with
    ``overrides``; with ``resume=RUN_DIR``, the run recorded there (:func:`resume_config`)."""
    resume = overrides.get("resume")
    if not isinstance(resume, str | os.PathLike):  # True/False: resume=True needs every field
        return dataclasses.replace(config or base, **overrides)
    if config is not None:
        raise ConfigError(
            "resume=RUN_DIR takes the run's recorded config; pass changed fields as keywords, "
            "not config"
        )
    return resume_config(resume, {k: v for k, v in overrides.items() if k != "resume"})
