"""Building blocks shared by the spaces. Each block reports its own :class:`OpKey`.

Keys are read from the block's current tensors, so a pruned block reports its pruned shape.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeauto.latency.key import OpKey


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """Conv (``same`` padding, no bias) followed by BatchNorm."""
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout)]


def hidden_width(cin: int, expansion: int) -> int:
    """Expanded width of an inverted residual; 0 means no expansion conv (expansion 1)."""
    return cin * expansion if expansion != 1 else 0


class Stem(nn.Module):
    """First convolution: kxk, stride s, BN, ReLU6."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, kernel, stride), nn.ReLU6())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def op_key(self, h: int, w: int) -> OpKey:
        conv: nn.Conv2d = self.body[0]
        return OpKey(
            "stem", conv.in_channels, 0, conv.out_channels, h, w, conv.kernel_size[0],
            conv.stride[0],
        )  # fmt: skip


class MBConv(nn.Module):
    """Inverted residual (MobileNetV2): 1x1 expand, kxk depthwise, 1x1 project, optional add."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, hidden: int) -> None:
        """``hidden`` is the expanded width, or 0 for no expansion conv (expansion 1)."""
        super().__init__()
        layers: list[nn.Module] = []
        if hidden:
            layers += [*conv_bn(cin, hidden, 1), nn.ReLU6()]
        width = hidden or cin
        layers += [*conv_bn(width, width, kernel, stride, groups=width), nn.ReLU6()]
        layers += conv_bn(width, cout, 1)
        self.body = nn.Sequential(*layers)
        self.expands = bool(hidden)
        self.residual = stride == 1 and cin == cout

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


class Net(nn.Module):
    """Stem, a sequence of blocks, head. :meth:`op_keys` walks the blocks with their shapes."""

    def __init__(self, stem: Stem, blocks: list[MBConv], head: Head) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def op_keys(self, input_hw: tuple[int, int]) -> list[OpKey]:
        """The key of every block for an input of spatial size ``input_hw``."""
        keys: list[OpKey] = []
        h, w = input_hw
        for block in [self.stem, *self.blocks, self.head]:
            key = block.op_key(h, w)
            keys.append(key)
            h, w = key.out_hw
        return keys


def block_for_key(key: OpKey) -> nn.Module:
    """A randomly initialised module with exactly the shapes of ``key`` (for profiling)."""
    if key.kind == "stem":
        return Stem(key.cin, key.cout, key.stride, key.kernel)
    if key.kind == "head":
        return Head(key.cin, key.cout)
    return MBConv(key.cin, key.cout, key.kernel, key.stride, key.hidden)
