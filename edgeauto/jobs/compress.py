"""``compress(config) -> Manifest``: prune an existing model to a latency budget on a device.

The model is either a run directory of ``edgeauto run`` (``from_run``: its arch and weights,
costed with the device's block table) or the user's own ``nn.Module`` (``model``:
``package.module:function`` or ``path/to/file.py:function``, costed layer by layer on the
device). Both then go through the same stages as ``run``: prune, fine-tune, export, verify.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeauto.compress import CRITERIA, PRUNERS
from edgeauto.compress.graph import check_prunable
from edgeauto.compress.layer_lut import LayerLatency
from edgeauto.config import RunConfig, job_config
from edgeauto.data import Dataset
from edgeauto.devices.profile import load_profile
from edgeauto.errors import ConfigError, OverBudget
from edgeauto.jobs.context import Context, setup
from edgeauto.jobs.run import compress_and_verify
from edgeauto.jobs.sparse import sparse_and_verify
from edgeauto.latency.builder import TimingSettings, check_precision, make_timer
from edgeauto.manifest import Manifest
from edgeauto.progress import NullReporter, Reporter
from edgeauto.rundir import CONFIG_FILE, RunDir, inside, release
from edgeauto.spaces.base import Arch
from edgeauto.sparse import SPARSE_METHODS


def compress(
    config: RunConfig | None = None,
    reporter: Reporter | None = None,
    *,
    check: bool = True,
    **overrides: Any,
) -> Manifest:
    """Prune ``model`` or ``from_run`` to ``latency_ms`` on ``device``; the written manifest.

    Raises :class:`edgeauto.OverBudget` when the result fails its budget, unless
    ``check=False`` (as :func:`edgeauto.run`). ``resume=RUN_DIR`` continues the compression
    recorded there, as :func:`edgeauto.run` does.

    Example:
        >>> m = edgeauto.compress(model="mynet:build", device="host", latency_ms=0.3,
        ...                       dataset="mnist5k", criterion="taylor2")
    """
    cfg = job_config(config, overrides, RunConfig(out="runs/compress"))
    if (cfg.model is None) == (cfg.from_run is None):
        raise ConfigError(
            "compress needs exactly one model source; pass --model module:function "
            "or --from RUN_DIR"
        )
    PRUNERS.get(cfg.allocation), CRITERIA.get(cfg.criterion)  # unknown names fail first
    check_precision(load_profile(cfg.device), cfg.precision)
    if cfg.sparse_method is not None:
        SPARSE_METHODS.get(cfg.sparse_method)
    reporter = reporter or NullReporter()
    try:
        if cfg.from_run is not None:
            return _from_run(cfg, Path(cfg.from_run), reporter)
        return _from_module(cfg, cfg.model or "", reporter)
    except OverBudget as exc:
        if check:
            raise
        return exc.manifest  # a job's OverBudget carries the written manifest
    finally:
        release(cfg.out)  # the run directory is free for the next run of this process


def _from_run(cfg: RunConfig, run_dir: Path, reporter: Reporter) -> Manifest:
    """An ``edgeauto run`` directory: its arch and space, its fine-tuned weights."""
    path = run_dir / "manifest.json"
    try:
        doc = json.loads(path.read_text())
        space, arch = doc["space"], Arch.from_json(doc["arch"])
        dataset, ckpt = doc["config"]["dataset"], doc["artifacts"]["checkpoint"]["path"]
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        raise ConfigError(
            f"--from {run_dir}: no readable manifest.json of a finished edgeauto run "
            f"({type(exc).__name__}: {exc}); pass the --out directory of a completed run"
        ) from None
    if space is None or arch is None:
        raise ConfigError(f"--from {run_dir}: that run compressed a custom model; use --model")
    if cfg.dataset == RunConfig.dataset:  # not given: the run's own data
        cfg = dataclasses.replace(cfg, dataset=dataset)
    ctx = setup(dataclasses.replace(cfg, space=space), reporter)
    model = ctx.space.build(arch)
    load_weights(model, Path(cfg.weights) if cfg.weights else _in_run(run_dir, ckpt))
    return _finish(ctx, model, 0, arch=arch, source=f"run:{run_dir}")


def _in_run(run_dir: Path, recorded: object) -> Path:
    """A file a run's manifest names, which must lie inside that run's directory.

    Manifests record absolute paths; a path elsewhere (a crafted or copied manifest, or
    ``..`` in it) is refused rather than read.
    """
    root = run_dir.expanduser().resolve()
    path = Path(str(recorded))
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root)
        except ValueError:
            path = Path(str(recorded))  # outside the run: inside() names it below
    return inside(root, path, f"--from {run_dir}: manifest artifact")


def _from_module(cfg: RunConfig, spec: str, reporter: Reporter) -> Manifest:
    """The user's own module, costed by timing each of its layers on the device (converted
    at the run's precision)."""
    profile = load_profile(cfg.device)
    rd = RunDir(cfg.out)
    rd.start(cfg.resume, cfg.to_json())
    rd.write_json(CONFIG_FILE, cfg.to_json())  # first: ``--resume DIR`` reads it
    data = cfg.data_spec.load()
    model = load_user_model(spec, data)
    if cfg.weights:
        load_weights(model, Path(cfg.weights))
    timer = make_timer(profile, TimingSettings(runs=50, warmup=10, rounds=3), cfg.precision)
    cost = LayerLatency(timer, data.input_shape)
    ctx = Context(cfg, rd, reporter, profile, data, cost=cost, timer=timer)
    return _finish(ctx, model, 0 if cfg.weights else cfg.epochs, source=spec)


