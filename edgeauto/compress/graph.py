"""Torch-Pruning's dependency graph, with errors a user can act on, and depth candidates."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from edgeauto.counting import count_params, probe
from edgeauto.errors import ConfigError


class _Running:
    """Forward hooks that remember which module was running when an exception escaped."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.stack = model, []
        names = {m: n for n, m in model.named_modules()}
        self.handles = [m.register_forward_pre_hook(self._pre(names)) for m in model.modules()]
        self.handles += [m.register_forward_hook(self._post) for m in model.modules()]

    def _pre(self, names: dict[nn.Module, str]):
        def pre(m: nn.Module, _inp: tuple) -> None:
            self.stack.append(names.get(m) or "<root>")

        return pre

    def _post(self, _m: nn.Module, _inp: tuple, _out: object) -> None:
        if self.stack:
            self.stack.pop()

    def where(self) -> str:
        name = self.stack[-1] if self.stack else "<root>"
        return f"module {name!r} ({type(_get(self.model, name)).__name__})"

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def build_graph(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
    """Trace ``model`` into a dependency graph; a model that cannot be traced raises
    :class:`ConfigError` naming the innermost module that was running when tracing failed."""
    running = _Running(model)
    try:
        return tp.DependencyGraph().build_dependency(
            model, example_inputs=torch.zeros(1, *input_shape)
        )
    except Exception as exc:
        raise ConfigError(
            f"torch-pruning cannot trace the model: {running.where()} failed with "
            f"{_first_line(exc)}; structured pruning needs a forward pass of tensor operations"
        ) from None
    finally:
        running.close()


def check_prunable(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Remove one channel from every group of a copy and run it: a dependency the trace did
    not see (numpy, ``.item()``, a tensor rebuilt from Python values) breaks here, and the
    error names the module that failed rather than a shape error deep in a later step."""
    twin = copy.deepcopy(model).train(False)
    dg = build_graph(twin, input_shape)
    names = {m: n for n, m in twin.named_modules()}
    lost = [n for m, n in names.items() if isinstance(m, nn.Conv2d) and m not in dg.module2node]
    if lost:
        raise ConfigError(
            f"torch-pruning cannot trace module {lost[0]!r} ({type(_get(twin, lost[0])).__name__}"
            f"): it is not on the traced path from input to output; a step after it leaves "
            "autograd (numpy, .item(), .detach(), Python lists), so its consumers are unknown"
        )
    roots = []
    for name, mod, group in prunable_groups(dg, twin):
        if len(group[0].root_idxs) > 1:
            dg.get_pruning_group(mod, group[0].dep.pruning_fn, [0]).prune()
            roots.append(name)
    running = _Running(twin)
    try:
        with torch.no_grad():
            twin(torch.zeros(1, *input_shape))
    except Exception as exc:
        raise ConfigError(
            f"torch-pruning cannot trace a dependency of this model: after removing one channel "
            f"of {', '.join(repr(r) for r in roots)}, {running.where()} failed with "
            f"{_first_line(exc)}; a non-tensor step (numpy, .item(), Python lists) hides which "
            "layers share channels"
        ) from None
    finally:
        running.close()


def _get(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name) if name not in ("", "<root>") else model
    except AttributeError:
        return model


def forward_with_hook(
    model: nn.Module, input_shape: tuple[int, ...], hook: Callable[[nn.Module, tuple, Any], None]
) -> None:
    """One batch-1 forward pass of zeros in inference mode with ``hook`` on every module."""
    probe(model, input_shape, [m.register_forward_hook(hook) for m in model.modules()])


def classifier_layers(model: nn.Module) -> list[nn.Module]:
    """Layers whose outputs are the classes: every linear layer (never prune the labels)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def prunable_groups(
    dg: tp.DependencyGraph, model: nn.Module
) -> list[tuple[str, nn.Module, tp.dependency.Group]]:
    """``(root name, root module, group)`` for every channel group that may be pruned."""
    names = {m: n for n, m in model.named_modules()}
    out = []
    for group in dg.get_all_groups(ignored_layers=classifier_layers(model)):
        root = group[0].dep.target.module
        out.append((names[root], root, group))
    return out


def remove_module(model: nn.Module, name: str) -> None:
    """Replace submodule ``name`` by an identity (its input must have its output's shape)."""
    parent_name, _, child = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
        getattr(parent, child)
    except AttributeError:
        raise ConfigError(f"pruning plan removes {name!r}, which the model does not have") from None
    setattr(parent, child, nn.Identity())


@dataclass(frozen=True)
class DepthCandidate:
    """A block whose removal keeps every shape: a residual block or a same-shape layer."""

    name: str
    params: int


def depth_candidates(model: nn.Module, input_shape: tuple[int, ...]) -> list[DepthCandidate]:
    """Submodules with parameters whose output shape equals their input shape.

    Replacing one by an identity removes a residual block (``x + f(x)`` becomes ``x``) or a
    whole same-shape layer. Nested candidates are proposed too (the accuracy proxy chooses),
    except the body of a candidate block; the root and modules without a conv are not. A
    model with a ``removable_blocks()`` method (the search spaces' nets) limits the candidates
    to the names it returns.
    """
    shapes: dict[str, bool] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(m: nn.Module, inp: tuple, out: object) -> None:
        if names.get(m) and isinstance(out, torch.Tensor) and inp and torch.is_tensor(inp[0]):
            shapes[names[m]] = inp[0].shape == out.shape

    forward_with_hook(model, input_shape, hook)
    if hasattr(model, "removable_blocks"):  # the model knows its blocks better than shapes do
        allowed = set(model.removable_blocks())
        shapes = {n: same for n, same in shapes.items() if n in allowed}
    found = {
        name: DepthCandidate(name, count_params(model.get_submodule(name)))
        for name, same in shapes.items()
        if same and any(isinstance(m, nn.Conv2d) for m in model.get_submodule(name).modules())
    }
    # The body of a candidate block (``x + body(x)``) is not a removal: replacing it gives
    # ``x + x``. Children of plain containers (a stage of blocks) stay candidates.
    return [
        c for name, c in sorted(found.items())
        if not ((parent := name.rpartition(".")[0]) in found and not _container(model, parent))
    ]  # fmt: skip


def _container(model: nn.Module, name: str) -> bool:
    return isinstance(model.get_submodule(name), nn.Sequential | nn.ModuleList)
