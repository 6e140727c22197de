"""Building blocks shared by the spaces. Each block reports its own :class:`OpKey`.

Keys are read from the block's current tensors, so a pruned block reports its pruned shape.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeauto.spaces.key import OpKey


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """Conv (``same`` padding, no bias) followed by BatchNorm."""
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout)]


def act_layer(name: str) -> nn.Module:
    """The activation module of an :data:`~edgeauto.spaces.key.ACTIVATIONS` name."""
    layers = {"relu6": nn.ReLU6, "relu": nn.ReLU, "hswish": nn.Hardswish, "none": nn.Identity}
    return layers[name]()


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10% down (as MobileNet)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def hidden_width(cin: int, expansion: int) -> int:
    """Expanded width of an inverted residual; 0 means no expansion conv (expansion 1)."""
    return cin * expansion if expansion != 1 else 0


class Stem(nn.Module):
    """First convolution: kxk, stride s, BN, activation (ReLU6 unless ``act`` says otherwise)."""

    kind = "stem"

    def __init__(
        self, cin: int, cout: int, stride: int, kernel: int = 3, act: str = "relu6"
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, kernel, stride), act_layer(act))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def op_key(self, h: int, w: int) -> OpKey:
        conv: nn.Conv2d = self.body[0]
        return OpKey(
            self.kind, conv.in_channels, 0, conv.out_channels, h, w, conv.kernel_size[0],
            conv.stride[0], act=self.act,
        )  # fmt: skip


class ConvBNAct(Stem):
    """A plain kxk conv, BN and activation inside the network (MobileNetV3's final expand)."""

    kind = "conv"

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, act: str = "relu6"
    ) -> None:
        super().__init__(cin, cout, stride, kernel, act)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle after a grouped conv, as one gather over channels.

    A gather rather than reshape-transpose-reshape: onnx2tf mistranslates that 5-D reshape
    in NHWC, while a channel gather converts exactly. Output channel ``j * g + i`` is input
    channel ``i * c / g + j``, the same permutation.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        order = torch.arange(c, device=x.device).reshape(self.groups, c // self.groups)
        return x.index_select(1, order.t().reshape(-1))


class SqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-excite: pool, 1x1 reduce (/4, multiple of 8), ReLU, 1x1, h-sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = make_divisible(channels // 4)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.expand = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.expand(torch.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True))))
        return x * nn.functional.hardsigmoid(scale)


class MBConv(nn.Module):
    """Inverted residual (MobileNetV2): 1x1 expand, kxk depthwise, 1x1 project, optional add.

    MobileNetV3 adds a squeeze-excite after the depthwise conv (``se``) and h-swish (``act``);
    FBNet's ``_g2`` blocks use grouped 1x1 convs, each followed by a channel shuffle. With the
    defaults the layers are exactly MobileNetV2's, so earlier checkpoints and plans still fit.
    """

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, hidden: int, se: bool = False,
        act: str = "relu6", groups: int = 1,
    ) -> None:  # fmt: skip
        """``hidden`` is the expanded width, or 0 for no expansion conv (expansion 1)."""
        super().__init__()
        shuffle = [ChannelShuffle(groups)] if groups > 1 else []
        layers: list[nn.Module] = []
        if hidden:
            layers += [*conv_bn(cin, hidden, 1, groups=groups), *shuffle, act_layer(act)]
        width = hidden or cin
        layers += [*conv_bn(width, width, kernel, stride, groups=width), act_layer(act)]
        layers += [SqueezeExcite(width)] if se else []
        layers += [*conv_bn(width, cout, 1, groups=groups), *shuffle]
        self.body = nn.Sequential(*layers)
        self.expands = bool(hidden)
        self.residual = stride == 1 and cin == cout
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y

    def op_key(self, h: int, w: int) -> OpKey:
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        dw = convs[-2]
        return OpKey(
            "mbconv",
            cin=convs[0].in_channels,
            hidden=dw.out_channels if self.expands else 0,
            cout=convs[-1].out_channels,
            h=h,
            w=w,
            kernel=dw.kernel_size[0],
            stride=dw.stride[0],
            residual=self.residual,
            se=any(isinstance(m, SqueezeExcite) for m in self.body),
            act=self.act,
            groups=convs[-1].groups,
        )


class Head(nn.Module):
    """Global average pool and a linear classifier (``mean`` keeps export shape-agnostic)."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))

    def op_key(self, h: int, w: int) -> OpKey:
        return OpKey("head", self.fc.in_features, 0, self.fc.out_features, h, w)


class Pool(nn.Module):
    """Global average pool to 1x1 (kept 4-D, as MobileNetV3 pools before its last 1x1 conv).

    It has no tensors of its own, so :class:`Chain` passes it the channels it receives.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)

    def op_key(self, h: int, w: int, channels: int) -> OpKey:
        return OpKey("pool", channels, 0, channels, h, w)


