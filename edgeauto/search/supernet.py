"""The supernet the ``dnas`` strategy trains (FBNet, FBNetV2's width masks, PruNet's pruning).

Every searchable layer of a :class:`~edgeauto.spaces.layerwise.LayerwiseSpace` is a
:class:`MixedLayer`: its candidate blocks, built at the stage's widest width, are summed with
Gumbel-softmax weights over architecture logits ``alpha``. A stage's width is searched as in
FBNetV2: one block at the widest width, its output multiplied by a soft channel mask (a
Gumbel-weighted sum of one 0/1 mask per candidate width), so width costs no extra memory.

PruNet's stochastic bi-path block (:class:`BiPath`, "Prunode") replaces a kernel's candidates
of different expansions with one block whose hidden width moves during search: two paths,
``large`` and ``small`` expansion, computed in one pass as a channel mask (channels both paths
have weigh 1, those only the large path has weigh its Gumbel weight). When the small path
wins, the block is narrowed to it (the pruned channels are deleted) and a new small path opens
one ``step`` lower, down to the kernel's smallest listed expansion.

:class:`SupernetLatency` prices it all from the block table: the expected latency of the
sampled weights is a sum of table latencies times weights (differentiable in the weights).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from edgeauto.latency.model import LatencyModel
from edgeauto.spaces.base import SKIP, Arch, Choice
from edgeauto.spaces.key import OpKey
from edgeauto.spaces.layerwise import LayerwiseSpace
from edgeauto.spaces.modules import Head, MBConv, Stem, hidden_width


def gumbel_softmax(logits: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """Soft Gumbel-softmax sample of ``logits`` at temperature ``tau`` (seeded noise)."""
    u = torch.rand(logits.shape, generator=gen).clamp_(1e-9, 1 - 1e-9)
    return torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)


def one_hot_argmax(logits: torch.Tensor) -> torch.Tensor:
    """The hard choice: 1 at the largest logit (first on ties), 0 elsewhere."""
    out = torch.zeros_like(logits)
    out[int(torch.argmax(logits))] = 1.0
    return out


def snap(ratio: float, expansions: tuple[int, ...]) -> int:
    """The listed expansion nearest ``ratio``; a tie goes to the larger (keeps capacity)."""
    return min(expansions, key=lambda e: (abs(e - ratio), -e))


def interpolate(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear ``y(x)`` through sorted ``points`` (constant beyond the ends)."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def _narrow_conv(conv: nn.Conv2d, out: int, cin: int) -> nn.Conv2d:
    """A copy of ``conv`` keeping its first ``out`` filters over its first ``cin`` inputs."""
    depthwise = conv.groups == conv.in_channels and conv.groups > 1
    new = nn.Conv2d(
        cin, out, conv.kernel_size, conv.stride, conv.padding,
        groups=out if depthwise else conv.groups, bias=False,
    )  # fmt: skip
    width = 1 if depthwise else cin
    new.weight.data.copy_(conv.weight.data[:out, :width])
    return new


def _narrow_bn(bn: nn.BatchNorm2d, n: int) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(n)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new, name).data.copy_(getattr(bn, name).data[:n])
    new.num_batches_tracked.data.copy_(bn.num_batches_tracked.data)
    return new


class BiPath(nn.Module):
    """PruNet's stochastic bi-path block over one kernel's expansions (see the module doc).

    The body has MobileNetV2's layout (``body.0`` expand ... ``body.7`` project BN), so its
    weights map onto a derived :class:`MBConv` by name.
    """

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expansions: tuple[int, ...],
        step: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.cin, self.kernel, self.step = cin, kernel, step
        self.expansions = tuple(sorted(expansions))
        self.large = float(self.expansions[-1])
        self.small = max(float(self.expansions[0]), self.large - step)
        self.body = MBConv(cin, cout, kernel, stride, self.channels(self.large)).body
        self.residual = stride == 1 and cin == cout
        self.beta = nn.Parameter(torch.zeros(2))  # logits of (large, small)
        self.weights: torch.Tensor = torch.tensor([1.0, 0.0])

    def channels(self, ratio: float) -> int:
        """Hidden channels at expansion ``ratio`` of the supernet's input width."""
        return max(1, round(ratio * self.cin))

    @property
    def settled(self) -> bool:
        """No smaller width is left to try."""
        return self.small >= self.large

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body[:6](x)
        n_small = self.channels(self.small)
        only_large = self.weights[0].expand(h.shape[1] - n_small)
        mask = torch.cat([torch.ones(n_small), only_large]).view(1, -1, 1, 1)
        y = self.body[6:](h * mask)
        return x + y if self.residual else y

    def probs(self) -> torch.Tensor:
        return torch.softmax(self.beta.detach(), dim=0)

    def ratio(self) -> float:
        """The expansion the block has settled on so far (the stronger path)."""
        p = self.probs()
        return self.large if self.settled or p[0] >= p[1] else self.small

    def expansion(self) -> int:
        """:meth:`ratio` snapped to a listed expansion, so the table can price it."""
        return snap(self.ratio(), self.expansions)

    def shrink(self, threshold: float) -> bool:
        """Narrow to the small path when its probability reaches ``threshold``."""
        if self.settled or float(self.probs()[1]) < threshold:
            return False
        self.large, self.small = self.small, max(float(self.expansions[0]), self.small - self.step)
        n, body = self.channels(self.large), self.body
        body[0], body[1] = _narrow_conv(body[0], n, body[0].in_channels), _narrow_bn(body[1], n)
        body[3], body[4] = _narrow_conv(body[3], n, n), _narrow_bn(body[4], n)
        body[6] = _narrow_conv(body[6], body[6].out_channels, n)
        self.beta = nn.Parameter(torch.zeros(2))  # a fresh contest between the new paths
        return True


