"""Blocks timed the way a TensorFlow 2 eager table times them, on this machine.

A published table timed with TensorFlow 2 eager (jh88/fbnet's ``lookup_table_pi.json``)
called each candidate block as a Keras layer from Python: one warm-up call, then the mean of
ten ``perf_counter`` spans. Every sub-layer call pays Python and op-dispatch cost, so such a
number is mostly invocation overhead. To learn how those numbers relate to LiteRT's, the same
blocks are built here as Keras layers (``tf_keras``, the Keras 2 API of TensorFlow 2) with the
same structure (1x1 conv, BN, ReLU, depthwise kxk, BN, ReLU, 1x1 conv, BN, residual; grouped
1x1 convs are split, convolved per group, concatenated and channel-shuffled) and timed the
same way. :mod:`edgeauto.latency.conversion` fits the relation.

TensorFlow is imported on first use (it is slow to import and only this path needs it).
"""

from __future__ import annotations

import time
from typing import Any

from edgeauto.errors import ConfigError
from edgeauto.spaces.key import OpKey

#: The published table's protocol: one warm-up call, then the mean of this many calls.
CALLS = 10


def _keras() -> Any:
    try:
        import tf_keras
    except ImportError:
        raise ConfigError(
            "timing TensorFlow 2 eager blocks needs tensorflow and tf_keras; install them "
            "(pip install tensorflow-cpu tf_keras) or import the table without --convert-to"
        ) from None
    return tf_keras


def _grouped(keras: Any, x: Any, filters: int, groups: int) -> Any:
    """A 1x1 conv over ``groups`` channel groups (split, conv each, concatenate)."""
    import tensorflow as tf

    if groups == 1:
        return keras.layers.Conv2D(filters, 1, use_bias=False)(x)
    parts = keras.layers.Lambda(lambda t: tf.split(t, groups, axis=-1))(x)
    outs = [keras.layers.Conv2D(filters // groups, 1, use_bias=False)(p) for p in parts]
    return keras.layers.Concatenate()(outs)


def _shuffle(keras: Any, x: Any, groups: int) -> Any:
    """Channel shuffle: reshape to (groups, c/groups), transpose, flatten back."""
    if groups == 1:
        return x
    h, w, c = x.shape[1:]
    x = keras.layers.Reshape((h, w, groups, c // groups))(x)
    x = keras.layers.Permute((1, 2, 4, 3))(x)
    return keras.layers.Reshape((h, w, c))(x)


def build_block(key: OpKey) -> Any:
    """The Keras model of an ``mbconv`` block of ``key`` (channels last, batch 1)."""
    if key.kind != "mbconv" or key.se:
        raise ConfigError(f"eager timing covers FBNet's mbconv blocks, not {key.describe()}")
    keras, hidden = _keras(), key.hidden or key.cin
    inp = keras.Input((key.h, key.w, key.cin), batch_size=1)
    x = keras.layers.BatchNormalization()(_grouped(keras, inp, hidden, key.groups))
    x = keras.layers.ReLU()(_shuffle(keras, x, key.groups))
    x = keras.layers.DepthwiseConv2D(key.kernel, key.stride, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.BatchNormalization()(_grouped(keras, x, key.cout, key.groups))
    x = _shuffle(keras, x, key.groups)
    if key.residual:
        x = keras.layers.Add()([x, inp])
    return keras.Model(inp, x)


def time_eager(layer: Any, shape: tuple[int, int, int], calls: int = CALLS) -> float:
    """Mean ms of ``calls`` eager calls of ``layer`` on a random NHWC input, after one warm-up
    (the published protocol)."""
    import tensorflow as tf

    x = tf.random.uniform((1, *shape))
    layer(x)
    spans = []
    for _ in range(calls):
        t0 = time.perf_counter()
        layer(x)
        spans.append(time.perf_counter() - t0)
    return sum(spans) / len(spans) * 1e3