class LinearAct(nn.Module):
    """A fully connected layer on a pooled (1x1) input, then an activation (``none``: logits)."""

    def __init__(self, cin: int, cout: int, act: str = "none", bias: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, cout, bias=bias)
        self.act_fn = act_layer(act)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act_fn(self.fc(x.flatten(1)))

    def op_key(self, h: int, w: int) -> OpKey:
        return OpKey("linear", self.fc.in_features, 0, self.fc.out_features, h, w, act=self.act)


def exact_scale(size: int, n: int) -> float:
    """The smallest float32 scale with ``floor(n * scale) == size``, as a Python float.

    ONNX stores Resize scales as float32; rounding ``size / n`` down would make some
    runtime emit ``size - 1`` pixels, so step up to the next float32 until the product holds.
    """
    scale = np.float32(size / n)
    while float(scale) * n < size:
        scale = np.nextafter(scale, np.float32(np.inf))
    return float(scale)


class Resize(nn.Module):
    """Bilinear resize of the input image to ``size`` x ``size`` (the arch's resolution).

    Given as constant scale factors rather than an output size: PyTorch exports a size as
    ``Shape -> Slice -> Concat`` of the input's shape, which onnx2tf mistranslates in NHWC
    (it resized only the width), while constant scales convert exactly.
    """

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.channels, self.size = channels, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[2]), int(x.shape[3])
        scale = (exact_scale(self.size, h), exact_scale(self.size, w))
        return nn.functional.interpolate(
            x, scale_factor=scale, mode="bilinear", align_corners=False,
            recompute_scale_factor=False,
        )  # fmt: skip

    def op_key(self, h: int, w: int) -> OpKey:
        return OpKey("resize", self.channels, 0, self.channels, h, w, out_size=self.size)


class Net(nn.Module):
    """Stem, a sequence of blocks, head. :meth:`op_keys` walks the blocks with their shapes."""

    def __init__(self, stem: Stem, blocks: list[MBConv], head: Head) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def removable_blocks(self) -> list[str]:
        """Blocks depth pruning may remove: the residual ones (``x + f(x)`` becomes ``x``).
        Layers inside a block are not offered: the block's key could not describe the rest."""
        return [f"blocks.{i}" for i, b in enumerate(self.blocks) if getattr(b, "residual", False)]

    def op_keys(self, input_hw: tuple[int, int]) -> list[OpKey]:
        """The key of every block for an input of spatial size ``input_hw``."""
        keys: list[OpKey] = []
        h, w = input_hw
        for block in [self.stem, *self.blocks, self.head]:
            if isinstance(block, nn.Identity):
                continue  # a block removed by depth pruning: no op, same shape
            key = block.op_key(h, w)
            keys.append(key)
            h, w = key.out_hw
        return keys


class Chain(nn.Module):
    """A plain sequence of keyed blocks (the ``ofa-mbv3`` and ``fbnet-cifar`` networks)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def removable_blocks(self) -> list[str]:
        """Blocks depth pruning may remove: the residual ones (see :meth:`Net.removable_blocks`)."""
        return [f"layers.{i}" for i, b in enumerate(self.layers) if getattr(b, "residual", False)]

    def op_keys(self, input_hw: tuple[int, int]) -> list[OpKey]:
        """The key of every block for an input of spatial size ``input_hw``."""
        keys: list[OpKey] = []
        h, w = input_hw
        for block in self.layers:
            if isinstance(block, nn.Identity):
                continue  # a block removed by depth pruning: no op, same shape
            key = (
                block.op_key(h, w, keys[-1].cout) if isinstance(block, Pool) else block.op_key(h, w)
            )
            keys.append(key)
            h, w = key.out_hw
        return keys


def block_for_key(key: OpKey) -> nn.Module:
    """A randomly initialised module with exactly the shapes of ``key`` (for profiling)."""
    if key.kind in ("stem", "conv"):
        cls = Stem if key.kind == "stem" else ConvBNAct
        return cls(key.cin, key.cout, stride=key.stride, kernel=key.kernel, act=key.act)
    if key.kind == "head":
        return Head(key.cin, key.cout)
    if key.kind == "pool":
        return Pool()
    if key.kind == "linear":
        return LinearAct(key.cin, key.cout, key.act)
    if key.kind == "resize":
        return Resize(key.cin, key.out_size)
    return MBConv(
        key.cin, key.cout, key.kernel, key.stride, key.hidden, key.se, key.act, key.groups
    )