class MixedLayer(nn.Module):
    """One searchable layer: candidate ops summed with weights set by :meth:`SuperNet.sample`."""

    def __init__(self, stage: int, layer: int, ops: dict[str, nn.Module]) -> None:
        super().__init__()
        self.stage, self.layer = stage, layer
        self.ops = nn.ModuleDict(ops)
        self.alpha = nn.Parameter(torch.zeros(len(ops)))
        self.weights: torch.Tensor = torch.ones(len(ops)) / len(ops)

    @property
    def names(self) -> list[str]:
        return list(self.ops.keys())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        live = (self.weights != 0).tolist()  # a hard (one-hot) sample runs one op only
        terms = [self.weights[i] * op(x) for i, op in enumerate(self.ops.values()) if live[i]]
        return torch.stack(terms).sum(0) if len(terms) > 1 else terms[0]

    def probs(self) -> torch.Tensor:
        return torch.softmax(self.alpha.detach(), dim=0)

    def remove(self, names: set[str]) -> None:
        """Delete the candidates ``names`` (their modules and logits)."""
        keep = [i for i, n in enumerate(self.names) if n not in names]
        self.ops = nn.ModuleDict({self.names[i]: self.ops[self.names[i]] for i in keep})
        self.alpha = nn.Parameter(self.alpha.data[keep].clone())
        self.weights = torch.ones(len(keep)) / len(keep)

    def choice(self, name: str) -> Choice:
        """The block choice candidate ``name`` derives to."""
        op = self.ops[name]
        if isinstance(op, BiPath):
            return Choice(op.kernel, op.expansion())
        return SKIP if name == SKIP.name else Choice.parse(name)


class PrunedLayer(nn.Identity):
    """A layer removed by layer pruning: it derives to ``skip`` and costs nothing."""

    def __init__(self, stage: int, layer: int) -> None:
        super().__init__()
        self.stage, self.layer = stage, layer