def _finish(
    ctx: Context, model: nn.Module, epochs: int, arch: Arch | None = None, source: str | None = None
) -> Manifest:
    """Structured pruning to the budget, or with ``sparse_method`` unstructured sparse
    training (which trains ``cfg.epochs`` from the given weights either way)."""
    try:
        if ctx.cfg.sparse_method is not None:
            return sparse_and_verify(ctx, model, arch=arch, source=source)
        return compress_and_verify(ctx, model, epochs, arch=arch, source=source)
    finally:
        ctx.close()


def load_user_model(spec: str, data: Dataset) -> nn.Module:
    """Call ``module:function`` (or ``file.py:function``); it may take ``num_classes`` and
    ``input_shape``. The result must map a batch of ``data`` to one logit per class."""
    target, sep, func = spec.partition(":")
    if not sep or not target or not func.isidentifier():
        raise ConfigError(f"--model must be module:function or file.py:function, got {spec!r}")
    factory = getattr(_import(target), func, None)
    if not callable(factory):
        raise ConfigError(f"--model {spec}: {target} has no callable {func!r}")
    params = inspect.signature(factory).parameters
    kwargs = {"num_classes": data.num_classes, "input_shape": data.input_shape}
    try:
        model = factory(**{k: v for k, v in kwargs.items() if k in params})
    except Exception as exc:
        raise ConfigError(
            f"--model {spec}: calling it failed: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model {spec} returned {type(model).__name__}, not a torch nn.Module")
    model.train(False)
    try:
        with torch.no_grad():
            out = model(data.x_val[:2])
    except Exception as exc:
        raise ConfigError(
            f"--model {spec} fails on the dataset's input {tuple(data.x_val[:2].shape)}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if tuple(out.shape) != (2, data.num_classes):
        raise ConfigError(
            f"--model {spec} must output (batch, {data.num_classes}) logits for {data.name}, "
            f"got {tuple(out.shape)}"
        )
    check_prunable(model, data.input_shape)  # before any training, not after it
    return model


def _import(target: str) -> Any:
    try:
        if target.endswith(".py"):
            path = Path(target)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise ImportError(f"no file {path}")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return mod
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # `mymodels:build` from the working directory
        return importlib.import_module(target)
    except Exception as exc:
        raise ConfigError(
            f"--model: cannot import {target!r}: {type(exc).__name__}: {exc}"
        ) from None


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a state dict saved with ``torch.save(model.state_dict())``, checking every key
    and shape first; a mismatch names the first offending key."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise ConfigError(f"--weights {path}: no such file") from None
    except Exception as exc:
        raise ConfigError(
            f"--weights {path} is not a state dict saved with torch.save: {type(exc).__name__}"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"--weights {path} holds a {type(state).__name__}, not a state dict")
    _check_state(model.state_dict(), state, path)
    model.load_state_dict(state)


def _check_state(want: dict[str, torch.Tensor], got: dict[str, Any], path: Path) -> None:
    for key, tensor in want.items():
        if key not in got:
            raise ConfigError(f"--weights {path} does not match the model: missing key {key!r}")
        if not isinstance(got[key], torch.Tensor) or got[key].shape != tensor.shape:
            shape = tuple(got[key].shape) if isinstance(got[key], torch.Tensor) else "not a tensor"
            raise ConfigError(
                f"--weights {path} does not match the model: {key!r} is {shape}, "
                f"the model needs {tuple(tensor.shape)}"
            )
    extra = sorted(set(got) - set(want))
    if extra:
        raise ConfigError(f"--weights {path} does not match the model: unexpected key {extra[0]!r}")