class SuperNet(nn.Module):
    """Stem, mixed layers at the widest widths with per-stage width masks, head."""

    def __init__(self, space: LayerwiseSpace, bipath: bool = True, step: float = 1.0) -> None:
        super().__init__()
        cfg = space.config
        self.space, self.bipath, self.step = space, bipath, step
        self.stem = Stem(space.input_shape[0], cfg.stem_width, space.stem_stride)
        layers: list[nn.Module] = []
        cin = cfg.stem_width
        for i, spec in enumerate(cfg.stages):
            wmax = max(spec.widths)
            for j in range(spec.layers):
                stride = spec.stride if j == 0 else 1
                layers.append(MixedLayer(i, j, self._ops(i, j, cin, wmax, stride)))
                cin = wmax
        self.layers = nn.ModuleList(layers)
        self.head = Head(cin, space.num_classes)
        self.width_alpha = nn.ParameterList(
            [nn.Parameter(torch.zeros(len(s.widths))) for s in cfg.stages]
        )
        self.masks = [
            (torch.arange(max(s.widths))[None, :] < torch.tensor(s.widths)[:, None]).float()
            for s in cfg.stages
        ]
        self.width_weights = [one_hot_argmax(a.detach()) for a in self.width_alpha]

    def _ops(self, i: int, j: int, cin: int, cout: int, stride: int) -> dict[str, nn.Module]:
        choices = self.space.layer_choices(i, j)
        ops: dict[str, nn.Module] = {}
        by_kernel: dict[int, list[int]] = {}
        for c in choices:
            if not c.is_skip and c.groups == 1:
                by_kernel.setdefault(c.kernel, []).append(c.expansion)
        for c in choices:
            exps = tuple(by_kernel.get(c.kernel, ())) if c.groups == 1 else ()
            if c.is_skip:
                ops[c.name] = nn.Identity()
            elif self.bipath and len(exps) > 1:  # one bi-path stands for all of the kernel's
                if f"k{c.kernel}_bipath" not in ops:
                    ops[f"k{c.kernel}_bipath"] = BiPath(
                        cin, cout, c.kernel, stride, exps, self.step
                    )
            else:
                hidden = hidden_width(cin, c.expansion)
                ops[c.name] = MBConv(cin, cout, c.kernel, stride, hidden, groups=c.groups)
        return ops

    # -- parameters -------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """Width logits, layer logits and bi-path logits (what the architecture step trains)."""
        out = list(self.width_alpha)
        for layer in self.mixed():
            out.append(layer.alpha)
            out += [op.beta for op in layer.ops.values() if isinstance(op, BiPath)]
        return out

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def mixed(self) -> Iterator[MixedLayer]:
        """The layers still searched (not removed by layer pruning)."""
        return (m for m in self.layers if isinstance(m, MixedLayer))

    def bipaths(self) -> Iterator[BiPath]:
        for layer in self.mixed():
            yield from (op for op in layer.ops.values() if isinstance(op, BiPath))

    # -- forward ----------------------------------------------------------------------------
    def sample(
        self, mode: str = "hard", tau: float = 1.0, gen: torch.Generator | None = None
    ) -> None:
        """Set every weight: ``gumbel`` (a Gumbel-softmax sample at ``tau`` from ``gen``),
        ``mean`` (the softmax of the logits) or ``hard`` (the argmax: one op per layer)."""

        def draw(logits: torch.Tensor) -> torch.Tensor:
            if mode == "gumbel" and gen is not None:
                return gumbel_softmax(logits, tau, gen)
            if mode == "mean":
                return torch.softmax(logits, dim=-1)
            return one_hot_argmax(logits.detach())

        self.width_weights = [draw(a) for a in self.width_alpha]
        for layer in self.mixed():
            layer.weights = draw(layer.alpha)
            for op in layer.ops.values():
                if isinstance(op, BiPath):
                    op.weights = draw(op.beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            if isinstance(layer, MixedLayer):
                mask = self.width_weights[layer.stage] @ self.masks[layer.stage]
                x = layer(x) * mask.view(1, -1, 1, 1)
        return self.head(x)

    # -- pruning ----------------------------------------------------------------------------
    def prune_blocks(self, threshold: float) -> list[str]:
        """Delete candidates whose probability is below ``threshold`` (the strongest stays)."""
        removed: list[str] = []
        for layer in self.mixed():
            p = layer.probs()
            weak = {n for n, q in zip(layer.names, p.tolist()) if q < threshold}
            weak.discard(layer.names[int(torch.argmax(p))])
            if weak:
                layer.remove(weak)
                removed += [f"stage{layer.stage}.layer{layer.layer}.{n}" for n in sorted(weak)]
        return removed

    def prune_layers(self, threshold: float) -> list[str]:
        """Remove layers whose ``skip`` probability is at least ``threshold``."""
        removed: list[str] = []
        for idx, layer in enumerate(self.layers):
            if not isinstance(layer, MixedLayer) or SKIP.name not in layer.names:
                continue
            if float(layer.probs()[layer.names.index(SKIP.name)]) >= threshold:
                self.layers[idx] = PrunedLayer(layer.stage, layer.layer)
                removed.append(f"stage{layer.stage}.layer{layer.layer}")
        return removed

    def shrink_bipaths(self, threshold: float) -> int:
        """Move every bi-path whose small path won; how many moved."""
        return sum(op.shrink(threshold) for op in list(self.bipaths()))

    # -- derivation -------------------------------------------------------------------------
    def derive(self) -> Arch:
        """The strongest width per stage and candidate per remaining layer."""
        widths = tuple(
            s.widths[int(torch.argmax(a.detach()))]
            for s, a in zip(self.space.config.stages, self.width_alpha)
        )
        return self._arch(widths, lambda layer: layer.names[int(torch.argmax(layer.probs()))])

    def sample_arch(self, rng: Any) -> Arch:
        """An arch drawn from the learned distribution (``rng``: a :class:`random.Random`)."""

        def pick(names: list[Any], p: torch.Tensor) -> Any:
            return rng.choices(names, weights=p.tolist())[0]

        widths = tuple(
            pick(list(s.widths), torch.softmax(a.detach(), 0))
            for s, a in zip(self.space.config.stages, self.width_alpha)
        )
        return self._arch(widths, lambda layer: pick(layer.names, layer.probs()))

    def _arch(self, widths: tuple[int, ...], name_of: Any) -> Arch:
        layers: list[list[Choice]] = [[] for _ in self.space.config.stages]
        for layer in self.layers:
            choice = layer.choice(name_of(layer)) if isinstance(layer, MixedLayer) else SKIP
            layers[layer.stage].append(choice)
        return Arch(widths, tuple(tuple(st) for st in layers))

    def weights_for(self, arch: Arch) -> dict[str, torch.Tensor]:
        """A state dict for ``space.build(arch)`` inheriting this supernet's weights.

        Each tensor is the leading slice of its supernet counterpart (width masks keep the
        first channels); a block the supernet no longer has, or whose layout differs (an
        ``e1`` block derived from a bi-path), keeps its fresh initialisation.
        """
        model = self.space.build(arch)
        state = model.state_dict()
        sources = {"stem": self.stem, "head": self.head}
        blocks = (layer for layer in self.layers if isinstance(layer, MixedLayer))
        chosen = [(layer, c) for layer, c in zip(blocks, self._choices(arch)) if not c.is_skip]
        for b, (layer, choice) in enumerate(chosen):
            op = _source_op(layer, choice)
            if op is not None:
                sources[f"blocks.{b}"] = op
        for name, tensor in state.items():
            # "blocks.3.body.0.weight" -> (blocks.3, body.0.weight); "head.fc.bias" -> (head, fc.bias)
            owner, key = name.rsplit(".body.", 1) if ".body." in name else name.split(".", 1)
            key = f"body.{key}" if ".body." in name else key
            src = sources.get(owner)
            if src is not None and key in src.state_dict():
                _copy_leading(tensor, src.state_dict()[key])
        return state

    def _choices(self, arch: Arch) -> list[Choice]:
        """The arch's choices of the layers this supernet still searches, in order."""
        return [
            arch.layers[layer.stage][layer.layer]
            for layer in self.layers
            if isinstance(layer, MixedLayer)
        ]


def _source_op(layer: MixedLayer, choice: Choice) -> nn.Module | None:
    """The supernet op whose weights a derived block of ``choice`` inherits, if any."""
    if choice.name in layer.ops:
        return layer.ops[choice.name]
    bipath = f"k{choice.kernel}_bipath"
    return layer.ops[bipath] if bipath in layer.ops and choice.expansion > 1 else None


def _copy_leading(dst: torch.Tensor, src: torch.Tensor) -> None:
    """Copy the leading block of ``src`` into ``dst`` when every dimension fits."""
    if dst.dim() != src.dim() or any(d > s for d, s in zip(dst.shape, src.shape)):
        return
    dst.copy_(src[tuple(slice(0, d) for d in dst.shape)])


class SupernetLatency:
    """Expected latency (ms) of a :class:`SuperNet`'s current weights, from the block table.

    Each layer's candidates are priced at every (input width, output width) pair the width
    search allows; a bi-path at its two expansions, interpolated between the table's listed
    expansions of its kernel. The sum is the FBNet-style LUT latency (blocks timed alone);
    :meth:`scale` relates it to the problem's whole-network predictor.
    """

    def __init__(self, space: LayerwiseSpace, predictor: LatencyModel) -> None:
        self.space, self.predictor = space, predictor
        self._ms: dict[OpKey, float] = {}
        self._tables: dict[tuple[Any, ...], torch.Tensor] = {}

    def block(self, key: OpKey) -> float:
        if key not in self._ms:
            self._ms[key] = float(self.predictor.block_ms(key))
        return self._ms[key]

    def naive(self, arch: Arch) -> float:
        """The LUT sum of ``arch``'s blocks (what :meth:`expected` estimates)."""
        return sum(self.block(k) for k in self.space.blocks(arch))

    def _choice_ms(self, layer: MixedLayer, cin: int, cout: int, choice: Choice) -> float:
        if choice.is_skip:
            return 0.0
        return self.block(self.space.layer_key(layer.stage, layer.layer, cin, cout, choice))

    def _paths_ms(self, layer: MixedLayer, cin: int, cout: int) -> list[float]:
        """Latency of each weighted path: one per op, two per bi-path (large, small)."""
        out: list[float] = []
        for name, op in layer.ops.items():
            if isinstance(op, BiPath):
                pts = [(float(e), self._choice_ms(layer, cin, cout, Choice(op.kernel, e)))
                       for e in op.expansions]  # fmt: skip
                out += [interpolate(pts, op.large), interpolate(pts, op.small)]
            else:
                out.append(self._choice_ms(layer, cin, cout, layer.choice(name)))
        return out

    def _table(self, layer: MixedLayer, in_widths: tuple[int, ...]) -> torch.Tensor:
        """``[in, out, paths]`` latencies (first layer of a stage) or ``[out, paths]``."""
        out_widths = self.space.config.stages[layer.stage].widths
        sig = tuple((n, getattr(op, "large", 0), getattr(op, "small", 0))
                    for n, op in layer.ops.items())  # fmt: skip
        key = (layer.stage, layer.layer, sig)
        if key not in self._tables:
            if layer.layer == 0:
                rows = [[self._paths_ms(layer, a, b) for b in out_widths] for a in in_widths]
            else:
                rows = [self._paths_ms(layer, b, b) for b in out_widths]
            self._tables[key] = torch.tensor(rows)
        return self._tables[key]

    @staticmethod
    def _path_weights(layer: MixedLayer) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        for i, op in enumerate(layer.ops.values()):
            w = layer.weights[i]
            parts.append(w * op.weights if isinstance(op, BiPath) else w.view(1))
        return torch.cat(parts)

    def expected(self, net: SuperNet) -> torch.Tensor:
        """LUT latency of the sampled weights: differentiable in every architecture logit."""
        cfg = self.space.config
        total = torch.tensor(self.block(self.space.stem_key()))
        for layer in net.mixed():
            v = self._path_weights(layer)
            p_out = net.width_weights[layer.stage]
            if layer.layer == 0:
                s = layer.stage
                p_in = net.width_weights[s - 1] if s else torch.ones(1)
                in_widths = cfg.stages[s - 1].widths if s else (cfg.stem_width,)
                total = total + torch.einsum(
                    "a,b,abk,k->", p_in, p_out, self._table(layer, in_widths), v
                )
            else:
                total = total + p_out @ (self._table(layer, ()) @ v)
        heads = torch.tensor([self.block(self.space.head_key(w)) for w in cfg.stages[-1].widths])
        return total + net.width_weights[-1] @ heads
